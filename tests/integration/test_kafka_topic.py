"""kafka_topic against the lab's three real brokers: create, grow, configure, delete; check, diff, idempotence, errors."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

# Every module call runs over PLAINTEXT, SASL_SSL and mTLS (tests/integration/conftest.py: LISTENERS).
pytestmark = pytest.mark.kafka_listeners

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def admin(kafka):
    return AdminClient({"bootstrap.servers": ",".join(kafka["bootstrap_servers"])})


@pytest.fixture
def topic(kafka, module, unique):
    """Runs kafka_topic on one fresh topic name; deletes the topic afterwards."""
    name = unique + "-topic"

    def call(check=False, diff=False, **args):
        return module("kafka_topic", dict(kafka, name=name, **args), check=check, diff=diff)

    call.name = name
    yield call
    call(state="absent")


def describe(admin, name):
    md = admin.list_topics(topic=name, timeout=10).topics[name]
    if md.error is not None:
        return None
    return [list(md.partitions[i].replicas) for i in sorted(md.partitions)]


def overrides(admin, name):
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    entries = admin.describe_configs([resource])[resource].result(timeout=10)
    return {k: e.value for k, e in entries.items() if e.source == 1}  # DYNAMIC_TOPIC_CONFIG


def test_check_mode_predicts_creation_without_creating(topic, admin):
    result = topic(check=True, diff=True, partitions=3, replication_factor=3)
    assert result["changed"] and result["rc"] == 0
    assert result["actions"] == ["create topic %s with 3 partitions, replication factor 3" % topic.name]
    assert result["diff"]["before"] == {} and result["diff"]["after"]["partitions"] == 3
    assert describe(admin, topic.name) is None


def test_check_mode_predicts_one_replica_list_per_partition_and_the_default_replication_factor(topic, admin):
    """It returned replicas: null (and replication_factor: null without one) for a topic it would create."""
    given = topic(check=True, partitions=3, replication_factor=2)
    assert given["topic"]["replicas"] == [[], [], []] and given["topic"]["replication_factor"] == 2, given["topic"]
    placed = topic(check=True, replica_assignment=[[1, 2], [2, 3]])
    assert placed["topic"]["replicas"] == [[1, 2], [2, 3]] and placed["topic"]["partitions"] == 2
    broker = sorted(admin.list_topics(timeout=10).brokers)[0]
    resource = ConfigResource(ConfigResource.Type.BROKER, str(broker))
    default = int(admin.describe_configs([resource])[resource].result(timeout=10)["default.replication.factor"].value)
    unset = topic(check=True, partitions=2)
    assert unset["topic"]["replication_factor"] == default and unset["topic"]["replicas"] == [[], []], unset["topic"]
    assert unset["actions"] == ["create topic %s with 2 partitions, replication factor %d (the brokers' default.replication.factor)"
                                % (topic.name, default)]
    assert describe(admin, topic.name) is None


@pytest.mark.plaintext_only
def test_an_ad_hoc_replica_assignment_is_read_as_json(kafka, topic, admin):
    """ansible -m kafka_topic -a 'replica_assignment=[[1,2],[2,3]]' failed with "broker id that is not an integer: ['[[1']"."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build" / "collections"))
    argv = [str(Path(sys.executable).parent / "ansible"), "localhost", "-i", "localhost,", "-c", "local", "-e",
            "ansible_python_interpreter=%s" % sys.executable, "-m", "streamops.day2.kafka_topic", "-a",
            "name=%s replica_assignment=[[1,2],[2,3]] bootstrap_servers=%s" % (topic.name, ",".join(kafka["bootstrap_servers"]))]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert describe(admin, topic.name) == [[1, 2], [2, 3]]


def test_create_then_nothing_to_do(topic, admin):
    first = topic(partitions=3, replication_factor=2, config={"retention.ms": 3600000})
    assert first["changed"] and first["topic"]["partitions"] == 3 and first["topic"]["replication_factor"] == 2
    replicas = describe(admin, topic.name)
    assert len(replicas) == 3 and all(len(r) == 2 for r in replicas)
    assert first["topic"]["replicas"] == replicas
    assert overrides(admin, topic.name) == {"retention.ms": "3600000"}

    second = topic(partitions=3, replication_factor=2, config={"retention.ms": 3600000})
    assert not second["changed"] and second["actions"] == []
    assert not topic(check=True, partitions=3, replication_factor=2, config={"retention.ms": 3600000})["changed"]


def test_explicit_replica_assignment_at_creation(topic, admin):
    result = topic(replica_assignment=[[1, 2], [2, 3], [3, 1], [1, 3]])
    assert result["changed"]
    assert describe(admin, topic.name) == [[1, 2], [2, 3], [3, 1], [1, 3]]


def test_partitions_grow_and_never_shrink(topic, admin):
    topic(partitions=2, replication_factor=1)
    grown = topic(diff=True, partitions=5)
    assert grown["changed"] and grown["diff"]["before"]["partitions"] == 2 and grown["diff"]["after"]["partitions"] == 5
    assert len(describe(admin, topic.name)) == 5
    assert not topic(partitions=5)["changed"]

    shrink = topic(partitions=3)
    assert shrink["failed"] and "cannot remove partitions" in shrink["msg"]
    assert "Traceback" not in shrink["msg"]
    assert len(describe(admin, topic.name)) == 5


def test_config_is_incremental_and_null_removes_the_override(topic, admin):
    topic(partitions=1, replication_factor=3, config={"retention.ms": 1000, "min.insync.replicas": 2})
    changed = topic(diff=True, config={"retention.ms": 2000})
    assert changed["changed"] and changed["actions"] == ["set retention.ms=2000"]
    assert changed["diff"]["before"]["config"] == {"retention.ms": "1000"}
    assert changed["diff"]["after"]["config"] == {"retention.ms": "2000"}
    assert overrides(admin, topic.name) == {"retention.ms": "2000", "min.insync.replicas": "2"}

    reset = topic(config={"retention.ms": None})
    assert reset["changed"] and overrides(admin, topic.name) == {"min.insync.replicas": "2"}
    assert not topic(config={"retention.ms": None})["changed"]


def test_check_mode_changes_no_config(topic, admin):
    topic(partitions=1, replication_factor=1, config={"retention.ms": 1000})
    predicted = topic(check=True, config={"retention.ms": 5000})
    assert predicted["changed"] and predicted["topic"]["config"] == {"retention.ms": "5000"}
    assert overrides(admin, topic.name) == {"retention.ms": "1000"}


def test_replication_factor_change_is_refused(topic, admin):
    topic(partitions=1, replication_factor=1)
    result = topic(replication_factor=3)
    assert result["failed"] and "kafka_reassignment" in result["msg"]
    assert describe(admin, topic.name) == [describe(admin, topic.name)[0]] and len(describe(admin, topic.name)[0]) == 1


def test_brokers_validate_a_bad_config_in_check_mode(topic, admin):
    result = topic(check=True, partitions=1, replication_factor=1, config={"cleanup.policy": "sometimes"})
    assert result["failed"] and "sometimes" in result["msg"]
    assert describe(admin, topic.name) is None


def test_unknown_broker_in_assignment_is_refused(topic, admin):
    result = topic(replica_assignment=[[1, 99]])
    assert result["failed"] and "99" in result["msg"]
    assert describe(admin, topic.name) is None


def test_delete_is_predicted_done_and_idempotent(topic, admin):
    topic(partitions=1, replication_factor=1)
    assert topic(check=True, state="absent")["changed"] and describe(admin, topic.name) is not None
    assert topic(state="absent")["changed"] and describe(admin, topic.name) is None
    assert not topic(state="absent")["changed"]


@pytest.mark.plaintext_only
def test_unreachable_brokers_give_one_clear_sentence(module, unique):
    result = module("kafka_topic", dict(name=unique, partitions=1, bootstrap_servers=["127.0.0.1:9"], request_timeout=3))
    assert result["failed"] and result["msg"].startswith("Cannot reach the Kafka brokers at 127.0.0.1:9")
    assert "Traceback" not in result["msg"]
