"""Workflow step benchmark on the lab: records/s of the step runner (the transform an OpenFaaS function behind the
gateway) against a direct Kafka consume-transform-produce loop doing the same transform in-process, and the cold
start of a function from zero replicas.

    python tests/bench/workflow/bench_workflow.py --records 5000 --json .lab/reports/bench-workflow.json

Throughput, each on the same fresh input of N records (4 partitions) into a fresh output, one process, exactly once
unless said: the step runner (`python -m streamops_consumer.step`) at concurrency 8 (its default), 1 and 32, against the
function `upper` of the lab's image at a fixed number of replicas; the consumer helper with an in-process
upper-casing hook (`python -m streamops_consumer` style, the same transactions: 50 records or 200 ms each by default,
and 500 per transaction); and a bare confluent-kafka loop (no transactions, offsets committed after every batch of up to
500 records) doing the same. Records/s = N / (last offset committed - first record
consumed), from the group's committed offsets polled every 0.1 s.

Cold start, the function at 0 replicas and nothing else running: (a) the gateway's own scale from zero, one
invocation timed until its answer; (b) the workflow's way, a step runner and the scaler running, one record produced
and timed until its answer is in the output topic (the scaler's decision and the runner's invocation included).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[3]
SRC = ROOT / "consumer" / "src"
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(SRC))
from workflow_lab import Gateway, lab_env, missing  # noqa: E402  (the e2e folder is not a package)

PARTITIONS = 4


class Lab:
    def __init__(self, env):
        self.env = env
        self.servers = env["KAFKA_BOOTSTRAP_SERVERS"]
        self.admin = AdminClient({"bootstrap.servers": self.servers})
        self.gateway = Gateway(env)
        self.tag = uuid.uuid4().hex[:6]
        self.topics, self.groups, self.functions = [], [], []

    def topic(self, name):
        name = "bench-wf-%s-%s" % (self.tag, name)
        for future in self.admin.create_topics([NewTopic(name, PARTITIONS, 3)]).values():
            future.result(30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # leaders known everywhere before anyone writes
            meta = self.admin.list_topics(name, timeout=10).topics[name]
            if meta.error is None and len(meta.partitions) == PARTITIONS and all(p.leader >= 0 for p in meta.partitions.values()):
                break
            time.sleep(0.2)
        self.topics.append(name)
        return name

    def produce(self, topic, count, start=0):
        producer = Producer({"bootstrap.servers": self.servers, "acks": "all", "linger.ms": 20})
        for i in range(start, start + count):
            while True:
                try:
                    producer.produce(topic, key=str(i), value="rec-%06d-x" % i, partition=i % PARTITIONS)
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
        assert producer.flush(60) == 0

    def committed(self, group, topic):
        request = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(PARTITIONS)])]
        result = self.admin.list_consumer_group_offsets(request, request_timeout=10)[group].result()
        return sum(tp.offset for tp in result.topic_partitions if tp.offset and tp.offset > 0)

    def deploy(self, name, transform, replicas):
        self.gateway.call("POST", "/system/functions", {"service": name, "image": self.env["OPENFAAS_FN_IMAGE"],
                                                        "namespace": self.gateway.namespace, "envVars": {"FN_TRANSFORM": transform}})
        self.functions.append(name)
        self.gateway.scale(name, replicas)
        self.wait_available(name, lambda n: n == replicas, 120)

    def wait_available(self, name, ok, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.gateway.function(name) or {}
            if ok(int(status.get("availableReplicas") or 0)) and ok(int(status.get("replicas") or 0)):
                return
            time.sleep(0.2)
        raise AssertionError("function %s: replicas not as wanted in %ds" % (name, timeout))

    def step_env(self, function, group, source, target, **extra):
        env = dict(os.environ, PYTHONPATH=str(SRC), KAFKA_BOOTSTRAP_SERVERS=self.servers, STREAMOPS_GROUP=group, STREAMOPS_INPUT_TOPIC=source,
                   STREAMOPS_OUTPUT_TOPIC=target, STREAMOPS_STEP_FUNCTION=function, STREAMOPS_GATEWAY_URL=self.gateway.url,
                   STREAMOPS_GATEWAY_USERNAME=self.env.get("OPENFAAS_USERNAME", "admin"), STREAMOPS_GATEWAY_PASSWORD=self.env.get("OPENFAAS_PASSWORD", ""),
                   STREAMOPS_FUNCTION_NAMESPACE=self.gateway.namespace, STREAMOPS_READY_FILE="", STREAMOPS_INSTANCE="bench-%s" % group)
        env.update({k: str(v) for k, v in extra.items()})
        self.groups.append(group)
        return env

    def cleanup(self):
        for name in self.functions:
            try:
                self.gateway.call("DELETE", "/system/functions", {"functionName": name, "namespace": self.gateway.namespace})
            except OSError:
                pass
        for future in list(self.admin.delete_topics(self.topics, operation_timeout=30).values()) + \
                list(self.admin.delete_consumer_groups(self.groups, request_timeout=10).values() if self.groups else []):
            try:
                future.result()
            except Exception:  # best effort
                pass


def spawn(args, env, log):
    return subprocess.Popen(args, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def stop(proc):
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


HELPER_UPPER = """
import sys
from streamops_consumer import Settings, run
sys.exit(run(Settings.from_env(), lambda msg: [(msg.key(), msg.value().upper())]))
"""


def bare_loop(servers, source, target, group, count, result):
    """The plain confluent-kafka loop: consume, upper-case, produce; offsets committed every 500 records after a flush."""
    consumer = Consumer({"bootstrap.servers": servers, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    producer = Producer({"bootstrap.servers": servers, "linger.ms": 5, "enable.idempotence": True})
    consumer.subscribe([source])
    done, started = 0, None
    try:
        while done < count:
            batch = [msg for msg in consumer.consume(500, 0.5) if not msg.error()]
            if not batch:
                continue
            if started is None:
                started = time.time()
            for msg in batch:
                while True:
                    try:
                        producer.produce(target, key=msg.key(), value=msg.value().upper())
                        break
                    except BufferError:
                        producer.poll(0.05)
                done += 1
            producer.flush(30)
            consumer.commit(asynchronous=False)
        result.update(seconds=time.time() - started)
    finally:
        consumer.close()


def throughput(lab, count, replicas, logs):
    function = "bench-wf-%s-upper" % lab.tag
    lab.deploy(function, "upper", replicas)
    rows = {}
    variants = [
        ("step runner, concurrency 8", "step", {"STREAMOPS_STEP_CONCURRENCY": 8}),
        ("step runner, concurrency 1", "step", {"STREAMOPS_STEP_CONCURRENCY": 1}),
        ("step runner, concurrency 32", "step", {"STREAMOPS_STEP_CONCURRENCY": 32}),
        ("helper, in-process upper (exactly-once)", "helper", {}),
        ("helper, in-process upper, 500 per transaction", "helper", {"STREAMOPS_BATCH": 500, "STREAMOPS_BATCH_MS": 1000}),
        ("bare confluent-kafka loop, in-process upper", "bare", {}),
    ]
    for label, kind, extra in variants:
        source, target = lab.topic("in-%s" % kind + str(len(rows))), lab.topic("out-%s" % kind + str(len(rows)))
        lab.produce(source, count)
        group = "bench-wf-%s-%d" % (lab.tag, len(rows))
        started = time.monotonic()
        if kind == "bare":
            result = {}
            thread = threading.Thread(target=bare_loop, args=(lab.servers, source, target, group, count, result))
            thread.start()
            thread.join(600)
            lab.groups.append(group)
            seconds = result["seconds"]
        else:
            env = lab.step_env(function, group, source, target, STREAMOPS_MODE="exactly-once", **extra)
            argv = [sys.executable, "-m", "streamops_consumer.step"] if kind == "step" else [sys.executable, "-c", HELPER_UPPER]
            log = logs / ("%s-%d.log" % (kind, len(rows)))
            proc = spawn(argv, env, log)
            try:
                deadline = time.monotonic() + 600
                while lab.committed(group, source) < count:
                    if time.monotonic() > deadline:
                        raise AssertionError("%s did not finish %d records in 600 s" % (label, count))
                    time.sleep(0.1)
                end = time.time()
            finally:
                stop(proc)
            # From its partitions' assignment (its own log line) to the last offset committed.
            assigned = [json.loads(line) for line in log.read_text().splitlines() if '"event": "assigned"' in line]
            seconds = end - next(e["ts"] for e in assigned if e["partitions"])
        rows[label] = {"records": count, "seconds": round(seconds, 2), "records_per_s": round(count / seconds, 1),
                       "wall_s": round(time.monotonic() - started, 2)}
        print("%-45s %8.1f records/s  (%d records in %.1f s)" % (label, count / seconds, count, seconds), flush=True)
    return rows


def cold_start(lab, runs, logs):
    function = "bench-wf-%s-cold" % lab.tag
    lab.deploy(function, "upper", 1)
    gateway_only = []
    for i in range(runs):
        lab.gateway.scale(function, 0)
        lab.wait_available(function, lambda n: n == 0, 60)
        time.sleep(1)
        request = urllib.request.Request("%s/function/%s.%s" % (lab.gateway.url, function, lab.gateway.namespace), data=b"cold", method="POST",
                                         headers={"Authorization": lab.gateway.headers["Authorization"]})
        started = time.monotonic()
        with urllib.request.urlopen(request, timeout=120) as response:
            assert response.read() == b"COLD"
        gateway_only.append(round(time.monotonic() - started, 2))
    # The workflow's way: a runner and the scaler (idle 3 s), one record at a time from zero replicas.
    source, target = lab.topic("cold-in"), lab.topic("cold-out")
    group = "bench-wf-%s-cold" % lab.tag
    runner_env = lab.step_env(function, group, source, target)
    scaler_env = dict(runner_env, STREAMOPS_SCALER_STEPS=json.dumps([{"function": function, "input_topics": [source], "group": group,
                                                                     "target_lag": 100, "min_replicas": 1, "max_replicas": 2, "idle_seconds": 3}]))
    runner = spawn([sys.executable, "-m", "streamops_consumer.step"], runner_env, logs / "cold-runner.log")
    scaler = spawn([sys.executable, "-m", "streamops_consumer.scaler"], scaler_env, logs / "cold-scaler.log")
    reader = Consumer({"bootstrap.servers": lab.servers, "group.id": "bench-reader-%s" % lab.tag, "isolation.level": "read_committed",
                       "auto.offset.reset": "earliest", "enable.auto.commit": False})
    reader.subscribe([target])
    workflow = []
    try:
        for i in range(runs):
            lab.wait_available(function, lambda n: n == 0, 60)  # the scaler idled it to zero
            time.sleep(1)
            started = time.monotonic()
            lab.produce(source, 1, start=i)
            deadline = started + 120
            while time.monotonic() < deadline:
                msg = reader.poll(0.05)
                if msg is not None and not msg.error():
                    assert msg.value() == ("rec-%06d-x" % i).upper().encode()
                    break
            else:
                raise AssertionError("no answer in the output 120 s after the record")
            workflow.append(round(time.monotonic() - started, 2))
    finally:
        reader.close()
        stop(runner)
        stop(scaler)
    print("cold start, gateway scale from zero: %s s; workflow (runner + scaler), record in -> answer out: %s s" % (gateway_only, workflow), flush=True)
    return {"gateway_scale_from_zero_s": gateway_only, "workflow_record_to_answer_s": workflow,
            "gateway_median_s": statistics.median(gateway_only), "workflow_median_s": statistics.median(workflow)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--replicas", type=int, default=2, help="replicas of the function during the throughput runs")
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    env = lab_env()
    reason = missing(env)
    if reason:
        sys.exit("bench_workflow: %s" % reason)
    lab = Lab(env)
    logs = ROOT / ".lab" / "bench" / "workflow"
    logs.mkdir(parents=True, exist_ok=True)
    try:
        rows = throughput(lab, args.records, args.replicas, logs)
        cold = cold_start(lab, args.cold_runs, logs)
    finally:
        lab.cleanup()
    report = {"records": args.records, "function_replicas": args.replicas, "throughput": rows, "cold_start": cold,
              "load_average": os.getloadavg()}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
