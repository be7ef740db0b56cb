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


# One list per partition: a multiselect list keeps nulls where a projection (partitions[].lag) drops them.
ROWS_QUERY = "groups[].{g: group, r: partitions[].[topic, partition, committed_offset, log_end_offset, lag, lag_seconds]}"

# name -> extra module arguments. Every variant answers for all groups, with one sample.
VARIANTS = {
    "full": {},                           # default result: every group, topic and partition
    "query": {"query": ROWS_QUERY},       # the same numbers, shaped by the module (the large-fleet recipe)
    "groups": {"detail": "groups"},       # group totals only
}


def ansible_env():
    return dict(os.environ, ANSIBLE_DEPRECATION_WARNINGS="0", ANSIBLE_NOCOLOR="1")


# Which groups both tools answer for: every group (--all-groups), or, once Kafka's tool has failed on a group that is
# not the benchmark's (a group of another test with offsets on a deleted topic makes `--describe --all-groups` exit 0
# with only an error printed), the benchmark's groups by name, and the module the same groups by pattern.
SCOPE = {"all_groups": True, "prefix": None}


def module_args(extra=None):
    args = dict(bootstrap_servers=SERVERS.split(","), **(extra or {}))
    if not SCOPE["all_groups"]:
        args["group_pattern"] = "^%s-g" % SCOPE["prefix"]
    return args


def run_adhoc(extra):
    """kafka_lag_info as an ad-hoc command; returns (seconds, result dict)."""
    args = module_args(extra)
    cmd = ["ansible", "localhost", "-m", "streamops.day2.kafka_lag_info", "-a", json.dumps(args), "-o"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=ansible_env(), check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0 or "=>" not in proc.stdout:
        raise RuntimeError("module failed (rc %d): %s %s" % (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))
    return seconds, json.loads(proc.stdout.split("=>", 1)[1])


def run_module_process():
    """The module process alone, as Ansible runs it on the managed node (no controller around it)."""
    module = os.path.join(ROOT, ".build", "collections", "ansible_collections", "streamops", "day2", "plugins", "modules", "kafka_lag_info.py")
    payload = json.dumps({"ANSIBLE_MODULE_ARGS": module_args()})
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, module], input=payload, capture_output=True, text=True, env=ansible_env(), check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError("module process failed (rc %d): %s" % (proc.returncode, proc.stdout[-2000:]))
    return seconds, json.loads(proc.stdout)


def run_ping():
    """Ansible's own fixed cost of an ad-hoc command."""
    start = time.perf_counter()
    subprocess.run(["ansible", "localhost", "-m", "ansible.builtin.ping", "-o"], capture_output=True, check=True, cwd=ROOT, env=ansible_env())
    return time.perf_counter() - start


def run_tool(lab):
    """Kafka's tool; returns (seconds, {(group, topic, partition): (committed, log end, lag)})."""
    if SCOPE["all_groups"]:
        scope = ["--all-groups"]
    else:
        scope = [arg for group in lab.groups for arg in ("--group", group)]
    cmd = [TOOL, "consumer-groups", "--bootstrap-server", SERVERS, "--describe"] + scope
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0 or proc.stdout.startswith("Error:") or "\nError:" in proc.stdout:
        raise RuntimeError("kafka-consumer-groups failed (rc %d): %s %s" % (proc.returncode, proc.stdout[-1000:], proc.stderr[-1000:]))
    rows = {}
    for line in proc.stdout.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[0] == "GROUP" or not fields[2].isdigit():
            continue
        value = [None if v == "-" else int(v) for v in fields[3:6]]
        rows[(fields[0], fields[1], int(fields[2]))] = tuple(value)
    return seconds, rows


def module_rows(result):
    """{(group, topic, partition): ((committed, log end, lag), lag_seconds)} from any variant's result."""
    rows = {}
    if "query_result" in result:
        for g in result["query_result"]:
            for t, p, c, e, lag, sec in g["r"]:
                rows[(g["g"], t, p)] = ((c, e, lag), sec)
        return rows
    for group in result["groups"]:
        for p in group["partitions"]:
            rows[(group["group"], p["topic"], p["partition"])] = ((p["committed_offset"], p["log_end_offset"], p["lag"]), p["lag_seconds"])
    return rows


def check(lab, result, tool_rows, at):
    """The module, the tool and the set-up agree on every benchmark partition (or group total); returns the count."""
    expected = lab.expected()
    wrong = []
    for key, value in expected.items():
        if tool_rows.get(key) != value:
            wrong.append(("tool", key, tool_rows.get(key), value))
    if "groups" in result and result["groups"] and "partitions" not in result["groups"][0]:
        totals = {}
        for (group, unused, unused2), (unused3, unused4, lag) in expected.items():
            totals[group] = totals.get(group, 0) + lag
        mine = {g["group"]: g["lag"] for g in result["groups"]}
        tool_totals = {}
        for (group, unused, unused2), (unused3, unused4, lag) in tool_rows.items():
            tool_totals[group] = tool_totals.get(group, 0) + (lag or 0)
        wrong.extend(("group total", g, mine.get(g), total) for g, total in totals.items() if mine.get(g) != total or tool_totals.get(g) != total)
        checked = len(totals)
    else:
        mine = module_rows(result)
        for key, value in expected.items():
            got, seconds = mine.get(key, (None, None))
            if got != value:
                wrong.append(("module", key, got, value))
            committed, unused, lag = value
            want = 0.0 if lag == 0 else at - lab.timestamp_of(committed) / 1000.0
            if seconds is None or abs(seconds - want) > 60:
                wrong.append(("lag_seconds", key, seconds, round(want, 1)))
        checked = len(expected)
    if wrong:
        raise AssertionError("%d disagreements, first ones: %s" % (len(wrong), wrong[:5]))
    return checked


def tool_gaps(lab, tool_rows):
    """Benchmark partitions the tool printed without a number ('-'), or not at all."""
    return sum(1 for key, value in lab.expected().items() if tool_rows.get(key) != value)


def measure(lab, runs, notes):
    """Medians over runs; inside a run the tools take turns, so load from elsewhere hits them alike."""
    times = {name: [] for name in ("tool", "ping", "process", "elapsed", *VARIANTS)}
    checked = {}
    retries = 2  # a broker restarted by someone else's test makes one run disagree; a real bug fails every time
    done = 0
    while done < runs:
        try:
            run_times = one_run(lab, checked, notes)
        except AssertionError as e:
            if not retries:
                raise
            retries -= 1
            notes.append("a run was repeated after a disagreement: %s" % str(e)[:300])
            continue
        for name, values in run_times.items():
            times[name].extend(values)
        done += 1
        print("  " + ", ".join("%s %s" % (name, "/".join("%.2fs" % v for v in values)) for name, values in run_times.items()), flush=True)
    return {name: statistics.median(values) for name, values in times.items()}, checked


def choose_scope(lab, notes):
    """--all-groups if Kafka's tool can answer it on this cluster, else the benchmark's groups by name (see SCOPE)."""
    SCOPE["prefix"] = lab.prefix
    try:
        run_tool(lab)
    except RuntimeError as e:
        SCOPE["all_groups"] = False
        notes.append("kafka-consumer-groups --describe --all-groups failed on a group of another test (%s); both tools were "
                     "timed on the benchmark's groups (the tool with --group for each, the module with group_pattern)"
                     % " ".join(str(e).split())[:300])


def one_run(lab, checked, notes):
    """{measure: [seconds]} of one run, every answer checked."""
    times = {"tool": []}
    for attempt in range(3):
        seconds, tool_rows = run_tool(lab)
        times["tool"].append(seconds)  # a run with gaps counts too: it is what a user waits for
        gaps = tool_gaps(lab, tool_rows)
        if not gaps:
            break
        # Seen under load: the tool prints '-' for log-end offsets it did not get in time; it is run
        # again to have numbers to compare.
        notes.append("kafka-consumer-groups printed no lag for %d of %d partitions (attempt %d, %.1fs)"
                     % (gaps, len(lab.expected()), attempt + 1, seconds))
    for name, extra in VARIANTS.items():
        at = time.time()
        seconds, result = run_adhoc(extra)
        times[name] = [seconds]
        checked[name] = check(lab, result, tool_rows, at)
        if name == "groups":
            times["elapsed"] = [result["elapsed"]]  # the module's own work, Ansible's handling aside
    at = time.time()
    seconds, result = run_module_process()
    times["process"] = [seconds]
    checked["process"] = check(lab, result, tool_rows, at)
    times["ping"] = [run_ping()]
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
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
    notes = []
    try:
        t0 = time.perf_counter()
        lab.create_topics()
        lab.produce()
        print("set-up: %d topics x %d partitions, %d records each, in %.1fs"
              % (args.topics, args.partitions, args.records, time.perf_counter() - t0), flush=True)
        for count, runs in ((args.groups, args.runs), (args.big, args.big_runs)):
            if not count:
                continue
            t0 = time.perf_counter()
            lab.add_groups(count)
            print("%d groups (offsets committed in %.1fs), %d runs:" % (count, time.perf_counter() - t0, runs), flush=True)
            choose_scope(lab, notes)
            medians, checked = measure(lab, runs, notes)
            rows.append((count, runs, medians, checked))
    finally:
        t0 = time.perf_counter()
        lab.cleanup()
        print("clean-up: %d topics and %d groups deleted in %.1fs" % (len(lab.topics), len(lab.groups), time.perf_counter() - t0))

    for note in notes:
        print("note: " + note)
    print("\nMedians in seconds (speed-up = tool / variant). Every variant agreed with the tool and the set-up on every value it returns.\n")
    print("| groups x partitions | runs | kafka-consumer-groups --describe --all-groups | ad-hoc, full result | ad-hoc, `query` (same values) "
          "| ad-hoc, `detail: groups` | module process alone, full result | module's own work (`elapsed`) | ad-hoc `ping` (Ansible's floor) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for count, runs, m, checked in rows:
        tool = m["tool"]
        print("| %d x %d (%d group-partitions) | %d | %.2f | %.2f (%.1fx) | %.2f (%.1fx) | %.2f (%.1fx) | %.2f (%.1fx) | %.2f (%.1fx) | %.2f |" % (
            count, args.partitions, checked["full"], runs, tool, m["full"], tool / m["full"], m["query"], tool / m["query"],
            m["groups"], tool / m["groups"], m["process"], tool / m["process"], m["elapsed"], tool / m["elapsed"], m["ping"]))


if __name__ == "__main__":
    main()
