# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The pure parts: settings from the environment, the Kafka configurations they make, the gate's rule."""

from __future__ import annotations

import collections

import pytest

from streamops_consumer import Settings, SettingsError
from streamops_consumer.gate import others
from streamops_consumer.settings import kafka_conf_from_env

BASE = dict(KAFKA_BOOTSTRAP_SERVERS="k1:9092,k2:9092", STREAMOPS_GROUP="g", STREAMOPS_INPUT_TOPIC="a, b")


def settings(**env):
    return Settings.from_env(dict(BASE, **env))


def test_defaults():
    s = settings(STREAMOPS_INSTANCE="pod-1")
    assert (s.mode, s.start_gate, s.group_protocol, s.batch_records, s.batch_ms) == ("at-least-once", "none", "classic", 50, 200)
    assert s.input_topics == ["a", "b"] and s.output_topic is None
    assert s.ready_file == "/tmp/streamops-ready"
    assert s.client_id == "streamops:0:pod-1"
    conf = s.consumer_conf()
    assert conf["enable.auto.commit"] is False and conf["enable.auto.offset.store"] is False
    assert "isolation.level" not in conf
    assert conf["bootstrap.servers"] == "k1:9092,k2:9092" and conf["group.id"] == "g"


def test_exactly_once_configuration():
    s = settings(STREAMOPS_MODE="exactly-once", STREAMOPS_INSTANCE="pod-1", STREAMOPS_GENERATION="7d9f")
    assert s.consumer_conf()["isolation.level"] == "read_committed"
    assert s.producer_conf()["transactional.id"] == "streamops-g-pod-1"
    assert s.producer_conf()["client.id"] == s.consumer_conf()["client.id"] == "streamops:7d9f:pod-1"
    assert settings(STREAMOPS_MODE="exactly-once", STREAMOPS_TRANSACTIONAL_ID="tx").producer_conf()["transactional.id"] == "tx"


def test_auto_commit_is_the_ordinary_consumer():
    s = settings(STREAMOPS_MODE="auto-commit")
    conf = s.consumer_conf()
    assert conf["enable.auto.commit"] is True
    assert "enable.auto.offset.store" not in conf and "auto.commit.interval.ms" not in conf
    assert "transactional.id" not in s.producer_conf() and "enable.idempotence" not in s.producer_conf()


def test_group_protocol_and_assignor():
    classic = settings(STREAMOPS_ASSIGNOR="cooperative-sticky", STREAMOPS_GROUP_INSTANCE_ID="pod-1").consumer_conf()
    assert classic["partition.assignment.strategy"] == "cooperative-sticky" and classic["group.instance.id"] == "pod-1"
    kip848 = settings(STREAMOPS_GROUP_PROTOCOL="consumer", STREAMOPS_ASSIGNOR="uniform").consumer_conf()
    assert kip848["group.protocol"] == "consumer" and kip848["group.remote.assignor"] == "uniform"
    # Properties the new protocol rejects must not be set for it.
    assert "partition.assignment.strategy" not in kip848 and "heartbeat.interval.ms" not in kip848


def test_kafka_conf_passthrough():
    env = dict(KAFKA_CONF_SECURITY_PROTOCOL="SASL_SSL", KAFKA_CONF_SASL_MECHANISMS="SCRAM-SHA-512", KAFKA_CONF_SSL__KEY="x",
               KAFKA_CONF_="ignored", OTHER="ignored")
    assert kafka_conf_from_env(env) == {"security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512", "ssl_key": "x"}
    s = settings(STREAMOPS_MODE="exactly-once", KAFKA_CONF_AUTO_OFFSET_RESET="latest", KAFKA_CONF_CLIENT_ID="mine",
                 KAFKA_CONF_ENABLE_AUTO_COMMIT="true", KAFKA_CONF_ISOLATION_LEVEL="read_uncommitted", KAFKA_CONF_TRANSACTION_TIMEOUT_MS="20000")
    consumer, producer = s.consumer_conf(), s.producer_conf()
    # Defaults give way; what the guarantees and the gate rest on does not.
    assert consumer["auto.offset.reset"] == "latest" and producer["transaction.timeout.ms"] == "20000"
    assert consumer["client.id"].startswith("streamops:") and consumer["enable.auto.commit"] is False
    assert consumer["isolation.level"] == "read_committed"


def test_bootstrap_servers_from_passthrough_only():
    env = dict(BASE, KAFKA_CONF_BOOTSTRAP_SERVERS="k3:9093")
    del env["KAFKA_BOOTSTRAP_SERVERS"]
    assert Settings.from_env(env).consumer_conf()["bootstrap.servers"] == "k3:9093"


@pytest.mark.parametrize("env", [
    dict(STREAMOPS_MODE="exactly_once"),
    dict(STREAMOPS_START_GATE="later"),
    dict(STREAMOPS_GROUP_PROTOCOL="new"),
    dict(STREAMOPS_BATCH="0"),
    dict(STREAMOPS_SLOW_MS="fast"),
    dict(STREAMOPS_GROUP=""),
    dict(STREAMOPS_INPUT_TOPIC=" , "),
    dict(KAFKA_BOOTSTRAP_SERVERS=""),
    dict(STREAMOPS_GENERATION="a:b"),
])
def test_bad_settings(env):
    with pytest.raises(SettingsError):
        settings(**env)


def test_slowness_applies_to_the_listed_nodes_only():
    assert settings().slow_seconds == 0
    assert settings(STREAMOPS_SLOW_MS="250").slow_seconds == 0.25
    listed = dict(STREAMOPS_SLOW_MS="250", STREAMOPS_SLOW_NODES="edge-1, edge-2")
    assert settings(STREAMOPS_NODE_NAME="edge-2", **listed).slow_seconds == 0.25
    assert settings(STREAMOPS_NODE_NAME="core-1", **listed).slow_seconds == 0
    assert settings(**listed).slow_seconds == 0


def test_gate_waits_for_every_other_generation():
    Member = collections.namedtuple("Member", "client_id")
    members = [Member("streamops:g2:pod-b"), Member("streamops:g1:pod-a"), Member("rdkafka"), Member(None), Member("streamops:g22:x")]
    assert others(members, "g2") == ["", "rdkafka", "streamops:g1:pod-a", "streamops:g22:x"]
    assert others([Member("streamops:g2:pod-b")], "g2") == []
    assert others([], "g2") == []
