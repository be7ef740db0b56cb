"""kafka_lag_info against `kafka-consumer-groups.sh --describe --all-groups` on the lab's brokers.

    source tests/env.sh && python tests/bench/lag/bench_lag.py [--groups 100 --partitions 50 --topics 10 --runs 5 --big 1000]

Set-up, cheap on purpose: T topics of P partitions (replication factor 1) created in one
CreateTopics request; R records per partition produced by one producer with explicit timestamps
one second apart (so every lag in seconds is known); G groups whose committed offsets are
written with AlterConsumerGroupOffsets (all in flight at once), group g on topic g mod T at an
offset that differs per group and partition (some at the log end: lag 0). Nothing is produced
while timing, so both tools see the same offsets.

Timed, alternately, each RUNS times: the module as an ad-hoc command
(`ansible localhost -m streamops.day2.kafka_lag_info`, one sample, all groups: the same question
the tool answers) and Kafka's tool. Both outputs are parsed and must agree on every committed
offset, log-end offset and lag of every benchmark group; lag_seconds is checked against the
record timestamps. Then the same with --big groups. Medians are printed as a Markdown table.
Everything created is deleted at the end (topics and groups), also after a failure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid

from confluent_kafka import ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

SERVERS = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
TOOL = os.environ.get("KAFKA_TOOL", "")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def admin():
    return AdminClient({"bootstrap.servers": SERVERS})


def committed_offset(group_index, partition, records):
    """A spread of offsets per group and partition; every seventh one at the log end (lag 0)."""
    if (group_index + partition) % 7 == 0:
        return records
    return (group_index * 37 + partition * 11) % records


class Lab:
    def __init__(self, prefix, topics, partitions, records):
        self.prefix, self.n_topics, self.partitions, self.records = prefix, topics, partitions, records
        self.topics = ["%s-t%02d" % (prefix, i) for i in range(topics)]
        self.groups = []
        self.base_ms = None
        self.admin = admin()

    def create_topics(self):
        futures = self.admin.create_topics([NewTopic(t, self.partitions, 1) for t in self.topics], operation_timeout=60)
        for future in futures.values():
            future.result(timeout=120)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            md = self.admin.list_topics(timeout=10).topics
            if all(t in md and len(md[t].partitions) == self.partitions and all(p.leader >= 0 for p in md[t].partitions.values())
                   for t in self.topics):
                return
            time.sleep(0.5)
        raise RuntimeError("benchmark topics did not show up in the metadata within 60s")

    def produce(self):
        """R records per partition, timestamps one second apart ending a minute ago."""
        producer = Producer({"bootstrap.servers": SERVERS, "enable.idempotence": True, "linger.ms": 20, "batch.num.messages": 10000,
                             "queue.buffering.max.messages": 1000000})
        self.base_ms = int(time.time() * 1000) - (self.records + 60) * 1000
        for topic in self.topics:
            for partition in range(self.partitions):
                for i in range(self.records):
                    producer.produce(topic, value=b"x" * 40, partition=partition, timestamp=self.base_ms + i * 1000)
                producer.poll(0)
        if producer.flush(120) != 0:
            raise RuntimeError("records not delivered within 120s")

    def timestamp_of(self, offset):
        return self.base_ms + offset * 1000

    def add_groups(self, count):
        """Groups up to `count` in total, each on one topic with its own committed offsets."""
        start = len(self.groups)
        new = []
        for g in range(start, count):
            name = "%s-g%04d" % (self.prefix, g)
            topic = self.topics[g % self.n_topics]
            tps = [TopicPartition(topic, p, committed_offset(g, p, self.records)) for p in range(self.partitions)]
            new.append(ConsumerGroupTopicPartitions(name, tps))
        for chunk in range(0, len(new), 200):
            futures = {}
            for request in new[chunk:chunk + 200]:
                futures.update(self.admin.alter_consumer_group_offsets([request], request_timeout=60))
            for future in futures.values():
                future.result(timeout=120)
        self.groups.extend(r.group_id for r in new)

    def expected(self):
        """{(group, topic, partition): (committed, log end, lag)}"""
        out = {}
        for g, name in enumerate(self.groups):
            topic = self.topics[g % self.n_topics]
            for p in range(self.partitions):
                c = committed_offset(g, p, self.records)
                out[(name, topic, p)] = (c, self.records, self.records - c)
        return out

    def cleanup(self):
        if self.groups:
            for chunk in range(0, len(self.groups), 500):
                for future in self.admin.delete_consumer_groups(self.groups[chunk:chunk + 500], request_timeout=60).values():
                    try:
                        future.result(timeout=120)
                    except Exception as e:  # report and go on: the topics must go too
                        print("cleanup: %s" % e, file=sys.stderr)
        futures = self.admin.delete_topics(self.topics, operation_timeout=60)
        for future in futures.values():
            try:
                future.result(timeout=120)
            except Exception as e:
                print("cleanup: %s" % e, file=sys.stderr)


def run_module():
    """The module as an ad-hoc command; returns (seconds, result dict)."""
    env = dict(os.environ, ANSIBLE_LOAD_CALLBACK_PLUGINS="0", ANSIBLE_DEPRECATION_WARNINGS="0")
    cmd = ["ansible", "localhost", "-m", "streamops.day2.kafka_lag_info", "-a", json.dumps({"bootstrap_servers": SERVERS.split(",")}), "-o"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0 or "=>" not in proc.stdout:
        raise RuntimeError("module failed (rc %d): %s %s" % (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))
    return seconds, json.loads(proc.stdout.split("=>", 1)[1])


def run_tool():
    """Kafka's tool; returns (seconds, {(group, topic, partition): (committed, log end, lag)})."""
    cmd = [TOOL, "consumer-groups", "--bootstrap-server", SERVERS, "--describe", "--all-groups"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError("kafka-consumer-groups failed (rc %d): %s" % (proc.returncode, proc.stderr[-2000:]))
    rows = {}
    for line in proc.stdout.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[0] == "GROUP" or not fields[2].isdigit():
            continue
        value = [None if v == "-" else int(v) for v in fields[3:6]]
        rows[(fields[0], fields[1], int(fields[2]))] = tuple(value)
    return seconds, rows


def module_rows(result):
    rows, seconds = {}, {}
    for group in result["groups"]:
        for p in group["partitions"]:
            key = (group["group"], p["topic"], p["partition"])
            rows[key] = (p["committed_offset"], p["log_end_offset"], p["lag"])
            seconds[key] = p["lag_seconds"]
    return rows, seconds


def check(lab, module_result, tool_rows, at):
    """Both tools agree with each other and with what was set up, on every benchmark partition."""
    expected = lab.expected()
    mine, seconds = module_rows(module_result)
    wrong = []
    for key, value in expected.items():
        if mine.get(key) != value:
            wrong.append(("module", key, mine.get(key), value))
        if tool_rows.get(key) != value:
            wrong.append(("tool", key, tool_rows.get(key), value))
        committed, end, lag = value
        want = 0.0 if lag == 0 else at - lab.timestamp_of(committed) / 1000.0
        if seconds.get(key) is None or abs(seconds[key] - want) > 30:
            wrong.append(("lag_seconds", key, seconds.get(key), round(want, 1)))
    if wrong:
        raise AssertionError("%d disagreements, first ones: %s" % (len(wrong), wrong[:5]))
    return len(expected)


def measure(lab, runs):
    module_times, tool_times = [], []
    for unused in range(runs):
        seconds, result = run_module()
        module_times.append(seconds)
        at = time.time()
        tool_seconds, tool_rows = run_tool()
        tool_times.append(tool_seconds)
        print("  module %.2fs, tool %.2fs" % (seconds, tool_seconds), flush=True)
        checked = check(lab, result, tool_rows, at)
    return statistics.median(module_times), statistics.median(tool_times), checked, module_times, tool_times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=50)
    parser.add_argument("--topics", type=int, default=10)
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--big", type=int, default=1000, help="then time this many groups (0: skip)")
    parser.add_argument("--big-runs", type=int, default=3)
    args = parser.parse_args()
    if not SERVERS or not TOOL:
        sys.exit("KAFKA_BOOTSTRAP_SERVERS and KAFKA_TOOL are not set: source tests/env.sh (lab up: tests/lab/up kafka)")

    lab = Lab("bench-lag-%s" % uuid.uuid4().hex[:6], args.topics, args.partitions, args.records)
    rows = []
    try:
        t0 = time.perf_counter()
        lab.create_topics()
        lab.produce()
        lab.add_groups(args.groups)
        print("set-up: %d topics x %d partitions, %d records each, %d groups in %.1fs"
              % (args.topics, args.partitions, args.records, args.groups, time.perf_counter() - t0), flush=True)
        for count, runs in ((args.groups, args.runs), (args.big, args.big_runs)):
            if not count:
                continue
            lab.add_groups(count)
            mod, tool, checked, mod_all, tool_all = measure(lab, runs)
            rows.append((count, args.partitions, checked, runs, mod, tool))
            print("%d groups: module %s, tool %s (s)" % (count, [round(v, 2) for v in mod_all], [round(v, 2) for v in tool_all]), flush=True)
    finally:
        lab.cleanup()

    print("\n| groups | partitions/group | group-partitions compared | runs | kafka_lag_info ad-hoc (median s) "
          "| kafka-consumer-groups --describe --all-groups (median s) | speed-up |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for count, partitions, checked, runs, mod, tool in rows:
        print("| %d | %d | %d | %d | %.2f | %.2f | %.1fx |" % (count, partitions, checked, runs, mod, tool, tool / mod))


if __name__ == "__main__":
    main()
