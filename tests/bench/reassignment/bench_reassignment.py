"""kafka_reassignment against Kafka's own `kafka-reassign-partitions.sh --execute`, same plan, same throttle.

    source tests/env.sh && python tests/bench/reassignment/bench_reassignment.py [--mb 48 --partitions 8 --throttle 2MB --runs 3]

Set-up: a topic of P partitions (replication factor 2, every partition on brokers 1 and 2) filled with
MB megabytes of incompressible records, and a canary topic (3 partitions, replication factor 3, so
every broker replicates it) that a steady producer writes to all along with acks=all.

The plan moves one replica of every partition to broker 3 ([1,2] -> [2,3] or [3,1]). Before each run
the placement is put back, unthrottled and untimed, and the cluster is left to settle. Then, alternately:

* tool: `kafka-reassign-partitions --execute --throttle T`, an independent observer polls until every
  partition is on its target, then `--verify` (which is what removes the tool's throttle);
* module: streamops.day2.kafka_reassignment with `throttle: T` (leader election off, as the tool does none),
  run the way Ansible runs a module.

Measured per run: wall time until the data is in place (observer), wall time until the run is over
and the throttle is gone, bytes moved (sizes of the new replicas, from DescribeLogDirs), and the canary's
produce latency (acknowledgement time, median / p99 / peak) while the run lasts; an idle window of the
same length gives the reference latency. Medians over the runs are printed as a Markdown table and
written to .lab/bench/reassignment/results.json. Everything created is deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, NewTopic
from kafka import KafkaAdminClient

ROOT = Path(__file__).resolve().parents[3]
COLLECTIONS = ROOT / ".build" / "collections"
MODULE = COLLECTIONS / "ansible_collections" / "streamops" / "day2" / "plugins" / "modules" / "kafka_reassignment.py"
SERVERS = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
TOOL = os.environ.get("KAFKA_TOOL", str(ROOT / "tests" / "lab" / "kafka-tool"))
RATES = ("leader.replication.throttled.rate", "follower.replication.throttled.rate")
LISTS = ("leader.replication.throttled.replicas", "follower.replication.throttled.replicas")


def parse_size(text):
    units = {"": 1, "kb": 1000, "mb": 1000 ** 2, "gb": 1000 ** 3, "kib": 1024, "mib": 1024 ** 2}
    number = text.rstrip("bBiIkKmMgG")
    unit = text[len(number):].lower()
    return int(float(number) * units[unit])


class Canary:
    """A steady producer (acks=all) whose acknowledgement times are kept with their send times."""

    def __init__(self, topic, rate):
        self.producer = Producer({"bootstrap.servers": SERVERS, "acks": "all", "linger.ms": 0,
                                  "enable.idempotence": True, "client.id": "bench-canary"})
        self.topic, self.interval = topic, 1.0 / rate
        self.samples = []  # (sent_at, latency_seconds)
        self.errors = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._send, daemon=True), threading.Thread(target=self._poll, daemon=True)]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join()
        self.producer.flush(30)

    def _send(self):
        payload = os.urandom(512)
        next_at = time.monotonic()
        while not self.stop.is_set():
            sent = time.monotonic()
            self.producer.produce(self.topic, payload, on_delivery=lambda err, msg, sent=sent: self._acked(err, sent))
            next_at += self.interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def _poll(self):
        while not self.stop.is_set():
            self.producer.poll(0.01)

    def _acked(self, err, sent):
        if err is not None:
            self.errors += 1
        else:
            self.samples.append((sent, time.monotonic() - sent))

    def window(self, start, end):
        values = sorted(lat for sent, lat in self.samples if start <= sent <= end)
        if not values:
            return dict(n=0, median_ms=None, p99_ms=None, peak_ms=None)
        return dict(n=len(values), median_ms=1000 * statistics.median(values),
                    p99_ms=1000 * values[min(len(values) - 1, int(len(values) * 0.99))], peak_ms=1000 * values[-1])


class Cluster:
    def __init__(self):
        self.admin = AdminClient({"bootstrap.servers": SERVERS})
        self.kp = KafkaAdminClient(bootstrap_servers=SERVERS.split(","), client_id="bench-observer")

    def replicas(self, topic):
        md = self.admin.list_topics(topic=topic, timeout=10).topics[topic]
        return [list(p.replicas) for unused, p in sorted(md.partitions.items())]

    def moving(self, topic):
        return [tp for tp in self.kp.list_partition_reassignments() if tp.topic == topic]

    def sizes_on(self, topic, placement_before, placement_after):
        """Bytes of the replicas the plan added (on brokers that did not hold the partition before)."""
        total = 0
        for answer in self.kp.describe_log_dirs(topic_partitions=[topic]):
            for log_dir in answer["log_dirs"]:
                for t in log_dir["topics"]:
                    for part in t["partitions"]:
                        n = part["partition_index"]
                        if answer["broker"] in placement_after[n] and answer["broker"] not in placement_before[n]:
                            total += part["partition_size"]
        return total

    def throttled(self, topic):
        found = []
        for broker in sorted(self.admin.list_topics(timeout=10).brokers):
            resource = ConfigResource(ConfigResource.Type.BROKER, str(broker))
            entries = self.admin.describe_configs([resource])[resource].result(10)
            found += ["broker %d %s" % (broker, k) for k in RATES
                      if k in entries and ConfigSource(entries[k].source) == ConfigSource.DYNAMIC_BROKER_CONFIG]
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
        entries = self.admin.describe_configs([resource])[resource].result(10)
        found += ["topic %s" % k for k in LISTS if k in entries and ConfigSource(entries[k].source) == ConfigSource.DYNAMIC_TOPIC_CONFIG]
        return found


def plan_of(topic, placement):
    return {"version": 1, "partitions": [{"topic": topic, "partition": n, "replicas": r} for n, r in enumerate(placement)]}


def run_module(args):
    payload = dict(args, bootstrap_servers=SERVERS.split(","), _ansible_check_mode=False, _ansible_diff=False)
    proc = subprocess.run([sys.executable, str(MODULE)], input=json.dumps({"ANSIBLE_MODULE_ARGS": payload}), capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(COLLECTIONS)), timeout=1800, check=False)
    result = json.loads(proc.stdout)
    if result.get("failed"):
        raise RuntimeError("kafka_reassignment failed: %s" % result.get("msg"))
    return result


def tool(*args):
    proc = subprocess.run([TOOL, "reassign-partitions", "--bootstrap-server", SERVERS, *args], capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode:
        raise RuntimeError("kafka-reassign-partitions %s failed: %s %s" % (args[0], proc.stdout, proc.stderr))
    return proc.stdout


def wait_in_place(cluster, topic, target, timeout=1800):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not cluster.moving(topic) and cluster.replicas(topic) == target:
            return time.monotonic()
        time.sleep(0.2)
    raise RuntimeError("the moves did not finish within %ss" % timeout)


def one_run(variant, cluster, canary, topic, start, target, throttle, plan_file):
    run_module(dict(plan=plan_of(topic, start), elect_leaders=True, poll_interval=0.5))  # back to the start, untimed
    wait_in_place(cluster, topic, start)
    time.sleep(3)
    in_place = {}
    watcher = threading.Thread(target=lambda: in_place.update(t=wait_in_place(cluster, topic, target)), daemon=True)
    t0 = time.monotonic()
    watcher.start()
    lingering_at_return = None
    if variant == "tool":
        tool("--execute", "--reassignment-json-file", plan_file, "--throttle", str(throttle))
        watcher.join()
        lingering_at_return = bool(cluster.throttled(topic))  # data in place: the tool leaves it until --verify
        tool("--verify", "--reassignment-json-file", plan_file)
    else:
        run_module(dict(plan=plan_of(topic, target), throttle=throttle, elect_leaders=False, poll_interval=0.5))
        watcher.join()
    t_end = time.monotonic()
    time.sleep(1)
    return dict(variant=variant, in_place_s=in_place["t"] - t0, done_s=t_end - t0,
                bytes_moved=cluster.sizes_on(topic, start, target), latency=canary.window(t0, t_end),
                throttle_left_after=cluster.throttled(topic), throttle_left_when_command_returned=lingering_at_return)


def fill(topic, partitions, total_bytes):
    producer = Producer({"bootstrap.servers": SERVERS, "linger.ms": 50, "batch.size": 1 << 20, "acks": "all"})
    payload = os.urandom(1000)
    for n in range(total_bytes // len(payload)):
        producer.produce(topic, payload, partition=n % partitions)
        if n % 2000 == 0:
            producer.poll(0)
    producer.flush(120)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--mb", type=int, default=48, help="megabytes in the moving topic")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--throttle", default="2MB", help="replication throttle per broker for both, e.g. 4MB")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=int, default=200, help="canary messages per second")
    opts = parser.parse_args(argv)
    if not SERVERS:
        sys.exit("KAFKA_BOOTSTRAP_SERVERS is not set: source tests/env.sh (and bring the lab up: tests/lab/up kafka)")
    throttle = parse_size(opts.throttle)
    cluster = Cluster()
    tag = uuid.uuid4().hex[:6]
    topic, canary_topic = "bench-reassign-%s" % tag, "bench-reassign-%s-canary" % tag
    start = [[1, 2] for unused in range(opts.partitions)]
    target = [[2, 3] if n % 2 == 0 else [3, 1] for n in range(opts.partitions)]
    results = []
    fs = cluster.admin.create_topics([NewTopic(topic, num_partitions=opts.partitions, replica_assignment=start),
                                      NewTopic(canary_topic, num_partitions=3, replication_factor=3,
                                               config={"min.insync.replicas": "2"})])
    for future in fs.values():
        future.result(30)
    try:
        time.sleep(2)
        print("filling %s with %d MB..." % (topic, opts.mb), flush=True)
        fill(topic, opts.partitions, opts.mb * 1000 * 1000)
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump(plan_of(topic, target), handle)
            plan_file = handle.name
        with Canary(canary_topic, opts.rate) as canary:
            time.sleep(3)
            idle_start = time.monotonic()
            time.sleep(10)
            idle = canary.window(idle_start, time.monotonic())
            for n in range(opts.runs):
                for variant in (("tool", "module") if n % 2 == 0 else ("module", "tool")):
                    result = one_run(variant, cluster, canary, topic, start, target, throttle, plan_file)
                    results.append(result)
                    print("run %d %-6s in place %.1fs, done %.1fs, %.1f MB moved, produce latency p99 %.0f ms peak %.0f ms, "
                          "throttle left %s" % (n + 1, variant, result["in_place_s"], result["done_s"], result["bytes_moved"] / 1e6,
                                                result["latency"]["p99_ms"], result["latency"]["peak_ms"],
                                                result["throttle_left_after"] or "none"), flush=True)
            errors = canary.errors
    finally:
        ongoing = cluster.moving(topic)
        if ongoing:
            cluster.kp.alter_partition_reassignments({tp: None for tp in ongoing})
        for future in cluster.admin.delete_topics([topic, canary_topic]).values():
            future.result(30)
        cluster.kp.close()
    summary = {}
    for variant in ("tool", "module"):
        rows = [r for r in results if r["variant"] == variant]
        summary[variant] = dict(
            in_place_s=median(r["in_place_s"] for r in rows), done_s=median(r["done_s"] for r in rows),
            bytes_moved=median(r["bytes_moved"] for r in rows),
            latency_median_ms=median(r["latency"]["median_ms"] for r in rows),
            latency_p99_ms=median(r["latency"]["p99_ms"] for r in rows),
            latency_peak_ms=median(r["latency"]["peak_ms"] for r in rows),
            throttle_left_after=sorted({t for r in rows for t in r["throttle_left_after"]}))
    report = dict(settings=dict(vars(opts), throttle_bytes=throttle), idle_latency=idle, canary_errors=errors, runs=results, median=summary)
    out = ROOT / ".lab" / "bench" / "reassignment"
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=2))
    print("\n%d MB in %d partitions, one replica each to broker 3, throttle %s/s per broker, %d runs each, medians; "
          "canary %d msg/s acks=all (idle: median %.1f ms, p99 %.1f ms, peak %.1f ms)\n"
          % (opts.mb, opts.partitions, opts.throttle, opts.runs, opts.rate, idle["median_ms"], idle["p99_ms"], idle["peak_ms"]))
    print("| executor | data in place (s) | done, throttle removed (s) | bytes moved | produce latency median / p99 / peak (ms) | throttle left |")
    print("|---|---|---|---|---|---|")
    names = {"tool": "kafka-reassign-partitions --execute, then --verify", "module": "streamops.day2.kafka_reassignment"}
    for variant in ("tool", "module"):
        s = summary[variant]
        print("| %s | %.1f | %.1f | %.1f MB | %.1f / %.1f / %.1f | %s |" % (
            names[variant], s["in_place_s"], s["done_s"], s["bytes_moved"] / 1e6, s["latency_median_ms"], s["latency_p99_ms"],
            s["latency_peak_ms"], ", ".join(s["throttle_left_after"]) or "none"))
    tool_left = [r["throttle_left_when_command_returned"] for r in results if r["variant"] == "tool"]
    print("\nThe tool's throttle was still set once the data was in place in %d of %d runs (it stays until --verify is run)."
          % (sum(bool(x) for x in tool_left), len(tool_left)))
    print("Canary errors: %d. Results: %s" % (errors, out / "results.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
