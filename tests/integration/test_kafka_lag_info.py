"""kafka_lag_info against the lab's brokers, with real producers and consumers making known lags.

Numbers are checked against what the test set up and against Kafka's own tool
(`kafka-consumer-groups --describe`), never against the module itself. Records carry explicit
timestamps, so lag in seconds is known to the millisecond (against the sample time the module reports).
"""

import datetime
import os
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import warnings_of

# Every module call runs over PLAINTEXT, SASL_SSL and mTLS (tests/integration/conftest.py: LISTENERS).
pytestmark = pytest.mark.kafka_listeners

NOW_MS = int(time.time() * 1000)
BASE_MS = NOW_MS - 3_600_000  # records are stamped from an hour ago, one second apart


class LagKit:
    """Topics, records, groups and consumers for one test; all removed afterwards."""

    def __init__(self, servers, prefix):
        self.servers = servers
        self.prefix = prefix
        self.admin = AdminClient({"bootstrap.servers": servers})
        self.topics, self.groups, self.consumers = [], [], []
        self.early = {}

    def topic(self, suffix, partitions):
        name = "%s-%s" % (self.prefix, suffix)
        self.admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=30)
        self.topics.append(name)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            md = self.admin.list_topics(topic=name, timeout=10).topics.get(name)
            if md is not None and md.error is None and len(md.partitions) == partitions and all(p.leader >= 0 for p in md.partitions.values()):
                return name
            time.sleep(0.2)
        raise AssertionError("topic %s did not show up" % name)

    def produce(self, topic, partition, count, first=0):
        """count records with timestamps BASE_MS + (first + i) seconds; returns their timestamps."""
        producer = Producer({"bootstrap.servers": self.servers, "enable.idempotence": True, "linger.ms": 5})
        stamps = [BASE_MS + (first + i) * 1000 for i in range(count)]
        for stamp in stamps:
            producer.produce(topic, value=b"record", partition=partition, timestamp=stamp)
        assert producer.flush(30) == 0
        return stamps

    def group(self, suffix):
        name = "%s-%s" % (self.prefix, suffix)
        self.groups.append(name)
        return name

    def commit(self, group, offsets):
        """Committed offsets for a group with no members: {(topic, partition): offset}."""
        request = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p, o) for (t, p), o in offsets.items()])
        self.admin.alter_consumer_group_offsets([request])[group].result(timeout=30)

    def consumer(self, group, topics, client_id):
        """A live member of the group, its assignment complete; it consumes only when told."""
        consumer = Consumer({"bootstrap.servers": self.servers, "group.id": group, "client.id": client_id,
                             "enable.auto.commit": False, "auto.offset.reset": "earliest",
                             "session.timeout.ms": 45000, "max.poll.interval.ms": 300000})
        consumer.subscribe(topics)
        deadline = time.monotonic() + 60
        early = []  # records a poll returned while the group was forming: consumed first later
        while not consumer.assignment():
            assert time.monotonic() < deadline, "consumer of %s got no assignment" % group
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                early.append(message)
        self.consumers.append(consumer)
        self.early[id(consumer)] = early
        return consumer

    def consume_and_commit(self, consumer, count):
        """Consume exactly count records and commit each synchronously; returns {(topic, partition): next offset}."""
        positions = {}
        consumed = 0
        deadline = time.monotonic() + 60
        early = self.early.get(id(consumer), [])
        while consumed < count:
            assert time.monotonic() < deadline, "consumed only %d of %d" % (consumed, count)
            message = early.pop(0) if early else consumer.poll(0.5)
            if message is not None and message.error() is None:
                consumer.commit(message=message, asynchronous=False)
                positions[(message.topic(), message.partition())] = message.offset() + 1
                consumed += 1
        return positions

    def tool(self, group):
        """Kafka's own view: {(topic, partition): (current offset, log end, lag, client id)} ('-' as None)."""
        out = subprocess.run([os.environ.get("KAFKA_TOOL") or self.kafka_tool, "consumer-groups", "--bootstrap-server", self.servers,
                              "--describe", "--group", group], capture_output=True, text=True, timeout=120, check=True).stdout
        rows = {}
        for line in out.splitlines():
            fields = line.split()
            if len(fields) >= 6 and fields[0] == group and fields[2].isdigit():
                value = [None if v == "-" else int(v) for v in fields[3:6]]
                rows[(fields[1], int(fields[2]))] = (*value, None if len(fields) < 9 or fields[8] == "-" else fields[8])
        return rows

    def close(self):
        for consumer in self.consumers:
            consumer.close()
        if self.groups:
            for future in self.admin.delete_consumer_groups(self.groups, request_timeout=30).values():
                try:
                    future.result(timeout=30)
                except Exception:  # a group that never got offsets does not exist: nothing to delete
                    pass
        if self.topics:
            for future in self.admin.delete_topics(self.topics, operation_timeout=30).values():
                future.result(timeout=30)


@pytest.fixture
def kit(kafka, lab, unique):
    kit = LagKit(",".join(kafka["bootstrap_servers"]), unique)
    kit.kafka_tool = lab.get("KAFKA_TOOL")
    yield kit
    kit.close()


@pytest.fixture
def lag(kafka, module):
    def call(check=False, **args):
        result = module("kafka_lag_info", dict(kafka, **args), check=check)
        assert result["rc"] == 0 and not result.get("failed"), result.get("msg")
        assert result["changed"] is False
        return result
    return call


def by_key(group):
    return {(p["topic"], p["partition"]): p for p in group["partitions"]}


def sample_time(result):
    return datetime.datetime.fromisoformat(result["window"]["finished"].replace("Z", "+00:00")).timestamp()


def test_stopped_consumer_exact_lags_seconds_and_stop_status(kit, lag):
    """A consumer reads part of a topic, commits and leaves: exact lag per partition, in messages and seconds."""
    topic = kit.topic("orders", 3)
    stamps = {0: kit.produce(topic, 0, 10), 1: kit.produce(topic, 1, 4, first=100), 2: []}
    group = kit.group("app")
    consumer = kit.consumer(group, [topic], "app-client")
    consumed = kit.consume_and_commit(consumer, 5)
    consumer.close()
    kit.consumers.remove(consumer)
    tool = kit.tool(group)

    result = lag(groups=[group])
    (report,) = result["groups"]
    assert report["state"] == "Empty" and report["member_count"] == 0 and report["members"] == []
    rows = by_key(report)
    at = sample_time(result)
    for (t, p), (current, end, tool_lag, unused) in tool.items():
        row = rows[(t, p)]
        assert (row["committed_offset"], row["log_end_offset"], row["lag"]) == (current, end, tool_lag)
    assert {key: row["committed_offset"] for key, row in rows.items() if row["committed_offset"] is not None} == consumed
    for p, row in ((p, rows[(topic, p)]) for p in (0, 1)):
        if row["committed_offset"] is None:  # the five records consumed may all come from partition 0
            assert row["lag"] is None and row["lag_seconds"] is None
        elif row["lag"]:
            # The record at the committed offset is the oldest one not consumed: its age is the lag in seconds.
            assert abs(row["lag_seconds"] - (at - stamps[p][row["committed_offset"]] / 1000)) < 0.005
            assert row["status"] == "STOP" and row["client_id"] is None
        else:
            assert row["lag_seconds"] == 0.0 and row["status"] == "OK"
    never_committed = sum(len(stamps[p]) for p in (0, 1) if rows[(topic, p)]["committed_offset"] is None)
    assert report["lag"] == 14 - 5 - never_committed and report["max_lag"] == max(r["lag"] or 0 for r in rows.values())
    assert report["status"] == "ERR" and report["reasons"][0].startswith("STOP on ")
    topic_totals = report["topics"][0]
    assert (topic_totals["topic"], topic_totals["lag"], topic_totals["partition_count"]) == (topic, 9 - never_committed, 3)
    assert topic_totals["max_lag_seconds"] == report["max_lag_seconds"] > 3000


def test_stopped_consumer_over_a_window_rates_stop(kit, lag):
    topic = kit.topic("window", 1)
    kit.produce(topic, 0, 20)
    group = kit.group("stopped")
    consumer = kit.consumer(group, [topic], "stopped-client")
    kit.consume_and_commit(consumer, 6)
    consumer.close()
    kit.consumers.remove(consumer)

    result = lag(groups=[group], window_samples=3, window_interval=1)
    row = result["groups"][0]["partitions"][0]
    assert row["lag_samples"] == [14, 14, 14] and row["status"] == "STOP" and row["idle"] is True
    assert "did not move in 3 samples" in row["reason"] and "no live member" in row["reason"]
    assert result["groups"][0]["status"] == "ERR" and result["window"]["samples"] == 3
    assert 1.8 <= result["window"]["span"] < 6


def test_live_consumer_that_stopped_consuming_rates_stall_and_shows_its_member(kit, lag):
    topic = kit.topic("stall", 2)
    kit.produce(topic, 0, 8)
    kit.produce(topic, 1, 8)
    group = kit.group("stuck")
    consumer = kit.consumer(group, [topic], "stuck-client")
    kit.consume_and_commit(consumer, 4)   # then it never polls again, but stays in the group

    result = lag(groups=[group], window_samples=3, window_interval=1)
    (report,) = result["groups"]
    assert report["state"] == "Stable" and report["member_count"] == 1
    assert report["members"][0]["client_id"] == "stuck-client"
    assert report["members"][0]["assignment"] == {topic: [0, 1]}
    tool = kit.tool(group)
    rows = by_key(report)
    for key, (current, end, tool_lag, client) in tool.items():
        assert (rows[key]["committed_offset"], rows[key]["log_end_offset"], rows[key]["lag"], rows[key]["client_id"]) == (
            current, end, tool_lag, client)
    lagging = [r for r in rows.values() if r["lag"]]
    assert lagging and all(r["status"] == "STALL" for r in lagging)
    assert report["status"] == "ERR"


def test_group_without_members_is_reported_unless_excluded(kit, lag):
    topic = kit.topic("orphan", 2)
    kit.produce(topic, 0, 5)
    kit.produce(topic, 1, 7)
    group = kit.group("orphan")
    kit.commit(group, {(topic, 0): 5, (topic, 1): 2})   # offsets only: no member ever joined

    (report,) = lag(groups=[group])["groups"]
    assert report["member_count"] == 0 and report["state"] == "Empty" and report["simple"] is True
    assert [(p["partition"], p["committed_offset"], p["lag"], p["status"]) for p in report["partitions"]] == [
        (0, 5, 0, "OK"), (1, 2, 5, "STOP")]
    assert kit.tool(group) == {(topic, 0): (5, 5, 0, None), (topic, 1): (2, 7, 5, None)}

    assert lag(group_pattern="^%s-" % kit.prefix, include_empty_groups=False)["groups"] == []


def test_never_committed_partition_is_marked_never_zero(kit, lag):
    topic = kit.topic("partial", 3)
    for p in range(3):
        kit.produce(topic, p, 3)
    group = kit.group("partial")
    kit.commit(group, {(topic, 0): 1, (topic, 1): 3})

    (report,) = lag(groups=[group])["groups"]
    rows = by_key(report)
    assert (rows[(topic, 2)]["committed_offset"], rows[(topic, 2)]["lag"], rows[(topic, 2)]["lag_seconds"]) == (None, None, None)
    assert rows[(topic, 2)]["status"] == "NO_OFFSET" and rows[(topic, 2)]["log_end_offset"] == 3
    assert report["uncommitted_partitions"] == 1 and report["lag"] == 2
    assert report["partition_statuses"] == {"STOP": 1, "OK": 1, "NO_OFFSET": 1}
    # Kafka's tool does not list a partition the group neither committed nor is assigned.
    assert set(kit.tool(group)) == {(topic, 0), (topic, 1)}


def test_assigned_partition_without_a_commit_shows_dash_in_the_tool_and_null_here(kit, lag):
    topic = kit.topic("fresh", 1)
    kit.produce(topic, 0, 4)
    group = kit.group("fresh")
    kit.consumer(group, [topic], "fresh-client")   # assigned, never consumed nor committed

    row = lag(groups=[group])["groups"][0]["partitions"][0]
    assert kit.tool(group)[(topic, 0)][:3] == (None, 4, None)
    assert (row["committed_offset"], row["log_end_offset"], row["lag"], row["lag_seconds"]) == (None, 4, None, None)
    assert row["status"] == "NO_OFFSET" and row["client_id"] == "fresh-client"


def test_idle_topic_persistent_lag_is_excluded_on_request(kit, lag):
    quiet = kit.topic("quiet", 1)
    kit.produce(quiet, 0, 10)
    group = kit.group("quiet")
    kit.commit(group, {(quiet, 0): 7})
    caught_up = kit.group("caught-up")
    kit.commit(caught_up, {(quiet, 0): 10})

    kept = lag(groups=[group, caught_up], window_samples=2, window_interval=0.5)["groups"]
    assert [(g["group"], g["status"], g["partitions"][0]["idle"], g["lag"]) for g in kept] == [
        (group, "ERR", True, 3), (caught_up, "OK", True, 0)]

    dropped = lag(groups=[group], window_samples=2, window_interval=0.5, exclude_idle=True)["groups"][0]
    row = dropped["partitions"][0]
    assert row["excluded"] is True and row["lag"] == 3 and row["status"] == "STOP"
    assert dropped["status"] == "OK" and dropped["lag"] is None and dropped["excluded_partitions"] == 1


def _ticker(stop, step):
    """Run step() every 0.2s until stop is set (to make offsets move while the module samples)."""
    def loop():
        while not stop.is_set():
            step()
            stop.wait(0.2)
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def test_falling_behind_is_warn_and_going_back_is_rewind(kit, lag):
    topic = kit.topic("trend", 2)
    kit.produce(topic, 0, 400)
    kit.produce(topic, 1, 400)
    slow, back = kit.group("slow"), kit.group("back")
    state = {"slow": 10, "back": 390, "produced": 400}
    producer = Producer({"bootstrap.servers": kit.servers, "linger.ms": 0})

    def step():
        state["slow"] += 1            # consumes one record per tick ...
        for unused in range(3):       # ... while three arrive
            producer.produce(topic, value=b"more", partition=0)
        producer.flush(5)
        state["back"] -= 5            # commits further back each tick
        kit.commit(slow, {(topic, 0): state["slow"]})
        kit.commit(back, {(topic, 1): state["back"]})

    step()
    stop = threading.Event()
    thread = _ticker(stop, step)
    try:
        result = lag(groups=[slow, back], window_samples=3, window_interval=1, lag_seconds=False)
    finally:
        stop.set()
        thread.join()
    statuses = {g["group"]: (g["status"], by_key(g)) for g in result["groups"]}
    slow_row = statuses[slow][1][(topic, 0)]
    assert slow_row["status"] == "WARN" and slow_row["lag_samples"] == sorted(slow_row["lag_samples"]), slow_row
    assert statuses[slow][0] == "WARN"
    back_row = statuses[back][1][(topic, 1)]
    assert back_row["status"] == "REWIND" and statuses[back][0] == "ERR", back_row
    assert back_row["lag_seconds"] is None  # lag_seconds=false: not measured, not zero


def test_thresholds_query_and_check_mode(kit, lag):
    topic = kit.topic("limits", 2)
    kit.produce(topic, 0, 50)
    kit.produce(topic, 1, 50)
    group = kit.group("limits")
    kit.commit(group, {(topic, 0): 45, (topic, 1): 0})

    result = lag(groups=[group], thresholds=dict(warn_lag=5, error_lag=40, error_lag_seconds=10_000), check=True)
    report = result["groups"][0]
    assert report["status"] == "ERR"
    assert "ERR on 1 partition: lag 50 >= error_lag 40 on %s[1] (%s[1])" % (topic, topic) in report["reasons"]
    assert "WARN on 1 partition: lag 5 >= warn_lag 5 on %s[0] (%s[0])" % (topic, topic) in report["reasons"]
    assert [(b["level"], b["threshold"], b["value"], b["worst"]) for b in report["breaches"]] == [
        ("ERR", "error_lag", 50, "%s[1]" % topic), ("WARN", "warn_lag", 5, "%s[0]" % topic)]

    shaped = lag(groups=[group], query="groups[].partitions[].{p: partition, lag: lag}")
    assert shaped["query_result"] == [{"p": 0, "lag": 5}, {"p": 1, "lag": 50}]
    assert "groups" not in shaped and shaped["summary"]["lag"] == 55

    small = lag(groups=[group], detail="groups")["groups"][0]
    assert "partitions" not in small and "topics" not in small and small["lag"] == 55 and small["max_lag"] == 50


def test_topic_filter_and_group_pattern(kit, lag):
    a, b = kit.topic("a", 1), kit.topic("b", 1)
    kit.produce(a, 0, 3)
    kit.produce(b, 0, 6)
    g1, g2 = kit.group("one"), kit.group("two")
    kit.commit(g1, {(a, 0): 1, (b, 0): 1})
    kit.commit(g2, {(b, 0): 6})

    result = lag(group_pattern="^%s-(one|two)$" % kit.prefix, topics=[b])
    assert [(g["group"], g["lag"], [p["topic"] for p in g["partitions"]]) for g in result["groups"]] == [
        (g1, 5, [b]), (g2, 0, [b])]
    assert lag(groups=[g1], topic_pattern="-a$")["groups"][0]["lag"] == 2


def test_unknown_group_and_bad_input_fail_in_one_sentence(kafka, module, kit):
    result = module("kafka_lag_info", dict(kafka, groups=[kit.prefix + "-nope"]))
    assert result["failed"] and result["msg"].startswith("Unknown consumer group: %s-nope." % kit.prefix)
    for args, text in ((dict(group_pattern="(("), "group_pattern is not a valid regular expression"),
                       (dict(thresholds=dict(warn_lag=10, error_lag=5)), "thresholds.warn_lag (10) is above thresholds.error_lag (5)."),
                       (dict(window_samples=0), "window_samples must be 1 or more"),
                       (dict(window_samples=101, window_interval=0), "window_samples is 101, more than the 100"),
                       (dict(window_samples=1000, window_interval=0), "window_samples is 1000"),
                       (dict(window_samples=50, window_interval=3600), "The window spans 176400s ((window_samples - 1) x window_interval), "
                                                                       "more than 3600s"),
                       (dict(query="groups[?"), "query is not a valid JMESPath expression")):
        bad = module("kafka_lag_info", dict(kafka, **args))
        assert bad["failed"] and text in bad["msg"] and "Traceback" not in bad["msg"], bad["msg"]


@pytest.mark.plaintext_only
def test_unreachable_brokers_give_one_clear_sentence(module):
    result = module("kafka_lag_info", dict(bootstrap_servers=["127.0.0.1:9"], request_timeout=3))
    assert result["failed"] and result["msg"].startswith("Cannot reach the Kafka brokers at 127.0.0.1:9")
    assert "Traceback" not in result["msg"]


def test_a_misspelled_topic_fails_and_patterns_matching_nothing_warn(kafka, module, kit):
    """A typo in `topics` must not turn an alert green (it reported the group OK with partition_count 0)."""
    a = kit.topic("a", 2)
    other = kit.topic("other", 1)
    kit.produce(a, 0, 5)
    group = kit.group("g")
    kit.commit(group, {(a, 0): 1})

    typo = module("kafka_lag_info", dict(kafka, groups=[group], topics=[a + "x"]))
    assert typo.get("failed") and typo["msg"].startswith("Unknown topic: %sx. The brokers know " % a), typo
    both = module("kafka_lag_info", dict(kafka, groups=[group], topics=[a, a + "x", a + "y"]))
    assert both.get("failed") and both["msg"].startswith("Unknown topics: %sx, %sy." % (a, a)), both

    nothing = module("kafka_lag_info", dict(kafka, group_pattern="^%s-nomatch$" % kit.prefix))
    assert nothing["rc"] == 0 and nothing["groups"] == [], nothing
    assert any(w.startswith("group_pattern ^%s-nomatch$ matches none of the" % kit.prefix) for w in warnings_of(nothing)), nothing

    no_topic = module("kafka_lag_info", dict(kafka, groups=[group], topic_pattern="^%s-zzz$" % kit.prefix))
    assert no_topic["rc"] == 0 and no_topic["groups"][0]["partition_count"] == 0
    assert any(w.startswith("topic_pattern ^%s-zzz$ matches none of the" % kit.prefix) for w in warnings_of(no_topic)), no_topic

    unconsumed = module("kafka_lag_info", dict(kafka, groups=[group], topics=[other]))
    assert unconsumed["rc"] == 0 and unconsumed["groups"][0]["partition_count"] == 0
    assert "1 group consumes none of the selected topics (topics %s) and is reported with no partition: %s." % (other, group) in \
        warnings_of(unconsumed), unconsumed

    fine = module("kafka_lag_info", dict(kafka, groups=[group], topics=[a]))
    assert fine["rc"] == 0 and not warnings_of(fine) and fine["groups"][0]["lag"] == 4, fine
