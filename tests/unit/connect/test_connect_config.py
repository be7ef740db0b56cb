"""kafka_connect_connector's pure logic: aliases, values as Connect stores them, comparison, masking, states, retries
(and which of Connect's answers are a rebalance to wait out)."""

import io
import json
from urllib.error import HTTPError

import pytest

from ansible_collections.streamops.day2.plugins.module_utils._connect import ConnectClient, ConnectError
from ansible_collections.streamops.day2.plugins.module_utils._connect_config import (
    HIDDEN,
    SECRET,
    SECRET_CHANGED,
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
    validation_errors,
    validation_message,
)

SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"
SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"
PLUGINS = [{"class": SINK, "type": "sink"}, {"class": SOURCE, "type": "source"}]
ALIASES = plugin_aliases(PLUGINS)

# The shape of Connect's validation answer, with the declared types the comparison relies on.
VALIDATION = {"configs": [
    {"definition": {"name": "name", "type": "STRING", "default_value": None}, "value": {"name": "name", "errors": []}},
    {"definition": {"name": "connector.class", "type": "STRING", "default_value": None}, "value": {"name": "connector.class", "errors": []}},
    {"definition": {"name": "tasks.max", "type": "INT", "default_value": "1"}, "value": {"name": "tasks.max", "errors": []}},
    {"definition": {"name": "errors.tolerance", "type": "STRING", "default_value": "none"}, "value": {"name": "errors.tolerance", "errors": []}},
    {"definition": {"name": "errors.log.enable", "type": "BOOLEAN", "default_value": "false"}, "value": {"name": "errors.log.enable", "errors": []}},
    {"definition": {"name": "topics", "type": "LIST", "default_value": ""}, "value": {"name": "topics", "errors": []}},
    {"definition": {"name": "batch.size", "type": "INT", "default_value": "2000"}, "value": {"name": "batch.size", "errors": []}},
    {"definition": {"name": "producer.override.sasl.jaas.config", "type": "PASSWORD", "default_value": None},
     "value": {"name": "producer.override.sasl.jaas.config", "errors": []}},
]}
DEFS = config_definitions(VALIDATION)


def current(**extra):
    base = {"connector.class": "FileStreamSource", "file": "/tmp/in", "topic": "t", "tasks.max": "1", "name": "c1"}
    base.update(extra)
    return base


# -- aliases ------------------------------------------------------------------------------------

def test_every_alias_connect_accepts_names_the_full_class():
    for alias in (SOURCE, "FileStreamSourceConnector", "FileStreamSource", " FileStreamSource "):
        assert resolve_class(alias, ALIASES) == SOURCE
    assert resolve_class("FileStreamSink", ALIASES) == SINK
    assert resolve_class("FileStream", ALIASES) is None
    assert resolve_class("com.example.Nope", ALIASES) is None


def test_an_alias_two_plugins_share_is_not_an_alias():
    aliases = plugin_aliases([{"class": "a.x.JdbcSinkConnector"}, {"class": "b.y.JdbcSinkConnector"}])
    assert resolve_class("JdbcSinkConnector", aliases) is None and resolve_class("JdbcSink", aliases) is None
    assert resolve_class("a.x.JdbcSinkConnector", aliases) == "a.x.JdbcSinkConnector"


# -- the configuration sent -------------------------------------------------------------------

def test_values_become_the_strings_connect_stores_and_name_is_implicit():
    sent = desired_config({"tasks.max": 2, "errors.log.enable": True, "topics": ["a", "b"], "ratio": 0.5, "whole": 3.0, "gone": None},
                          "c1")
    assert sent == {"tasks.max": "2", "errors.log.enable": "true", "topics": "a,b", "ratio": "0.5", "whole": "3", "name": "c1"}
    assert desired_config({"name": "c1"}, "c1") == {"name": "c1"}


@pytest.mark.parametrize("config, fragment", [
    ({"name": "other"}, "Config key name (other) differs from the connector's name (c1)"),
    ({"transforms": {"a": 1}}, "Config key transforms has a mapping"),
    ({"topics": ["a,b", "c"]}, "Config key topics: a list item is empty or holds a comma"),
])
def test_configurations_that_cannot_be_sent_are_refused_in_one_sentence(config, fragment):
    with pytest.raises(ConfigValueError) as error:
        desired_config(config, "c1")
    assert fragment in str(error.value) and str(error.value).endswith(".")


# -- comparison with the effective configuration ----------------------------------------------

def test_same_configuration_written_differently_is_unchanged():
    stored = current(**{"errors.log.enable": "TRUE", "topics": "a, b", "batch.size": " 500"})
    asked = desired_config({"connector.class": SOURCE, "file": "/tmp/in", "topic": "t", "tasks.max": 1,
                            "errors.log.enable": True, "topics": ["a", "b"], "batch.size": 500}, "c1")
    delta = compare_config(asked, stored, DEFS, ALIASES)
    assert not delta.differs and delta.unknown == []


def test_a_key_left_out_equals_its_declared_default():
    asked = desired_config({"connector.class": "FileStreamSource", "file": "/tmp/in", "topic": "t"}, "c1")  # no tasks.max
    assert not compare_config(asked, current(), DEFS, ALIASES).differs
    with_default = desired_config({"connector.class": "FileStreamSource", "file": "/tmp/in", "topic": "t", "tasks.max": 1,
                                   "errors.tolerance": "none"}, "c1")
    stored_without = {k: v for k, v in current().items() if k != "tasks.max"}
    assert not compare_config(with_default, stored_without, DEFS, ALIASES).differs


def test_changed_added_and_removed_keys_are_told_apart():
    asked = desired_config({"connector.class": "FileStreamSource", "file": "/tmp/other", "tasks.max": 1, "batch.size": 10}, "c1")
    delta = compare_config(asked, current(), DEFS, ALIASES)
    assert (delta.changed, delta.added, delta.removed) == (["file"], ["batch.size"], ["topic"])
    assert delta.describe() == "set batch.size; change file; remove topic"


def test_undeclared_keys_compare_verbatim_and_a_different_class_is_a_change():
    asked = desired_config({"connector.class": "FileStreamSource", "file": "/tmp/in ", "topic": "t"}, "c1")
    assert compare_config(asked, current(), DEFS, ALIASES).changed == ["file"]  # 'file' undeclared here: not trimmed
    sink = desired_config({"connector.class": "FileStreamSink", "file": "/tmp/in", "topic": "t"}, "c1")
    assert compare_config(sink, current(), DEFS, ALIASES).changed == ["connector.class"]


def test_a_new_connector_adds_every_key_but_name():
    asked = desired_config({"connector.class": "FileStreamSource", "topic": "t"}, "c1")
    delta = compare_config(asked, None, DEFS, ALIASES)
    assert delta.added == ["connector.class", "topic"] and delta.differs


def test_a_masked_current_value_is_unknown_not_changed():
    key = "producer.override.sasl.jaas.config"
    asked = desired_config({"connector.class": "FileStreamSource", "file": "/tmp/in", "topic": "t", key: "new-secret"}, "c1")
    delta = compare_config(asked, current(**{key: HIDDEN}), DEFS, ALIASES)
    assert delta.unknown == [key] and not delta.differs
    # not asked for any more: the update removes it, which is a change
    plain = desired_config({"connector.class": "FileStreamSource", "file": "/tmp/in", "topic": "t"}, "c1")
    assert compare_config(plain, current(**{key: HIDDEN}), DEFS, ALIASES).removed == [key]


def test_a_secret_stored_verbatim_is_compared_like_any_value():
    key = "producer.override.sasl.jaas.config"
    asked = desired_config({"connector.class": "FileStreamSource", "file": "/tmp/in", "topic": "t", key: "new"}, "c1")
    assert compare_config(asked, current(**{key: "old"}), DEFS, ALIASES).changed == [key]
    assert not compare_config(asked, current(**{key: "new"}), DEFS, ALIASES).differs


# -- masking ----------------------------------------------------------------------------------

def test_secrets_are_masked_by_declared_type_and_by_name():
    config = current(**{"producer.override.sasl.jaas.config": "s1", "connection.password": "s2", "aws.secret.access.key": "s3",
                        "basic.auth.user.info": "u:p", "key.converter": "StringConverter"})
    shown = masked(config, DEFS)
    assert shown["producer.override.sasl.jaas.config"] == shown["connection.password"] == SECRET
    assert shown["aws.secret.access.key"] == shown["basic.auth.user.info"] == SECRET
    assert shown["key.converter"] == "StringConverter" and shown["file"] == "/tmp/in"
    assert secret_values(config, DEFS) == {"s1", "s2", "s3", "u:p"}


def test_a_changed_secret_shows_as_changed_without_its_value():
    before = current(**{"connection.password": "old"})
    after = current(**{"connection.password": "new"})
    assert masked(after, DEFS, before)["connection.password"] == SECRET_CHANGED
    assert masked(before, DEFS)["connection.password"] == SECRET
    assert masked(before, DEFS, before)["connection.password"] == SECRET
    assert masked(current(**{"connection.password": HIDDEN}), DEFS)["connection.password"] == HIDDEN


# -- validation -------------------------------------------------------------------------------

def test_every_validation_error_in_one_sentence_naming_the_fields():
    answer = {"configs": [
        {"definition": {"name": "tasks.max"}, "value": {"name": "tasks.max", "errors": [
            "Invalid value abc for configuration tasks.max: Not a number of type INT", "Value must be non-null"]}},
        {"definition": {"name": "topic"}, "value": {"name": "topic", "errors": ["Missing required configuration \"topic\" which has no default value."]}},
        {"definition": {"name": "file"}, "value": {"name": "file", "errors": []}},
    ]}
    errors = validation_errors(answer)
    assert list(errors) == ["tasks.max", "topic"]
    message = validation_message("c1", errors)
    assert message == ("Kafka Connect rejected the configuration of connector c1, nothing was changed: tasks.max (Invalid value abc "
                       "for configuration tasks.max: Not a number of type INT; Value must be non-null); topic (Missing required "
                       "configuration \"topic\" which has no default value).")
    assert "\n" not in message


# -- states -----------------------------------------------------------------------------------

@pytest.mark.parametrize("now, target, request_", [
    ("RUNNING", "RUNNING", None), ("PAUSED", "RUNNING", "resume"), ("STOPPED", "RUNNING", "resume"),
    ("UNASSIGNED", "RUNNING", None), ("FAILED", "RUNNING", None), (None, "RUNNING", None),
    ("RUNNING", "PAUSED", "pause"), ("STOPPED", "PAUSED", "pause"), ("PAUSED", "PAUSED", None),
    ("RUNNING", "STOPPED", "stop"), ("PAUSED", "STOPPED", "stop"), ("STOPPED", "STOPPED", None),
    ("PAUSED", None, None),
])
def test_the_request_towards_a_state(now, target, request_):
    assert state_request(now, target) == request_


def status(connector, *tasks):
    return {"connector": {"state": connector}, "tasks": [dict(id=i, state=s) for i, s in enumerate(tasks)]}


def test_a_state_is_reached_by_the_connector_and_every_generated_task():
    assert reached(status("RUNNING", "RUNNING", "RUNNING"), 2, "RUNNING")
    assert not reached(status("RUNNING", "RUNNING"), 2, "RUNNING")  # a task not reported yet
    assert not reached(status("RUNNING"), 0, "RUNNING")  # tasks not generated yet
    assert not reached(status("PAUSED", "RUNNING"), 1, "PAUSED")  # the task has not paused yet
    assert reached(status("PAUSED", "PAUSED"), 1, "PAUSED")
    assert reached(status("PAUSED"), 0, "PAUSED")  # a stopped connector paused: it generates no task
    assert not reached(status("PAUSED"), 1, "PAUSED")
    assert not reached(status("STOPPED", "RUNNING"), 0, "STOPPED")  # Connect still shows the old task
    assert reached(status("STOPPED"), 0, "STOPPED")
    assert not reached(None, 1, "RUNNING")


def test_failed_parts_name_what_failed_with_the_first_line_of_its_trace():
    st = status("RUNNING", "RUNNING", "FAILED")
    st["tasks"][1]["trace"] = "org.apache.kafka.connect.errors.ConnectException: no file\n\tat x.y(Z.java:1)\n"
    assert failed_parts(st) == [("task 1", "org.apache.kafka.connect.errors.ConnectException: no file")]
    assert failed_parts(status("FAILED")) == [("connector", "no trace given")]


# -- retries on 409 ---------------------------------------------------------------------------

class Clock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_conflicts_are_retried_with_a_doubling_capped_back_off():
    clock, answers = Clock(), iter([Conflict("rebalance")] * 6 + ["ok"])

    def attempt():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert retry_conflicts(attempt, 30, sleep=clock.sleep, clock=clock) == ("ok", 6)
    assert clock.sleeps == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0]


def test_conflicts_past_the_budget_raise_the_last_one():
    clock = Clock()

    def attempt():
        raise Conflict("still rebalancing")

    with pytest.raises(Conflict):
        retry_conflicts(attempt, 5, sleep=clock.sleep, clock=clock)
    assert sum(clock.sleeps) == pytest.approx(5.0) and clock.now == pytest.approx(5.0)


def connect_answers(*errors):
    """A ConnectClient whose HTTP layer raises these Connect errors (status, message), then answers {}."""
    client = ConnectClient(dict(url="http://127.0.0.1:1", timeout=1, validate_certs=True, url_username=None,
                                url_password=None, client_cert=None, client_key=None, ca_path=None))
    pending = list(errors)

    def open_(method, url, data=None):
        if pending:
            code, message = pending.pop(0)
            body = io.BytesIO(json.dumps({"error_code": code, "message": message}).encode())
            raise HTTPError(url, code, "error", {}, body)
        return type("Response", (), {"status": 200, "read": lambda self: b"{}"})()
    client._request.open = open_
    return client


@pytest.mark.parametrize("code, message", [
    (409, "Cannot complete request momentarily due to stale configuration (typically caused by a concurrent config change)"),
    (500, "Request cannot be completed because a rebalance is expected"),   # Connect's RebalanceNeededException
])
def test_a_rebalance_in_progress_is_retried_not_failed(code, message):
    assert connect_answers((code, message)).call("GET", "/connectors/c") == (200, {})


def test_any_other_server_error_fails_in_one_sentence():
    with pytest.raises(ConnectError, match=r"^Kafka Connect at http://127.0.0.1:1 answered HTTP 500 to GET /connectors/c: disk full\.$"):
        connect_answers((500, "disk full")).call("GET", "/connectors/c")
