# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kafka Connect REST: the shared connection options, a small client, and kafka_connect_connector's work
(private: may change without notice).

HTTP goes through Ansible's own ansible.module_utils.urls (Request/open_url), not the requests library:
it ships with ansible-core on every host a module runs on (nothing to pip install, nothing to add to
an execution environment), and it already implements what users expect of every Ansible HTTP module —
validate_certs, ca_path, client certificates, proxies from the environment, basic auth — the same way
ansible.builtin.uri does.
"""

from __future__ import annotations

import copy
import json
import re
import socket
import time
from urllib.error import HTTPError, URLError
from urllib.parse import quote

from ansible.module_utils.basic import env_fallback
from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
from ansible.module_utils.urls import Request, SSLValidationError
from ansible_collections.streamops.day2.plugins.module_utils._common import OperationError, StreamopsModule
from ansible_collections.streamops.day2.plugins.module_utils._http import transport_reason
from ansible_collections.streamops.day2.plugins.module_utils._connect_config import (
    FAILED_GRACE,
    TARGET_STATES,
    Conflict,
    ConfigValueError,
    compare_config,
    config_definitions,
    desired_config,
    failed_parts,
    masked,
    plugin_aliases,
    reached,
    resolve_class,
    retry_conflicts,
    secret_values,
    state_request,
    tasks_view,
    validation_errors,
    validation_message,
)

CONNECT_CONNECTION_SPEC = dict(
    url=dict(type="str", required=True, fallback=(env_fallback, ["KAFKA_CONNECT_URL"])),
    url_username=dict(type="str", fallback=(env_fallback, ["KAFKA_CONNECT_USERNAME"])),
    url_password=dict(type="str", no_log=True, fallback=(env_fallback, ["KAFKA_CONNECT_PASSWORD"])),
    validate_certs=dict(type="bool", default=True),
    ca_path=dict(type="path"),
    client_cert=dict(type="path"),
    client_key=dict(type="path", no_log=False),  # a file name, not the key
    timeout=dict(type="float", default=30.0),
)

USER_AGENT = "streamops.day2-kafka_connect"

# "org.apache.kafka.connect.runtime.rest.errors.BadRequestException: " in front of Connect's messages.
_JAVA_EXCEPTION = re.compile(r"^(?:[a-z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error):\s*")


def connect_argument_spec(**module_options):
    """The module's own options plus the shared Connect connection options (deep-copied)."""
    spec = copy.deepcopy(CONNECT_CONNECTION_SPEC)
    spec.update(module_options)
    return spec


class ConnectError(OperationError):
    """A Kafka Connect failure worth one clear sentence to the user (no traceback)."""


class ConnectClient:
    """Kafka Connect's REST API: JSON in and out, rebalances (409, and the 500 below) retried with back-off, failures
    as one sentence."""

    def __init__(self, params):
        self.url = params["url"].rstrip("/")
        self.timeout = params["timeout"]
        self.retries = 0
        self._request = Request(
            headers={"Accept": "application/json", "Content-Type": "application/json"},
            timeout=self.timeout,
            validate_certs=params["validate_certs"],
            url_username=params["url_username"],
            url_password=params["url_password"],
            force_basic_auth=bool(params["url_username"]),
            client_cert=params["client_cert"],
            client_key=params["client_key"],
            ca_path=params["ca_path"],
            http_agent=USER_AGENT,
            use_netrc=False,
        )

    def call(self, method, path, body=None, missing_ok=False):
        """(HTTP status, decoded JSON or None). A 404 returns (404, None) when missing_ok, else fails."""
        def attempt():
            return self._once(method, path, body, missing_ok)

        try:
            result, retries = retry_conflicts(attempt, self.timeout)
        except Conflict as e:
            raise ConnectError("Kafka Connect at %s kept answering %s %s with a conflict for %gs (%s); a rebalance of its workers "
                               "did not end, retry later or raise timeout." % (self.url, method, path, self.timeout, e))
        self.retries += retries
        return result

    def _once(self, method, path, body, missing_ok):
        data = json.dumps(body) if body is not None else None
        try:
            response = self._request.open(method, self.url + path, data=data)
            raw = response.read()
            return response.status, (json.loads(raw) if raw else None)
        except HTTPError as e:
            message, from_connect = self._message(e)
            if e.code == 404 and missing_ok:
                # Only Connect's own "Connector x not found" means absent: a 404 of a proxy, of another server, or
                # Connect's "HTTP 404 Not Found" for a path it has no route for (url with a wrong prefix) must not.
                if not from_connect or message.startswith("HTTP 404"):
                    raise ConnectError("Kafka Connect at %s answered HTTP 404 to %s %s (%s), not with Connect's 'not found' of a "
                                       "connector; is url the Connect REST listener?" % (self.url, method, path, message))
                return 404, None
            if e.code == 409 and "already exists" not in message:
                raise Conflict(message)
            if e.code == 500 and "because a rebalance is expected" in message:
                # Connect's RebalanceNeededException: a read that reaches the herder between two generations of the
                # worker group; it is as passing as a 409, but Connect maps it to 500.
                raise Conflict(message)
            raise ConnectError(self._http_sentence(e.code, method, path, message))
        except (URLError, UrlsConnectionError, SSLValidationError, socket.timeout, OSError) as e:
            raise ConnectError("Cannot reach Kafka Connect at %s: %s." % (self.url, self._reason(e)))
        except ValueError:
            raise ConnectError("Kafka Connect at %s answered %s %s with something that is not JSON; is url the Connect REST "
                               "listener?" % (self.url, method, path))

    @staticmethod
    def _message(error):
        """(Connect's message, whether the body was Connect's JSON error) of an HTTP error."""
        try:
            raw = error.read().decode("utf-8", "replace")
        except Exception:  # a body that cannot be read adds nothing to the status code
            raw = ""
        try:
            body = json.loads(raw)
            from_connect = isinstance(body, dict) and "error_code" in body
            message = (body.get("message") or "") if isinstance(body, dict) else raw
        except ValueError:
            from_connect, message = False, raw if raw and "<" not in raw[:1] else ""
        message = _JAVA_EXCEPTION.sub("", " ".join(str(message).split())).rstrip(".")
        return message or (error.reason if isinstance(error.reason, str) else "") or "no message", from_connect

    def _http_sentence(self, code, method, path, message):
        if code == 401:
            return ("Kafka Connect at %s refused the credentials (HTTP 401): set url_username and url_password "
                    "(or KAFKA_CONNECT_USERNAME / KAFKA_CONNECT_PASSWORD) to a user of the worker's REST API." % self.url)
        if code == 403:
            return "Kafka Connect at %s denied %s %s to this user (HTTP 403): %s." % (self.url, method, path, message)
        return "Kafka Connect at %s answered HTTP %d to %s %s: %s." % (self.url, code, method, path, message)

    def _reason(self, error):
        return transport_reason(error, self.timeout, "is the worker running, and is the port right?", "is url the Connect REST listener?")

    # -- the endpoints used ------------------------------------------------------------------

    @staticmethod
    def _name(name):
        return quote(name, safe="")

    def plugins(self):
        return self.call("GET", "/connector-plugins")[1] or []

    def validate(self, connector_class, config):
        return self.call("PUT", "/connector-plugins/%s/config/validate" % self._name(connector_class), config)[1]

    def config(self, name):
        return self.call("GET", "/connectors/%s/config" % self._name(name), missing_ok=True)[1]

    def info(self, name):
        return self.call("GET", "/connectors/%s" % self._name(name), missing_ok=True)[1]

    def status(self, name):
        return self.call("GET", "/connectors/%s/status" % self._name(name), missing_ok=True)[1]

    def put_config(self, name, config):
        return self.call("PUT", "/connectors/%s/config" % self._name(name), config)[1]

    def create(self, name, config, initial_state):
        return self.call("POST", "/connectors", dict(name=name, config=config, initial_state=initial_state))[1]

    def transition(self, name, request):
        self.call("PUT", "/connectors/%s/%s" % (self._name(name), request))

    def restart_failed(self, name):
        return self.call("POST", "/connectors/%s/restart?includeTasks=true&onlyFailed=true" % self._name(name))[1]

    def delete(self, name):
        self.call("DELETE", "/connectors/%s" % self._name(name), missing_ok=True)


class ConnectModule(StreamopsModule):
    """AnsibleModule with the shared Kafka Connect connection options and a client built on first use."""

    def __init__(self, argument_spec, **kwargs):
        super().__init__(argument_spec=connect_argument_spec(**argument_spec), **kwargs)
        self._client = None

    @property
    def client(self):
        if self._client is None:
            self._client = ConnectClient(self.params)
        return self._client


# ---------------------------------------------------------------------------------------------
# kafka_connect_connector


def _plugin_list(plugins):
    return ", ".join(sorted(p["class"] for p in plugins)) or "none"


def run_connector(module):
    """Bring one connector to the state and configuration asked for; the module's result dict."""
    params, client = module.params, module.client
    name, state = params["name"], params["state"]
    target = TARGET_STATES.get(state)
    actions = []

    current = client.config(name)
    status = client.status(name) if current is not None else None
    before_state = ((status or {}).get("connector") or {}).get("state")

    if state == "absent":
        return _absent(module, current, status, actions)

    definitions, desired, delta = {}, None, None
    if params["config"] is not None:
        try:
            desired = desired_config(params["config"], name)
        except ConfigValueError as e:
            raise ConnectError(str(e))
        plugins = client.plugins()
        aliases = plugin_aliases(plugins)
        connector_class = desired.get("connector.class") or (current or {}).get("connector.class")
        if not connector_class:
            raise ConnectError("Config of connector %s has no connector.class; name one of the installed connectors: %s."
                               % (name, _plugin_list(plugins)))
        desired.setdefault("connector.class", connector_class)
        if resolve_class(connector_class, aliases) is None:
            raise ConnectError("Kafka Connect at %s has no connector plugin %s; installed: %s."
                               % (client.url, connector_class, _plugin_list(plugins)))
        for secret in secret_values(desired, {}) | secret_values(current, {}):
            module.no_log_values.add(secret)
        validation = client.validate(desired["connector.class"], desired)
        definitions = config_definitions(validation)
        for secret in secret_values(desired, definitions) | secret_values(current, definitions):
            module.no_log_values.add(secret)
        errors = validation_errors(validation)
        if errors:
            raise ConnectError(validation_message(name, errors), validation_errors=errors)
        actions.append("validate config")
        delta = compare_config(desired, current, definitions, aliases)
    elif current is None:
        raise ConnectError("Connector %s does not exist and no config was given to create it." % name)

    create = current is None
    update = not create and delta is not None and (delta.differs or params["force_update"])
    request = None if create else state_request(before_state, target)
    # A configuration update restarts every task anyway; a restart is only worth a request without one.
    restart = (not create and not update and params["restart_failed_tasks"] and state in ("present", "running")
               and before_state != "STOPPED" and bool(failed_parts(status)))

    if create:
        actions.append("create connector %s%s" % (name, "" if target in (None, "RUNNING") else " " + target))
    if update:
        actions.append("update config: %s" % (delta.describe() or "force_update, unchanged values sent again"))
    if request:
        actions.append("%s connector %s" % (request, name))
    if restart:
        actions.append("restart failed %s" % ", ".join(what for what, unused in failed_parts(status)))
    changed = bool(create or update or request or restart)

    if changed and not module.check_mode:
        if create and target in ("PAUSED", "STOPPED"):
            client.create(name, desired, target)  # KIP-980 (Kafka 3.7+): never runs before it is paused or stopped
        elif create or update:
            client.put_config(name, desired)
        if request:
            client.transition(name, request)
        if restart:
            client.restart_failed(name)

    wait_state = target or (before_state if before_state in ("PAUSED", "STOPPED") else "RUNNING")
    final_status = status
    if not module.check_mode:
        if params["wait"]:
            final_status = _wait(module, name, wait_state)
        elif changed:
            final_status = client.status(name)

    # What the worker holds after the task: the configuration sent, else the stored one (an alias stays as stored).
    after_config = desired if (create or update) else current
    if module.check_mode:
        after_state = wait_state if (create or request) else before_state
        tasks = [] if create else tasks_view(status)
    else:
        after_state = ((final_status or {}).get("connector") or {}).get("state") or wait_state
        tasks = tasks_view(final_status)
    result = dict(
        changed=changed,
        actions=actions,
        connector=dict(name=name, state=after_state, config=masked(after_config, definitions, current), tasks=tasks,
                       type=(final_status or {}).get("type")),
        unknown_keys=delta.unknown if delta else [],
        retries=client.retries,
    )
    if module._diff:
        result["diff"] = dict(
            before=dict(config=masked(current, definitions), state=before_state) if current is not None else {},
            after=dict(config=masked(after_config, definitions, current), state=after_state),
        )
    return result


def _absent(module, current, status, actions):
    params, client, name = module.params, module.client, module.params["name"]
    changed = current is not None
    if changed:
        actions.append("delete connector %s" % name)
        for secret in secret_values(current, {}):
            module.no_log_values.add(secret)
        if not module.check_mode:
            client.delete(name)
            if params["wait"]:
                _wait_gone(module, name)
    result = dict(changed=changed, actions=actions, connector={}, unknown_keys=[], retries=client.retries)
    if module._diff:
        before_state = ((status or {}).get("connector") or {}).get("state")
        result["diff"] = dict(before=dict(config=masked(current, {}), state=before_state) if current is not None else {}, after={})
    return result


def _wait(module, name, target):
    """Until the connector and all its tasks report target; fails at once on a lasting FAILED state."""
    client, timeout = module.client, module.params["wait_timeout"]
    deadline = time.monotonic() + timeout
    failed_since = None
    while True:
        status = client.status(name)
        info = client.info(name) or {}
        task_count = len(info.get("tasks") or [])
        if reached(status, task_count, target):
            return status
        failed = failed_parts(status)
        now = time.monotonic()
        if failed and target in ("RUNNING", "PAUSED"):
            failed_since = failed_since or now
            if now - failed_since >= FAILED_GRACE:
                raise ConnectError("Connector %s did not reach %s: %s." % (name, target, "; ".join("%s FAILED (%s)" % f for f in failed)),
                                   connector=dict(name=name, tasks=tasks_view(status)))
        else:
            failed_since = None
        if now > deadline:
            states = ", ".join(["connector %s" % ((status or {}).get("connector") or {}).get("state", "not reported")]
                               + ["task %s %s" % (t["id"], t["state"]) for t in tasks_view(status)])
            raise ConnectError("Connector %s did not reach %s within %gs (%s); raise wait_timeout or look at the worker's log."
                               % (name, target, timeout, states or "no status"), connector=dict(name=name, tasks=tasks_view(status)))
        time.sleep(0.5)


def _wait_gone(module, name):
    client, timeout = module.client, module.params["wait_timeout"]
    deadline = time.monotonic() + timeout
    while client.config(name) is not None:
        if time.monotonic() > deadline:
            raise ConnectError("Connector %s was deleted but still shows after %gs; raise wait_timeout." % (name, timeout))
        time.sleep(0.5)
