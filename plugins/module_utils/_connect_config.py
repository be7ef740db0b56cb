# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of kafka_connect_connector (private: may change without notice).

How a connector's desired configuration compares with the effective one a Kafka Connect worker
holds, how secrets are masked, how Connect's validation answer becomes one sentence, and when a
connector and its tasks have reached a state. No HTTP here, so it is unit-tested without a worker.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

# What Connect prints for a value of type PASSWORD (org.apache.kafka.common.config.types.Password.toString()).
# A current value equal to it cannot be compared with anything.
HIDDEN = "[hidden]"

# How secrets appear in diffs and results.
SECRET = "[secret]"
SECRET_CHANGED = "[secret, changed]"

# Keys masked in diffs and results besides the ones Connect declares as PASSWORD: names that hold
# credentials in the common connectors (JDBC, Debezium, S3, Elasticsearch, schema registry clients).
SECRET_NAME = re.compile(r"(password|passwd|secret|jaas\.config|token|credential|api\.key|private\.key|user\.info)", re.IGNORECASE)

# State option -> the connector state Connect reports once it is reached.
TARGET_STATES = dict(running="RUNNING", paused="PAUSED", stopped="STOPPED")

# Seconds a task (or the connector) must stay FAILED before a wait gives up on it: right after a
# configuration change or a restart the status topic may still show the previous generation's failure.
FAILED_GRACE = 3.0


class ConfigValueError(ValueError):
    """A configuration the module cannot send (one sentence)."""


# ---------------------------------------------------------------------------------------------
# Connector classes and their aliases.

def plugin_aliases(plugins):
    """Every name Connect accepts for an installed connector class -> the full class name.

    Connect accepts the full class name, its simple name, and the simple name without a trailing
    "Connector" (FileStreamSource, FileStreamSourceConnector); an alias two plugins share is refused
    by Connect, so it is left out here too.
    """
    aliases, seen = {}, {}
    for plugin in plugins:
        full = plugin["class"]
        aliases[full] = full
        simple = full.rsplit(".", 1)[-1]
        names = {simple}
        if simple.endswith("Connector") and len(simple) > len("Connector"):
            names.add(simple[:-len("Connector")])
        for alias in names:
            seen.setdefault(alias, set()).add(full)
    for alias, classes in seen.items():
        if len(classes) == 1 and alias not in aliases:
            aliases[alias] = next(iter(classes))
    return aliases


def resolve_class(name, aliases):
    """The full class name a connector.class value stands for, or None when no installed plugin matches."""
    if name is None:
        return None
    return aliases.get(str(name).strip())


# ---------------------------------------------------------------------------------------------
# Values.

def connect_string(key, value):
    """A configuration value as the string Connect stores; None means the key is left out."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        items = [connect_string(key, item) for item in value]
        if any(item is None or "," in item for item in items):
            raise ConfigValueError("Config key %s: a list item is empty or holds a comma; give the value as one string instead." % key)
        return ",".join(items)
    if isinstance(value, dict):
        raise ConfigValueError("Config key %s has a mapping as its value; Kafka Connect takes only strings, numbers, booleans or lists." % key)
    return str(value)


def desired_config(config, name):
    """The configuration to send: every value a string, keys given as None left out, `name` added."""
    desired = {}
    for key, value in (config or {}).items():
        text = connect_string(str(key), value)
        if text is not None:
            desired[str(key)] = text
    if desired.get("name", name) != name:
        raise ConfigValueError("Config key name (%s) differs from the connector's name (%s); leave it out, the module sets it."
                               % (desired["name"], name))
    desired["name"] = name
    return desired


# ---------------------------------------------------------------------------------------------
# Connect's validation answer (PUT /connector-plugins/{class}/config/validate).

def config_definitions(validation):
    """key -> (type, default value as a string or None) from a validation answer."""
    definitions = {}
    for item in (validation or {}).get("configs", []):
        definition = item.get("definition") or {}
        if definition.get("name"):
            definitions[definition["name"]] = (definition.get("type"), definition.get("default_value"))
    return definitions


def validation_errors(validation):
    """key -> Connect's error messages for that key, in Connect's order; only keys with errors."""
    errors = {}
    for item in (validation or {}).get("configs", []):
        value = item.get("value") or {}
        messages = [m for m in value.get("errors") or [] if m]
        if messages:
            errors[value.get("name") or (item.get("definition") or {}).get("name") or "?"] = messages
    return errors


def validation_message(name, errors):
    """Every error of Connect's validation in one sentence naming the fields."""
    parts = []
    for key, messages in errors.items():
        texts = [" ".join(str(m).split()).rstrip(".") for m in messages]
        parts.append("%s (%s)" % (key, "; ".join(texts)))
    return "Kafka Connect rejected the configuration of connector %s, nothing was changed: %s." % (name, "; ".join(parts))


# ---------------------------------------------------------------------------------------------
# Comparison with the effective configuration.

def is_secret(key, definitions):
    """A key whose value must never be shown: declared PASSWORD by the connector, or named like a credential."""
    return (definitions.get(key) or (None, None))[0] == "PASSWORD" or bool(SECRET_NAME.search(key))


def comparable(key, value, definitions, aliases):
    """The form two values of a key are compared in: parsed the way Connect parses the key's type."""
    if value is None:
        return None
    if key == "connector.class":
        return resolve_class(value, aliases) or value.strip()
    kind = (definitions.get(key) or (None, None))[0]
    if kind is None:
        return value  # a key the connector does not declare: passed on verbatim, compared verbatim
    text = value.strip()  # ConfigDef.parseType trims every string it parses
    try:
        if kind == "BOOLEAN":
            return text.lower()
        if kind in ("INT", "SHORT", "LONG"):
            return int(text)
        if kind == "DOUBLE":
            return float(text)
    except ValueError:
        return text
    if kind == "LIST":
        return tuple(item.strip() for item in text.split(",") if item.strip())
    return text


def _effective(key, config, definitions, aliases):
    """The comparable value a key has in a configuration, its declared default when the key is left out."""
    if key in config:
        return comparable(key, config[key], definitions, aliases)
    default = (definitions.get(key) or (None, None))[1]
    return comparable(key, default, definitions, aliases) if default is not None else None


@dataclass
class ConfigDelta:
    """Keys by how the desired configuration differs from the current one."""
    added: list = field(default_factory=list)
    removed: list = field(default_factory=list)
    changed: list = field(default_factory=list)
    unknown: list = field(default_factory=list)

    @property
    def differs(self):
        return bool(self.added or self.removed or self.changed)

    def describe(self):
        parts = []
        for label, keys in (("set", self.added), ("change", self.changed), ("remove", self.removed)):
            if keys:
                parts.append("%s %s" % (label, ", ".join(keys)))
        return "; ".join(parts)


def compare_config(desired, current, definitions, aliases):
    """How desired differs from current (both dicts of strings), value by value as Connect reads them.

    - values compare as Connect parses them for their declared type (booleans case-blind, numbers by value,
      lists item by item, strings trimmed); undeclared keys verbatim;
    - connector.class by the class its alias names;
    - a key missing on one side equals its declared default on the other;
    - a current value Connect masks ("[hidden]") cannot be compared: the key is `unknown`, not changed.
    """
    delta = ConfigDelta()
    if current is None:
        delta.added = sorted(k for k in desired if k != "name")
        return delta
    for key in sorted(set(desired) | set(current)):
        if key in current and current[key] == HIDDEN and key in desired:
            delta.unknown.append(key)
            continue
        want = _effective(key, desired, definitions, aliases)
        have = _effective(key, current, definitions, aliases)
        if want == have:
            continue
        if key not in current:
            delta.added.append(key)
        elif key not in desired:
            delta.removed.append(key)
        else:
            delta.changed.append(key)
    return delta


def masked(config, definitions, other=None):
    """A copy of config with secrets replaced; where `other` (the configuration it is compared with) holds a
    different value, the secret shows as changed."""
    if config is None:
        return None
    out = {}
    for key, value in config.items():
        if value == HIDDEN or not is_secret(key, definitions):
            out[key] = value
        elif other is not None and key in other and other[key] != value and other[key] != HIDDEN:
            out[key] = SECRET_CHANGED
        else:
            out[key] = SECRET
    return out


def secret_values(config, definitions):
    """The secret values of a configuration (for no_log_values: Connect's messages may quote them)."""
    return {v for k, v in (config or {}).items() if v and v != HIDDEN and is_secret(k, definitions)}


# ---------------------------------------------------------------------------------------------
# Run state.

def state_request(current_state, target):
    """The request (pause, resume or stop) that takes a connector in current_state towards target, or None.

    current_state is the connector's state in its status (None while Connect has not reported one);
    a FAILED connector is left to restart_failed_tasks when RUNNING is wanted.
    """
    if target is None or current_state == target:
        return None
    if target == "RUNNING":
        return "resume" if current_state in ("PAUSED", "STOPPED") else None
    return "pause" if target == "PAUSED" else "stop"


def failed_parts(status):
    """[(what, first line of the trace)] for the connector and every task that is FAILED."""
    failed = []
    connector = (status or {}).get("connector") or {}
    if connector.get("state") == "FAILED":
        failed.append(("connector", first_line(connector.get("trace"))))
    for task in (status or {}).get("tasks") or []:
        if task.get("state") == "FAILED":
            failed.append(("task %s" % task.get("id"), first_line(task.get("trace"))))
    return failed


def first_line(trace):
    return (trace or "").strip().splitlines()[0].strip() if (trace or "").strip() else "no trace given"


def reached(status, task_count, target):
    """True when the connector and all of its tasks report target.

    Every task Connect generated (task_count) must report it. RUNNING needs at least one task (a resumed
    or new connector generates its tasks after it reports RUNNING); PAUSED may have none (a stopped connector
    that is paused does not start, so generates no task); STOPPED means no task at all (Connect removes a
    stopped connector's tasks).
    """
    if not status or (status.get("connector") or {}).get("state") != target:
        return False
    tasks = status.get("tasks") or []
    if target == "STOPPED":
        return not tasks
    if (target == "RUNNING" and task_count < 1) or len(tasks) != task_count:
        return False
    return all(task.get("state") == target for task in tasks)


def tasks_view(status):
    """The tasks of a status as returned by the module: id, state, worker, and the first line of a failure."""
    view = []
    for task in sorted((status or {}).get("tasks") or [], key=lambda t: t.get("id", 0)):
        item = dict(id=task.get("id"), state=task.get("state"), worker_id=task.get("worker_id"))
        if task.get("trace"):
            item["trace"] = first_line(task["trace"])
        view.append(item)
    return view


# ---------------------------------------------------------------------------------------------
# Retries.

class Conflict(Exception):
    """Connect answered 409: a rebalance is in progress or its view of the configuration is stale."""


def retry_conflicts(attempt, budget, sleep=time.sleep, clock=time.monotonic, first_delay=0.25, max_delay=4.0):
    """Call attempt() until it does not raise Conflict, backing off (doubling, capped) for at most budget seconds.

    Returns (attempt's result, number of retries). Raises the last Conflict when the budget is spent.
    """
    deadline = clock() + budget
    delay, retries = first_delay, 0
    while True:
        try:
            return attempt(), retries
        except Conflict:
            left = deadline - clock()
            if left <= 0:
                raise
            sleep(min(delay, left))
            delay = min(delay * 2, max_delay)
            retries += 1
