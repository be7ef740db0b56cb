"""kafka_rebalance_plan against the lab's three real brokers (racks a, b, c).

The live model is checked against what a plain client sees (placement, racks, sizes from the data we
wrote, rates from the traffic we make while the module samples); the plan is executed with
kafka_reassignment and a second plan on the result leaves our topic alone. Runs through Ansible
itself too: ad hoc (`ansible localhost -m`) and the filter in a playbook.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import COLLECTIONS, ROOT

# Every module call runs over PLAINTEXT, SASL_SSL and mTLS (tests/integration/conftest.py: LISTENERS).
pytestmark = pytest.mark.kafka_listeners

MESSAGE = b"x" * 1000


@pytest.fixture(scope="module")
def admin(kafka):
    return AdminClient({"bootstrap.servers": ",".join(kafka["bootstrap_servers"])})


@pytest.fixture
def crowded_topic(kafka, admin, unique):
    """Six single-replica partitions, all on broker 1, each holding 200 messages of 1 kB."""
    name = unique + "-rebalance"
    placement = [[1]] * 6
    admin.create_topics([NewTopic(name, num_partitions=6, replica_assignment=placement)])[name].result(30)
    deadline = time.monotonic() + 30
    while len(admin.list_topics(name, timeout=10).topics[name].partitions) < 6:
        assert time.monotonic() < deadline, "topic %s never showed up" % name
        time.sleep(0.2)
    producer = Producer({"bootstrap.servers": ",".join(kafka["bootstrap_servers"]), "linger.ms": 5})
    for partition in range(6):
        for count in range(200):
            producer.produce(name, MESSAGE, key=b"%d" % count, partition=partition)
    assert producer.flush(30) == 0
    yield name
    admin.delete_topics([name])[name].result(30)


class Traffic:
    """Produces to every partition of a topic and consumes it in a group, until stopped."""

    def __init__(self, servers, topic, group):
        self.servers, self.topic, self.group = servers, topic, group
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._produce, args=(servers, topic), daemon=True),
                        threading.Thread(target=self._consume, args=(servers, topic, group), daemon=True)]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        self._wait_for_commits()
        return self

    def _wait_for_commits(self, timeout=60):
        """Until this consumer has committed progress on every partition: then it consumes (and commits) all through
        the sample, however long joining the group took on a loaded machine."""
        admin = AdminClient({"bootstrap.servers": self.servers})

        def committed():
            answer = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(self.group)])[self.group].result(10)
            return {tp.partition: tp.offset for tp in answer.topic_partitions or [] if tp.topic == self.topic and tp.offset >= 0}
        before, deadline = committed(), time.monotonic() + timeout
        while True:
            moved = [p for p, offset in committed().items() if offset > before.get(p, -1)]
            if len(moved) == 6:
                return
            assert time.monotonic() < deadline, "group %s committed progress on %d of 6 partitions in %ds" % (self.group, len(moved), timeout)
            time.sleep(0.2)

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def _produce(self, servers, topic):
        producer = Producer({"bootstrap.servers": servers, "linger.ms": 5})
        while not self.stop.is_set():
            for partition in range(6):
                producer.produce(topic, MESSAGE, partition=partition)
            producer.poll(0)
            time.sleep(0.01)
        producer.flush(10)

    def _consume(self, servers, topic, group):
        consumer = Consumer({"bootstrap.servers": servers, "group.id": group, "auto.offset.reset": "earliest",
                             "enable.auto.commit": True, "auto.commit.interval.ms": 200})
        consumer.subscribe([topic])
        while not self.stop.is_set():
            consumer.poll(0.1)
        consumer.close()


def other_topics(admin, mine):
    return sorted(t for t in admin.list_topics(timeout=10).topics if t != mine)


# Only our traffic counts: other tests' topics (excluded, idle) must not pull our partitions around.
NETWORK_ONLY = {"disk": 0, "replicas": 0, "leaders": 0, "topic_spread": 0}


def test_live_model_plan_execute_and_replan(kafka, module, admin, crowded_topic, unique):
    servers = ",".join(kafka["bootstrap_servers"])
    excluded = other_topics(admin, crowded_topic)  # other tests' topics: planned around, never moved
    with Traffic(servers, crowded_topic, unique + "-group"):
        result = module("kafka_rebalance_plan", dict(kafka, sample_seconds=4, return_model=True, excluded_topics=excluded,
                                                     goal_weights=NETWORK_ONLY))
    assert result["rc"] == 0, result.get("msg")
    assert result["changed"] is False

    model = result["model"]
    assert [(b["id"], b.get("rack")) for b in model["brokers"]] == [(1, "a"), (2, "b"), (3, "c")]
    mine = [p for p in model["partitions"] if p["topic"] == crowded_topic]
    assert sorted(p["partition"] for p in mine) == list(range(6))
    for part in mine:
        assert part["replicas"] == [1] and part["leader"] == 1
        assert part["size"] >= 200 * len(MESSAGE), part          # what we wrote, with record overhead
        assert part["nw_in"] > 0 and part["nw_out"] > 0, part     # the traffic during the sample

    plan = result["plan"]
    moved = [e for e in plan["partitions"] if e["topic"] == crowded_topic]
    assert not [e for e in plan["partitions"] if e["topic"] in excluded]
    assert len(moved) >= 3, plan  # six partitions on one broker of three: most should move
    assert all(len(e["replicas"]) == 1 for e in moved)
    assert result["summary"]["replica_moves"] >= len(moved)

    executed = module("kafka_reassignment", dict(kafka, plan={"version": 1, "partitions": moved}, wait_timeout=120))
    assert executed["rc"] == 0, executed.get("msg")
    placement = {p: m.replicas for p, m in admin.list_topics(crowded_topic, timeout=10).topics[crowded_topic].partitions.items()}
    assert {p: r for p, r in placement.items() if r != [1]} == {e["partition"]: e["replicas"] for e in moved}
    per_broker = [sum(1 for r in placement.values() if r == [b]) for b in (1, 2, 3)]
    assert max(per_broker) - min(per_broker) <= 1, per_broker

    # Rates sampled over seconds are noisy; weighing our few hundred kB against the lab's data keeps
    # the planner from chasing that noise (it would otherwise rotate equally loaded partitions). The peaks goal
    # (ceilings at 1.04 x the mean) is off here: six tiny partitions under 4 s of sampled traffic cross its
    # ceilings at random, and it then trades two of them in about half the runs (issue 13's note).
    with Traffic(servers, crowded_topic, unique + "-group"):
        again = module("kafka_rebalance_plan", dict(kafka, sample_seconds=4, excluded_topics=other_topics(admin, crowded_topic),
                                                    goal_weights=dict(NETWORK_ONLY, movement=1, peaks=0)))
    assert again["rc"] == 0, again.get("msg")
    assert not [e for e in again["plan"]["partitions"] if e["topic"] == crowded_topic], again["plan"]


def test_dest_is_written_only_when_it_changes(kafka, module, admin, crowded_topic, tmp_path):
    live = module("kafka_rebalance_plan", dict(kafka, sample_seconds=0, return_model=True,
                                               excluded_topics=other_topics(admin, crowded_topic)))
    assert live["rc"] == 0, live.get("msg")
    dest = tmp_path / "plan.json"
    args = dict(cluster_model=live["model"], dest=str(dest), seed=5)

    checked = module("kafka_rebalance_plan", args, check=True, diff=True)
    assert checked["changed"] is True and not dest.exists()
    assert json.loads(checked["diff"]["after"]) == checked["plan"]

    first = module("kafka_rebalance_plan", args)
    assert first["changed"] is True and json.loads(dest.read_text()) == first["plan"] == checked["plan"]
    written = dest.stat().st_mtime_ns
    second = module("kafka_rebalance_plan", args)
    assert second["changed"] is False and dest.stat().st_mtime_ns == written


def test_frontier_offers_a_cheaper_plan_beside_the_full_one(kafka, module, admin, crowded_topic):
    result = module("kafka_rebalance_plan", dict(kafka, sample_seconds=0, frontier=[0.5],
                                                 excluded_topics=other_topics(admin, crowded_topic)))
    assert result["rc"] == 0, result.get("msg")
    assert result["changed"] is False
    half, full = result["frontier"]
    assert (half["fraction"], full["fraction"]) == (0.5, 1.0)
    assert full["plan"] == result["plan"] and full["bytes_to_move"] == result["summary"]["bytes_to_move"] > 0
    assert 0 < half["bytes_to_move"] <= half["max_bytes"] <= full["bytes_to_move"] / 2
    # Less data moved buys less balance: broker 1 keeps more of the crowded topic. (A single resource's max/mean is no
    # measure here: the full plan also evens replica and leader counts, and may give back a little disk balance for them.)

    def moved_off_broker_1(plan):
        return [e for e in plan["partitions"] if e["topic"] == crowded_topic and 1 not in e["replicas"]]
    assert 0 < len(moved_off_broker_1(half["plan"])) < len(moved_off_broker_1(full["plan"])), (half["plan"], full["plan"])
    assert {e["topic"] for e in half["plan"]["partitions"] if e["replicas"] != [1]} <= {crowded_topic}


def test_bad_requests_fail_in_one_sentence(kafka, module):
    unknown = module("kafka_rebalance_plan", dict(kafka, sample_seconds=0, drain_brokers=[99]))
    assert unknown["failed"] and unknown["msg"] == "drain_brokers names broker 99, which is not in the cluster model."
    unreachable = module("kafka_rebalance_plan", dict(bootstrap_servers=["127.0.0.1:1"], request_timeout=3, sample_seconds=0))
    assert unreachable["failed"] and unreachable["msg"].startswith("Cannot reach the Kafka brokers at 127.0.0.1:1")
    assert "Traceback" not in json.dumps(unreachable)


def ansible_env():
    # Ad hoc, ansible prints "host | SUCCESS => {result}"; json makes the result parseable.
    return dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
                ANSIBLE_CALLBACK_RESULT_FORMAT="json", PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])


@pytest.mark.plaintext_only
def test_ad_hoc_module_and_filter_in_a_playbook(kafka, tmp_path):
    servers = ",".join(kafka["bootstrap_servers"])
    adhoc = subprocess.run(["ansible", "localhost", "-m", "streamops.day2.kafka_rebalance_plan",
                            "-a", json.dumps({"bootstrap_servers": servers, "sample_seconds": 0, "return_model": True})],
                           capture_output=True, text=True, env=ansible_env(), timeout=300, check=False)
    assert adhoc.returncode == 0, adhoc.stdout + adhoc.stderr
    result = json.loads(adhoc.stdout.split("=>", 1)[1])
    assert result["changed"] is False and result["plan"]["version"] == 1
    (tmp_path / "model.json").write_text(json.dumps(result["model"]))

    playbook = tmp_path / "plan.yml"
    playbook.write_text("""
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Plan on the controller from the saved model
      ansible.builtin.set_fact:
        planned: "{{ lookup('ansible.builtin.file', '%(model)s') | from_json | streamops.day2.rebalance_plan(seed=3) }}"
    - name: The same engine in the module gives the same plan
      streamops.day2.kafka_rebalance_plan:
        cluster_model_file: %(model)s
        seed: 3
      register: planned_by_module
    - name: Compare
      ansible.builtin.assert:
        that:
          - planned.plan == planned_by_module.plan
          - planned.summary.replica_moves == planned_by_module.summary.replica_moves
          - planned_by_module is not changed
""" % {"model": tmp_path / "model.json"})
    run = subprocess.run(["ansible-playbook", str(playbook)], capture_output=True, text=True, env=ansible_env(), timeout=300, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
