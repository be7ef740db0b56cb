"""kafka_reassignment against the lab's three real brokers.

Execute, resume, cancel, throttle (compared with what Kafka's own tool sets), caps, refusals, and a
broker stopped in the middle of a move. Every assertion reads the cluster through a plain client or
Kafka's tool, never through the module under test.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, NewTopic
from kafka import KafkaAdminClient
from kafka import errors as kafka_errors

from conftest import ROOT

# Every module call runs over PLAINTEXT, SASL_SSL and mTLS (tests/integration/conftest.py: LISTENERS).
pytestmark = pytest.mark.kafka_listeners

THROTTLE_KEYS = ("leader.replication.throttled.replicas", "follower.replication.throttled.replicas")
RATE_KEYS = ("leader.replication.throttled.rate", "follower.replication.throttled.rate")
LAB_KAFKA = ROOT / "tests" / "lab" / "kafka.sh"


# --- observers and helpers ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def admin(kafka):
    return AdminClient({"bootstrap.servers": ",".join(kafka["bootstrap_servers"])})


class Observer:
    """kafka-python's admin client for the reassignment APIs, built afresh after an error: it keeps sending controller
    requests to the broker it first picked, even after that broker stopped (the fault tests stop one)."""

    def __init__(self, servers):
        self.servers = servers
        self.client = None

    def _call(self, name, *args):
        for attempt in range(5):
            if self.client is None:
                self.client = KafkaAdminClient(bootstrap_servers=self.servers, client_id="it-observer")
            try:
                return getattr(self.client, name)(*args)
            except kafka_errors.KafkaError:
                self.close()
                if attempt == 4:
                    raise
                time.sleep(0.5)
        return None

    def list_partition_reassignments(self):
        return self._call("list_partition_reassignments")

    def alter_partition_reassignments(self, request):
        return self._call("alter_partition_reassignments", request)

    def close(self):
        if self.client is not None:
            try:
                self.client.close()
            except Exception:
                pass
            self.client = None


@pytest.fixture(scope="module")
def kp_admin(kafka):
    observer = Observer(kafka["bootstrap_servers"])
    yield observer
    observer.close()


@pytest.fixture(scope="module")
def bootstrap(kafka):
    return ",".join(kafka["bootstrap_servers"])


@pytest.fixture
def topics(admin, kp_admin, bootstrap):
    """Creates topics with an explicit placement and data; cancels their moves and deletes them afterwards."""
    created = []

    def make(name, placement, messages=0, size=1000):
        admin.create_topics([NewTopic(name, num_partitions=len(placement), replica_assignment=placement)])[name].result(30)
        wait_for(lambda: replicas(admin, name) == placement, "topic %s created" % name)
        if messages:
            produce(bootstrap, name, len(placement), messages, size)
        created.append(name)
        return name

    yield make
    ongoing = [tp for tp in kp_admin.list_partition_reassignments() if tp.topic in created]
    if ongoing:
        kp_admin.alter_partition_reassignments({tp: None for tp in ongoing})
    for name in created:
        clear_throttle_configs(admin, name)
        admin.delete_topics([name])[name].result(30)


def produce(bootstrap, topic, partitions, messages, size):
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all"})
    payload = b"x" * size
    for n in range(messages):
        producer.produce(topic, payload, key=b"%d" % n, partition=n % partitions)
        if n % 1000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0


def count_messages(bootstrap, topic, partitions):
    """Every message readable from the beginning of each partition (read to the log end)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "it-reader-%s" % topic, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "enable.partition.eof": True})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    count, at_end, deadline = 0, set(), time.monotonic() + 60
    while len(at_end) < partitions and time.monotonic() < deadline:
        msg = consumer.poll(1)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                at_end.add(msg.partition())
            continue
        count += 1
    consumer.close()
    return count


def replicas(admin, topic):
    md = admin.list_topics(topic=topic, timeout=10).topics[topic]
    return [list(p.replicas) for unused, p in sorted(md.partitions.items())]


def leaders(admin, topic):
    md = admin.list_topics(topic=topic, timeout=10).topics[topic]
    return [p.leader for unused, p in sorted(md.partitions.items())]


def topic_throttle(admin, topic):
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(30)
    return {k: entries[k].value for k in THROTTLE_KEYS if k in entries and ConfigSource(entries[k].source) == ConfigSource.DYNAMIC_TOPIC_CONFIG}


def broker_throttles(admin):
    found = {}
    for broker in sorted(admin.list_topics(timeout=10).brokers):
        resource = ConfigResource(ConfigResource.Type.BROKER, str(broker))
        entries = admin.describe_configs([resource])[resource].result(10)
        rates = {k: entries[k].value for k in RATE_KEYS if k in entries and ConfigSource(entries[k].source) == ConfigSource.DYNAMIC_BROKER_CONFIG}
        if rates:
            found[broker] = rates
    return found


def clear_throttle_configs(admin, topic):
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry
    resources = [ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry(k, None, incremental_operation=AlterConfigOpType.DELETE) for k in THROTTLE_KEYS])]
    for broker in admin.list_topics(timeout=10).brokers:
        resources.append(ConfigResource(ConfigResource.Type.BROKER, str(broker), incremental_configs=[
            ConfigEntry(k, None, incremental_operation=AlterConfigOpType.DELETE) for k in RATE_KEYS]))
    for resource in resources:  # librdkafka: one broker resource per call
        for future in admin.incremental_alter_configs([resource]).values():
            future.result(10)


def ongoing(kp_admin, topic):
    return sorted(tp.partition for tp in kp_admin.list_partition_reassignments() if tp.topic == topic)


def warnings_of(result):
    """The warnings of a result as one text (ansible-core 2.19 returns them as structured events)."""
    return json.dumps(result.get("warnings", []))


def wait_for(condition, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.3)


def plan_of(topic, placement):
    return {"version": 1, "partitions": [{"topic": topic, "partition": n, "replicas": r} for n, r in enumerate(placement)]}


def kafka_tool(*args):
    proc = subprocess.run([os.environ.get("KAFKA_TOOL", str(ROOT / "tests" / "lab" / "kafka-tool")), *args],
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture
def reassign(kafka, module):
    def call(check=False, diff=False, **args):
        args.setdefault("poll_interval", 0.5)
        return module("kafka_reassignment", dict(kafka, **args), check=check, diff=diff)
    return call


@pytest.fixture
def no_throttle_left(admin):
    """Checks after the test that no broker holds a throttle rate (a test that fails still shows what lingered)."""
    yield
    assert broker_throttles(admin) == {}


# --- check mode, execution, idempotence ---------------------------------------------------------

def test_check_mode_lists_the_moves_and_changes_nothing(reassign, topics, admin, unique):
    name = topics(unique, [[1], [1], [2]], messages=300)
    plan = plan_of(name, [[2], [3], [2]])
    result = reassign(check=True, diff=True, plan=plan, throttle="10MB")
    assert result["changed"] and result["rc"] == 0
    assert [(m["partition"], m["status"]) for m in result["moves"]] == [(0, "would_move"), (1, "would_move")]
    # batches in the shape a real run returns them: {at, partitions}, at unknown before the run
    assert result["batches"] and all(set(b) == {"at", "partitions"} and b["at"] is None for b in result["batches"]), result["batches"]
    assert sorted(p for b in result["batches"] for p in b["partitions"]) == ["%s-0" % name, "%s-1" % name]
    assert all(m["bytes"] > 0 for m in result["moves"])
    assert result["diff"]["before"]["partitions"] == [{"topic": name, "partition": 0, "replicas": [1]},
                                                      {"topic": name, "partition": 1, "replicas": [1]}]
    assert result["diff"]["after"]["partitions"][1]["replicas"] == [3]
    assert result["fingerprint"].startswith("sha256:")
    assert result["rollback_plan"] == result["diff"]["before"]
    assert replicas(admin, name) == [[1], [1], [2]]
    assert topic_throttle(admin, name) == {} and broker_throttles(admin) == {}


def test_execute_moves_throttles_elects_and_cleans_up_then_nothing_to_do(reassign, topics, admin, unique, no_throttle_left, bootstrap):
    name = topics(unique, [[1, 2], [2, 3], [3, 1], [1, 2]], messages=2000)
    target = [[2, 3], [3, 1], [1, 3], [2, 1]]  # 0 and 1 copy a replica, 2 and 3 only get a new preferred leader
    result = reassign(diff=True, plan=plan_of(name, target), throttle="20MB")
    assert result["rc"] == 0 and result["changed"], result["msg"] if "msg" in result else result
    assert replicas(admin, name) == target
    assert leaders(admin, name) == [r[0] for r in target]
    assert count_messages(bootstrap, name, 4) == 2000
    assert topic_throttle(admin, name) == {}
    assert result["progress"]["moved"] == 4 and result["progress"]["pending"] == 0 and result["progress"]["in_flight"] == 0
    assert result["throttle"]["rate"] == 20_000_000 and result["throttle"]["removed"]["topics"] == [name]
    assert {m["status"] for m in result["moves"]} == {"moved"}
    assert result["batches"] and all(set(b) == {"at", "partitions"} and b["at"] >= 0 for b in result["batches"]), result["batches"]
    assert result["actions"][0].startswith("throttle 20.0 MB/s") and result["actions"][-1].startswith("remove throttle")

    again = reassign(plan=plan_of(name, target), throttle="20MB")
    assert not again["changed"] and again["moves"] == [] and again["progress"]["at_target_before"] == 4
    assert not reassign(check=True, plan=plan_of(name, target))["changed"]


def test_a_new_preferred_leader_is_elected_after_a_reorder(reassign, topics, admin, unique):
    name = topics(unique, [[1, 2]])
    wait_for(lambda: leaders(admin, name) == [1], "leader 1")
    result = reassign(plan=plan_of(name, [[2, 1]]))
    assert result["changed"] and replicas(admin, name) == [[2, 1]]
    wait_for(lambda: leaders(admin, name) == [2], "leader 2")
    assert result["moves"][0]["bytes"] == 0


def test_plan_file_and_approved_fingerprint(reassign, topics, admin, unique, tmp_path):
    name = topics(unique, [[1], [2]])
    plan = plan_of(name, [[3], [2]])
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan, indent=2))
    preview = reassign(check=True, plan_file=str(path))
    other = reassign(plan=plan_of(name, [[3], [1]]), fingerprint=preview["fingerprint"])
    assert other["failed"] and "not the plan that was approved" in other["msg"]
    assert replicas(admin, name) == [[1], [2]]
    done = reassign(plan_file=str(path), fingerprint=preview["fingerprint"])
    assert done["changed"] and done["fingerprint"] == preview["fingerprint"]
    assert replicas(admin, name) == [[3], [2]]


# --- refusals -------------------------------------------------------------------------------------

def test_a_plan_that_does_not_fit_the_cluster_is_refused_before_anything_moves(reassign, topics, admin, unique):
    name = topics(unique, [[1, 2], [2, 3]])
    plan = {"version": 1, "partitions": [
        {"topic": name, "partition": 0, "replicas": [3, 1]},      # fine on its own
        {"topic": name, "partition": 1, "replicas": [1, 2, 3]},   # replication factor change
        {"topic": name, "partition": 5, "replicas": [1, 2]},      # no such partition
        {"topic": unique + "-ghost", "partition": 0, "replicas": [1]},
    ]}
    result = reassign(plan=plan)
    assert result["failed"] and "Traceback" not in result["msg"]
    for fragment in ("nothing was moved", "%s-1 would change replication factor from 2 to 3" % name,
                     "partition %s-5 does not exist" % name, "topic %s-ghost does not exist" % unique):
        assert fragment in result["msg"]
    assert replicas(admin, name) == [[1, 2], [2, 3]]
    unknown_broker = reassign(plan=plan_of(name, [[1, 42], [2, 3]]))
    assert unknown_broker["failed"] and "broker 42 is not in the cluster (brokers: 1,2,3)" in unknown_broker["msg"]


def test_malformed_plan_and_bad_options_give_one_sentence(reassign, topics, unique):
    name = topics(unique, [[1]])
    for args, fragment in [
        (dict(plan='{"version": 1, "partitions": [{"topic": "%s", "partition": 0, "replicas": [2, 2]}]}' % name), "names a broker twice"),
        (dict(plan=plan_of(name, [[2]]), throttle="fast"), "is not a rate"),
        (dict(plan=plan_of(name, [[2]]), max_concurrent_moves_per_broker=0), "at least 1"),
        (dict(plan_file="/nonexistent/plan.json"), "Cannot read plan_file"),
        (dict(), "plan, plan_file"),
    ]:
        result = reassign(**args)
        assert result["failed"] and fragment in result["msg"], (args, result["msg"])


@pytest.mark.plaintext_only
def test_unreachable_brokers_give_one_clear_sentence(module, unique):
    result = module("kafka_reassignment", dict(plan=plan_of(unique, [[1]]), bootstrap_servers=["127.0.0.1:9"], request_timeout=3))
    assert result["failed"] and result["msg"].startswith("Cannot reach the Kafka brokers at 127.0.0.1:9")


# --- the throttle is Kafka's throttle ---------------------------------------------------------

def test_throttle_configs_are_those_kafkas_tool_sets(reassign, topics, admin, kafka, unique, tmp_path, no_throttle_left):
    name = topics(unique, [[1, 2], [2, 3], [3, 1]], messages=300)
    before = [[1, 2], [2, 3], [3, 1]]
    target = [[2, 3], [3, 1], [1, 3]]
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan_of(name, target)))
    bootstrap = kafka["bootstrap_servers"][0]

    kafka_tool("reassign-partitions", "--bootstrap-server", bootstrap, "--execute", "--reassignment-json-file", str(plan_file),
               "--throttle", "7000000")
    wait_for(lambda: len(topic_throttle(admin, name)) == 2 and len(broker_throttles(admin)) == 3, "the tool's throttle to show", 15)
    tool_topic, tool_brokers = topic_throttle(admin, name), broker_throttles(admin)
    wait_for(lambda: replicas(admin, name) == target, "the tool's moves")
    # --verify clears the throttle only once the broker it asks shows every move done, and a broker's metadata can lag
    # the one seen above by a moment: an operator runs it again until it says it cleared them, so does the test. The
    # cleared configs, too, reach every broker a moment later than the one that took them.
    verify = ("reassign-partitions", "--bootstrap-server", bootstrap, "--verify", "--reassignment-json-file", str(plan_file))
    wait_for(lambda: "Clearing topic-level throttles" in kafka_tool(*verify), "the tool's --verify to clear its throttle", 30)
    wait_for(lambda: topic_throttle(admin, name) == {} and broker_throttles(admin) == {}, "the cleared throttle to show", 15)

    assert reassign(plan=plan_of(name, before), elect_leaders=False)["changed"]  # back to the start, unthrottled
    ours = reassign(plan=plan_of(name, target), throttle=7000000, keep_throttle=True)
    assert ours["changed"] and ours["throttle"]["kept"] and replicas(admin, name) == target
    wait_for(lambda: len(topic_throttle(admin, name)) == 2 and len(broker_throttles(admin)) == 3, "our throttle to show", 15)
    assert topic_throttle(admin, name) == tool_topic
    assert broker_throttles(admin) == tool_brokers
    assert tool_topic == {"leader.replication.throttled.replicas": "0:1,0:2,1:2,1:3,2:1,2:3",
                          "follower.replication.throttled.replicas": "0:3,1:1"}

    cleared = reassign(state="absent", plan=plan_of(name, target))
    assert cleared["changed"] and cleared["cancelled"] == [] and cleared["throttle"]["removed"]["topics"] == [name]
    assert topic_throttle(admin, name) == {} and broker_throttles(admin) == {}
    assert not reassign(state="absent", plan=plan_of(name, target))["changed"]


# --- in flight: resume, cancel, timeout ---------------------------------------------------------

def test_wait_false_starts_and_a_second_run_resumes_and_finishes(reassign, topics, admin, kp_admin, unique, no_throttle_left):
    name = topics(unique, [[1], [1]], messages=6000)  # 3 MB a partition
    plan = plan_of(name, [[2], [3]])
    started = reassign(plan=plan, throttle="100kB", wait=False)
    assert started["changed"] and started["progress"]["in_flight"] == 2
    assert started["throttle"]["kept"] and "stays in place" in warnings_of(started)
    assert ongoing(kp_admin, name) == [0, 1]
    assert topic_throttle(admin, name)  # the running moves need it

    resumed = reassign(plan=plan, throttle="50MB")
    assert resumed["rc"] == 0 and resumed["changed"]
    assert resumed["actions"][1].startswith("resume 2 move(s) already running")
    assert resumed["progress"]["moved"] == 2 and replicas(admin, name) == [[2], [3]]
    assert ongoing(kp_admin, name) == [] and topic_throttle(admin, name) == {}


def test_cancel_puts_the_partitions_back_on_their_original_replicas(reassign, topics, admin, kp_admin, unique, no_throttle_left, bootstrap):
    name = topics(unique, [[1, 2], [2, 3]], messages=4000)  # 4 MB
    plan = plan_of(name, [[3, 1], [1, 3]])
    # 20 kB/s: 100 s a partition, so both moves still run whatever a busy machine makes of the next steps (it cancels them)
    started = reassign(plan=plan, throttle="20kB", wait=False)
    assert started["changed"] and ongoing(kp_admin, name) == [0, 1]

    wait_for(lambda: broker_throttles(admin), "the throttle of the moves to show", 15)
    predicted = reassign(check=True, state="absent", plan=plan)
    assert predicted["changed"] and ongoing(kp_admin, name) == [0, 1]
    assert broker_throttles(admin) and topic_throttle(admin, name)   # check mode removed nothing
    cancelled = reassign(state="absent", diff=True, plan=plan)
    # check mode predicted the throttle removal the real run did (brokers and topic), and said so in its actions
    assert cancelled["throttle"]["removed"]["brokers"] and cancelled["throttle"]["removed"]["topics"] == [name]
    assert predicted["throttle"]["removed"] == cancelled["throttle"]["removed"], (predicted["throttle"], cancelled["throttle"])
    assert predicted["actions"] == cancelled["actions"]
    # Kafka puts back the original replica set; the order is the one it held while moving (the preferred leader may
    # change), which is why the rollback plan of the run is worth keeping.
    assert cancelled["changed"] and [sorted(c["after"]) for c in cancelled["cancelled"]] == [[1, 2], [2, 3]]
    assert cancelled["diff"]["after"]["partitions"] == [{"topic": name, "partition": n, "replicas": c["after"]}
                                                        for n, c in enumerate(cancelled["cancelled"])]
    assert ongoing(kp_admin, name) == []
    assert [sorted(r) for r in replicas(admin, name)] == [[1, 2], [2, 3]]
    assert replicas(admin, name) == [c["after"] for c in cancelled["cancelled"]]
    assert topic_throttle(admin, name) == {}
    assert count_messages(bootstrap, name, 2) == 4000
    assert not reassign(state="absent", plan=plan)["changed"]


def test_another_reassignment_of_the_same_partition_is_not_overridden(reassign, topics, admin, kp_admin, unique):
    name = topics(unique, [[1]], messages=3000)
    clear = None
    try:
        # someone else moves it slowly to 2 under a tight throttle of their own
        reassign(plan=plan_of(name, [[2]]), throttle="50kB", wait=False)
        result = reassign(plan=plan_of(name, [[3]]))
        assert result["failed"] and "moving to [2], the plan says [3]" in result["msg"] and "nothing was moved" in result["msg"]
        assert ongoing(kp_admin, name) == [0]
    finally:
        clear = reassign(state="absent")
    assert clear["changed"] and any(c["topic"] == name for c in clear["cancelled"])
    assert replicas(admin, name) == [[1]]
    assert ongoing(kp_admin, name) == [] and broker_throttles(admin) == {}


def test_a_run_leaves_the_throttle_of_a_reassignment_still_running_elsewhere(reassign, topics, admin, kp_admin, unique, no_throttle_left):
    slow = topics(unique + "-slow", [[1]], messages=6000)
    other = topics(unique + "-other", [[2]])
    started = reassign(plan=plan_of(slow, [[3]]), throttle="50kB", wait=False)
    assert started["changed"] and ongoing(kp_admin, slow) == [0]
    wait_for(lambda: len(broker_throttles(admin)) == 2, "the slow move's throttle to show", 15)
    before = broker_throttles(admin), topic_throttle(admin, slow)

    nothing = reassign(plan=plan_of(other, [[2]]))  # nothing to do; another reassignment runs meanwhile
    assert not nothing["changed"] and nothing["throttle"]["removed"] == {"brokers": [], "topics": []}
    assert (broker_throttles(admin), topic_throttle(admin, slow)) == before

    stopped = reassign(state="absent")
    assert stopped["changed"] and [c["topic"] for c in stopped["cancelled"]] == [slow]
    assert topic_throttle(admin, slow) == {} and ongoing(kp_admin, slow) == []


def test_timeout_fails_with_progress_and_still_removes_the_throttle(reassign, topics, admin, kp_admin, unique, no_throttle_left):
    name = topics(unique, [[1], [2]], messages=8000)  # 4 MB a partition: more than the throttle lets through in 2 s
    plan = plan_of(name, [[3], [3]])
    result = reassign(plan=plan, throttle="50kB", wait_timeout=2)
    assert result["failed"] and result["msg"].startswith("Timed out after 2s")
    assert "2 move(s) still running" in result["msg"] and "state=absent" in result["msg"] and "throttle was removed" in result["msg"]
    assert result["progress"]["in_flight"] == 2 and result["throttle"]["removed"]["topics"] == [name]
    assert topic_throttle(admin, name) == {}
    resumed = reassign(plan=plan)  # the moves went on, unthrottled; a second run adopts what still runs
    assert resumed["rc"] == 0 and replicas(admin, name) == [[3], [3]], resumed.get("msg")


# --- caps and order ------------------------------------------------------------------------------

def test_per_broker_cap_holds_while_moves_run(reassign, topics, admin, kp_admin, unique, no_throttle_left):
    name = topics(unique, [[1]] * 6, messages=3000)
    target = [[2], [3], [2], [3], [2], [3]]
    seen, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            seen.append(sorted(tp.partition for tp in kp_admin.list_partition_reassignments() if tp.topic == name))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = reassign(plan=plan_of(name, target), throttle="2MB", max_concurrent_moves_per_broker=2, order=["large_first"])
    finally:
        stop.set()
        watcher.join()
    assert result["rc"] == 0 and replicas(admin, name) == target
    assert max(len(s) for s in seen) <= 2  # every move copies from broker 1, so 2 at a time in the whole cluster
    assert result["progress"]["batches"] >= 3
    assert all(len(b["partitions"]) <= 2 for b in result["batches"])


# --- a broker stopped in the middle --------------------------------------------------------------

def lab_broker(action, node):
    subprocess.run([str(LAB_KAFKA), action, str(node)], check=True, capture_output=True, timeout=300)


@pytest.mark.plaintext_only
def test_a_broker_stopped_mid_move_and_restarted_the_run_rides_through(reassign, topics, admin, kp_admin, unique, bootstrap):
    name = topics(unique, [[1, 2], [1, 2]], messages=4000)
    plan = plan_of(name, [[3, 2], [2, 3]])
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(reassign(plan=plan, throttle="150kB", wait_timeout=180)))
    runner.start()
    try:
        wait_for(lambda: ongoing(kp_admin, name) == [0, 1], "the moves to start")
        lab_broker("stop-broker", 3)
        assert 3 not in admin.list_topics(timeout=10).brokers
        time.sleep(3)
        assert ongoing(kp_admin, name) == [0, 1]  # stalled: their new replica's broker is down
    finally:
        lab_broker("start-broker", 3)
    runner.join(360)
    assert outcome.get("rc") == 0, outcome.get("msg")
    assert replicas(admin, name) == [[3, 2], [2, 3]]
    wait_for(lambda: leaders(admin, name) == [3, 2], "preferred leaders")
    assert topic_throttle(admin, name) == {} and broker_throttles(admin) == {}, (outcome["throttle"], outcome.get("warnings"))
    assert count_messages(bootstrap, name, 2) == 4000


# --- the role: a broker down makes the run fail, the next run resumes and completes -------------

def run_playbook(lab, extra, check=False):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build" / "collections"),
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1",
               **{k: v for k, v in lab.items() if k.startswith("KAFKA_")})
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), str(ROOT / "playbooks" / "kafka_rebalance.yml"),
            "-i", str(ROOT / "inventories" / "lab" / "hosts.yml"), "-e", json.dumps(extra)] + (["--check"] if check else [])
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=900, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def recap_changed(output):
    return int(re.search(r"localhost\s+: ok=\d+\s+changed=(\d+)", output).group(1))


@pytest.mark.plaintext_only
def test_a_refusal_of_the_role_changes_nothing_and_says_so(topics, admin, kafka, lab, unique, tmp_path):
    """Without an approval the role refuses; its preview ran in check mode, so the recap says changed=0 (it said 1)."""
    name = topics(unique, [[1], [1]], messages=200)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan_of(name, [[2], [3]])))
    extra = dict(kafka_rebalance_connection=dict(bootstrap_servers=kafka["bootstrap_servers"]), kafka_rebalance_plan_file=str(plan_file),
                 kafka_rebalance_verify_balance=False)
    code, output = run_playbook(lab, extra)
    assert code != 0 and "executing a rebalance needs an approval" in output and "Nothing was moved" in output, output
    assert recap_changed(output) == 0, output
    fingerprint = re.search(r"kafka_rebalance_approved_fingerprint=(sha256:[0-9a-f]{64})", output).group(1)
    wrong = run_playbook(lab, dict(extra, kafka_rebalance_approved_fingerprint="sha256:" + "0" * 64))
    assert wrong[0] != 0 and "not the approved" in wrong[1] and recap_changed(wrong[1]) == 0, wrong[1]
    assert replicas(admin, name) == [[1], [1]] and fingerprint


@pytest.mark.plaintext_only
def test_the_role_fails_while_a_broker_is_down_then_resumes_and_completes(topics, admin, kp_admin, kafka, lab, bootstrap, unique, tmp_path):
    name = topics(unique, [[1, 2], [1, 2], [1, 2]], messages=4500)  # 1.5 MB a partition
    target = [[3, 2], [2, 3], [3, 1]]
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan_of(name, target)))
    extra = dict(kafka_rebalance_connection=dict(bootstrap_servers=kafka["bootstrap_servers"]), kafka_rebalance_plan_file=str(plan_file),
                 kafka_rebalance_verify_balance=False, kafka_rebalance_poll_interval=0.5)

    code, output = run_playbook(lab, extra)
    assert code != 0 and "executing a rebalance needs an approval" in output and "Nothing was moved" in output
    fingerprint = re.search(r"kafka_rebalance_approved_fingerprint=(sha256:[0-9a-f]{64})", output).group(1)
    assert replicas(admin, name) == [[1, 2]] * 3

    first = {}
    runner = threading.Thread(target=lambda: first.update(zip(("code", "output"), run_playbook(lab, dict(
        extra, kafka_rebalance_approved_fingerprint=fingerprint, kafka_rebalance_throttle="100kB", kafka_rebalance_wait_timeout=15)))))
    runner.start()
    try:
        wait_for(lambda: ongoing(kp_admin, name) == [0, 1, 2], "the role's moves to start", 120)
        lab_broker("stop-broker", 3)
        runner.join(300)
        assert first["code"] != 0 and "Timed out after 15s" in first["output"], first["output"][-3000:]
        assert "waiting for offline broker 3" in first["output"] and "Run the task again to resume" in first["output"]
        assert ongoing(kp_admin, name) == [0, 1, 2]
        fresh = AdminClient({"bootstrap.servers": bootstrap})  # one that never knew broker 3 up
        assert topic_throttle(fresh, name) == {}, first["output"][-3000:]  # removed although the run failed
        assert broker_throttles(fresh) == {}  # on the live brokers; broker 3 keeps its rates while it is down
    finally:
        runner.join(300)
        lab_broker("start-broker", 3)

    code, output = run_playbook(lab, dict(extra, kafka_rebalance_approved_fingerprint=fingerprint, kafka_rebalance_throttle="10MB",
                                          kafka_rebalance_wait_timeout=300))
    assert code == 0, output[-3000:]  # whether the moves finished while broker 3 came back or this run adopted them
    assert replicas(admin, name) == target and ongoing(kp_admin, name) == []
    wait_for(lambda: leaders(admin, name) == [3, 2, 3], "preferred leaders")
    assert topic_throttle(admin, name) == {} and broker_throttles(admin) == {}  # broker 3's rates too, now it is back
    assert count_messages(bootstrap, name, 3) == 4500

    code, output = run_playbook(lab, dict(extra, kafka_rebalance_approved_fingerprint=fingerprint))
    assert code == 0 and recap_changed(output) == 0, output[-3000:]
    rollback = json.loads((tmp_path / "plan.json.rollback.json").read_text())
    assert rollback == plan_of(name, [[1, 2]] * 3)
