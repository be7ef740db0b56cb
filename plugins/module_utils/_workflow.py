# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Kafka-staged FaaS workflow spec (sources -> steps -> sinks) turned into the things that make it run (private).

plan(spec) returns the topics, the source and sink connectors, the step functions, the step runners and the
scaler's configuration; the faas_workflow role applies them. Pure Python, no service is contacted. Every error is
a WorkflowError with one sentence naming the culprit.
"""

from __future__ import annotations

import copy
import re

NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
FILE_SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"
FILE_SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"
STRING_CONVERTER = "org.apache.kafka.connect.storage.StringConverter"

SPEC_KEYS = {"name", "namespace", "topics", "sources", "steps", "sinks"}
SOURCE_KEYS = {"name", "topic", "file", "config"}
SINK_KEYS = {"name", "topics", "file", "config"}
STEP_KEYS = {"name", "function", "image", "env", "labels", "annotations", "secrets", "limits", "requests", "constraints",
             "input", "output", "dlq", "runners", "concurrency", "retries", "backoff_ms", "timeout_ms", "scaling", "replicas"}
SCALING_KEYS = {"target_lag", "min", "max", "idle_seconds"}
TOPIC_KEYS = {"partitions", "replication_factor", "config"}
DEFAULT_SCALING = {"target_lag": 100, "min": 1, "max": 5, "idle_seconds": 30}


class WorkflowError(ValueError):
    """The workflow spec cannot be planned; the message is one sentence."""


def _unknown(where, raw, known):
    if not isinstance(raw, dict):
        raise WorkflowError("%s must be a dictionary, not %r" % (where, raw))
    extra = sorted(set(raw) - known)
    if extra:
        raise WorkflowError("%s has unknown keys %s (known: %s)" % (where, ", ".join(extra), ", ".join(sorted(known))))


def _name(where, value):
    if not isinstance(value, str) or not NAME.match(value):
        raise WorkflowError("%s must be a DNS label (lower-case letters, digits and '-', at most 40 characters), not %r" % (where, value))
    return value


def _topic(where, value):
    if not isinstance(value, str) or not TOPIC.match(value) or value in (".", ".."):
        raise WorkflowError("%s must be a Kafka topic name (letters, digits, '.', '_', '-'), not %r" % (where, value))
    return value


def _topics(where, value):
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise WorkflowError("%s must be a topic or a non-empty list of topics, not %r" % (where, value))
    return [_topic(where, item) for item in items]


def _int(where, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value))
        except ValueError:
            raise WorkflowError("%s must be an integer, not %r" % (where, value))
    if value < minimum:
        raise WorkflowError("%s must be at least %d, not %d" % (where, minimum, value))
    return value


def _strings(where, value):
    """A dict of strings (env, labels, annotations): keys and values as Kubernetes and OpenFaaS keep them."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WorkflowError("%s must be a dictionary, not %r" % (where, value))
    return {str(k): ("true" if v is True else "false" if v is False else str(v)) for k, v in value.items()}


def _get(raw, key, default):
    """raw[key], with a missing key and None alike meaning 'not given'."""
    value = raw.get(key)
    return default if value is None else value


def _unique(kind, names):
    seen = set()
    for name in names:
        if name in seen:
            raise WorkflowError("two %s are named %s" % (kind, name))
        seen.add(name)


def plan(spec, defaults=None):
    """The workflow's parts. defaults: partitions, replication_factor, topic_config, runners, concurrency, retries, backoff_ms,
    timeout_ms, scaling (dict), dlq (bool), function_prefix."""
    d = dict(partitions=4, replication_factor=None, topic_config={}, runners=1, concurrency=8, retries=5, backoff_ms=200, timeout_ms=10000,
             scaling=dict(DEFAULT_SCALING), dlq=True)
    d.update({k: v for k, v in (defaults or {}).items() if v is not None})
    _unknown("the workflow", spec, SPEC_KEYS)
    wf = _name("the workflow's name", spec.get("name"))
    namespace = _name("the workflow's namespace", spec.get("namespace") or wf)
    topic_defaults = spec.get("topics") or {}
    _unknown("the workflow's topics", topic_defaults, TOPIC_KEYS)
    partitions = _int("topics.partitions", _get(topic_defaults, "partitions", d["partitions"]), 1)
    replication = _get(topic_defaults, "replication_factor", d["replication_factor"])
    replication = None if replication is None else _int("topics.replication_factor", replication, 1)
    topic_config = dict(d["topic_config"] or {})
    topic_config.update(topic_defaults.get("config") or {})

    sources, steps, sinks = spec.get("sources") or [], spec.get("steps") or [], spec.get("sinks") or []
    for kind, items in (("sources", sources), ("steps", steps), ("sinks", sinks)):
        if not isinstance(items, list):
            raise WorkflowError("the workflow's %s must be a list, not %r" % (kind, items))
    if not steps:
        raise WorkflowError("workflow %s has no steps" % wf)

    made = []           # topics the workflow makes, in order
    writers = {}        # topic -> what writes it

    def make(topic, writer):
        if topic in writers:
            raise WorkflowError("topic %s is written by both %s and %s" % (topic, writers[topic], writer))
        writers[topic] = writer
        made.append(topic)

    connectors = []
    for i, raw in enumerate(sources):
        _unknown("source %d" % (i + 1), raw, SOURCE_KEYS)
        name = _name("the name of source %d" % (i + 1), raw.get("name"))
        topic = _topic("the topic of source %s" % name, raw.get("topic") or "%s.%s" % (wf, name))
        make(topic, "source %s" % name)
        config = {"key.converter": STRING_CONVERTER, "value.converter": STRING_CONVERTER}
        if raw.get("file"):
            config.update({"connector.class": FILE_SOURCE, "file": str(raw["file"]), "tasks.max": "1"})
        config.update(raw.get("config") or {})
        if config.get("connector.class") == FILE_SOURCE:
            config["topic"] = topic
        if "connector.class" not in config:
            raise WorkflowError("source %s needs a file or a config with connector.class" % name)
        connectors.append({"name": "%s-%s" % (wf, name), "kind": "source", "config": _config(config)})

    functions, runners, scaled = [], [], []
    previous = list(made)
    step_names = []
    for i, raw in enumerate(steps):
        _unknown("step %d" % (i + 1), raw, STEP_KEYS)
        name = _name("the name of step %d" % (i + 1), raw.get("name"))
        if name in step_names:
            raise WorkflowError("two steps are named %s" % name)
        step_names.append(name)
        where = "step %s" % name
        if not raw.get("image"):
            raise WorkflowError("%s has no image for its function" % where)
        function = _name("the function of %s" % where, raw.get("function") or "%s-%s" % (wf, name))
        inputs = _topics("the input of %s" % where, raw["input"]) if raw.get("input") else list(previous)
        if not inputs:
            raise WorkflowError("%s has no input: give it one, or a source before it" % where)
        for topic in inputs:
            if topic not in writers:
                raise WorkflowError("%s reads topic %s, which no source or earlier step writes" % (where, topic))
        output = _topic("the output of %s" % where, raw.get("output") or "%s.%s" % (wf, name))
        make(output, where)
        dlq = _get(raw, "dlq", d["dlq"])
        if dlq is True:
            dlq = "%s.%s.dlq" % (wf, name)
        elif dlq in (False, ""):
            dlq = None
        else:
            dlq = _topic("the dead-letter topic of %s" % where, dlq)
        if dlq:
            make(dlq, "%s (dead letters)" % where)
        replicas = raw.get("replicas")
        # Fixed replicas without a scaling of its own: not scaled, whatever the default.
        scaling = _get(raw, "scaling", False if replicas is not None else d["scaling"])
        if scaling is False:
            scaling = None
            replicas = _int("the replicas of %s" % where, 1 if replicas is None else replicas, 0)
        else:
            if replicas is not None:
                raise WorkflowError("%s has both replicas and scaling: the scaler sets the replicas of a scaled function" % where)
            _unknown("the scaling of %s" % where, scaling, SCALING_KEYS)
            merged = dict(DEFAULT_SCALING, **{k: v for k, v in (d["scaling"] or {}).items() if k in SCALING_KEYS})
            merged.update(scaling)
            scaling = {
                "target_lag": _int("scaling.target_lag of %s" % where, merged["target_lag"], 1),
                "min": _int("scaling.min of %s" % where, merged["min"], 0),
                "max": _int("scaling.max of %s" % where, merged["max"], 1),
                "idle_seconds": _int("scaling.idle_seconds of %s" % where, merged["idle_seconds"], 0),
            }
            if scaling["min"] > scaling["max"]:
                raise WorkflowError("scaling.min of %s is more than its scaling.max" % where)
        labels = _strings("the labels of %s" % where, raw.get("labels"))
        if scaling:
            # The standard OpenFaaS scaling labels, for people and tools reading the function; the scaler itself is
            # configured from the plan.
            labels.setdefault("com.openfaas.scale.min", str(scaling["min"]))
            labels.setdefault("com.openfaas.scale.max", str(scaling["max"]))
            labels.setdefault("com.openfaas.scale.target", str(scaling["target_lag"]))
            labels.setdefault("com.openfaas.scale.zero", "true" if scaling["idle_seconds"] else "false")
        labels.setdefault("streamops.day2/workflow", wf)
        fn = {"name": function, "image": str(raw["image"]), "env": _strings("the env of %s" % where, raw.get("env")),
              "labels": labels, "annotations": _strings("the annotations of %s" % where, raw.get("annotations")),
              "secrets": [str(s) for s in raw.get("secrets") or []], "limits": raw.get("limits") or None,
              "requests": raw.get("requests") or None, "constraints": [str(c) for c in raw.get("constraints") or []],
              "replicas": replicas if scaling is None else None, "scaled": scaling is not None}
        functions.append(fn)
        group = "%s-%s" % (wf, name)
        runners.append({
            "name": "%s-%s-runner" % (wf, name) if len("%s-%s-runner" % (wf, name)) <= 63 else "%s-runner" % name,
            "step": name, "function": function, "group": group, "input": inputs, "output": output, "dlq": dlq,
            "replicas": _int("the runners of %s" % where, _get(raw, "runners", d["runners"]), 0),
            "concurrency": _int("the concurrency of %s" % where, _get(raw, "concurrency", d["concurrency"]), 1),
            "retries": _int("the retries of %s" % where, _get(raw, "retries", d["retries"]), 0),
            "backoff_ms": _int("the backoff_ms of %s" % where, _get(raw, "backoff_ms", d["backoff_ms"]), 0),
            "timeout_ms": _int("the timeout_ms of %s" % where, _get(raw, "timeout_ms", d["timeout_ms"]), 1),
        })
        if scaling:
            scaled.append({"function": function, "input_topics": inputs, "group": group, "target_lag": scaling["target_lag"],
                           "min_replicas": scaling["min"], "max_replicas": scaling["max"], "idle_seconds": scaling["idle_seconds"]})
        previous = [output]
    _unique("functions", [f["name"] for f in functions])

    for i, raw in enumerate(sinks):
        _unknown("sink %d" % (i + 1), raw, SINK_KEYS)
        name = _name("the name of sink %d" % (i + 1), raw.get("name"))
        topics = _topics("the topics of sink %s" % name, raw["topics"]) if raw.get("topics") else list(previous)
        for topic in topics:
            if topic not in writers:
                raise WorkflowError("sink %s reads topic %s, which no source or step writes" % (name, topic))
        config = {"key.converter": STRING_CONVERTER, "value.converter": STRING_CONVERTER,
                  # Only what the steps committed: an aborted transaction's records never reach the sink.
                  "consumer.override.isolation.level": "read_committed"}
        if raw.get("file"):
            config.update({"connector.class": FILE_SINK, "file": str(raw["file"]), "tasks.max": "1"})
        config.update(raw.get("config") or {})
        config["topics"] = ",".join(topics)
        if "connector.class" not in config:
            raise WorkflowError("sink %s needs a file or a config with connector.class" % name)
        connectors.append({"name": "%s-%s" % (wf, name), "kind": "sink", "config": _config(config)})
    _unique("sources and sinks", [c["name"] for c in connectors])

    topics = [{"name": t, "partitions": partitions, "replication_factor": replication, "config": copy.deepcopy(topic_config)} for t in made]
    return {"name": wf, "namespace": namespace, "topics": topics, "connectors": connectors, "functions": functions, "runners": runners,
            "scaler": {"name": "%s-scaler" % wf, "steps": scaled} if scaled else None}


def _config(config):
    """Connector config values as the strings Connect stores (None leaves a key out)."""
    out = {}
    for key, value in config.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        out[str(key)] = str(value)
    return out
