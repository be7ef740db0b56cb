"""The relocation scenario on the real lab: Kafka, two real kubelet nodes (regions a and b), the consumer helper app.

A producer writes N records whose values are their sequence numbers (decimal ASCII) to an input topic at a steady
rate; the consumer app (the lab image's `python3 -m streamops_consumer`) copies each to an output topic. The two
regions run on the same machine, so "region a is slow" is the app's artificial slowness keyed on the node it runs
on (STREAMOPS_SLOW_NODES, matched against spec.nodeName from the downward API): its lag grows there, and the
lag_relocation playbook moves it to region b, where it catches up. Moves back to a are planned (ad-hoc module
calls). Reading the output topic at the end counts each sequence number: lost and duplicated.

Shared by tests/e2e/test_relocation.py (the proof) and tests/bench/relocation (the gap figures).
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import kubernetes
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[2]
REGION_LABEL = "topology.kubernetes.io/region"


def lab_env():
    """.lab/env (written by tests/lab/up), with the process environment winning."""
    env = {}
    path = ROOT / ".lab" / "env"
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, value = line.split("=", 1)
                env[key.strip()] = value.strip()
    env.update({k: v for k, v in os.environ.items() if k.startswith(("KAFKA_", "K8S_", "KUBECONFIG"))})
    return env


def missing(env):
    """Why the scenario cannot run here, or None."""
    for key in ("KAFKA_BOOTSTRAP_SERVERS", "KUBECONFIG", "K8S_NODE_A", "K8S_NODE_B", "K8S_CONSUMER_IMAGE"):
        if not env.get(key):
            return "the lab's %s is not up (no %s in .lab/env): run tests/lab/up" % ("Kafka" if key.startswith("KAFKA") else "Kubernetes", key)
    return None


class SteadyProducer(threading.Thread):
    """Writes 0..n-1 to topic at `rate` records/s (keys spread them over the partitions)."""

    def __init__(self, servers, topic, n, rate):
        super().__init__(daemon=True)
        self.servers, self.topic, self.n, self.rate = servers, topic, n, rate
        self.sent = 0
        self.error = None

    def run(self):
        producer = Producer({"bootstrap.servers": self.servers, "enable.idempotence": True, "linger.ms": 5})
        start = time.monotonic()
        try:
            for i in range(self.n):
                ahead = start + i / self.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
                while True:
                    try:
                        producer.produce(self.topic, key=str(i % 97).encode(), value=str(i).encode())
                        break
                    except BufferError:
                        producer.poll(0.05)
                producer.poll(0)
                self.sent = i + 1
            if producer.flush(60) != 0:
                self.error = "records still unsent after 60 s"
        except Exception as e:  # reported by the scenario, which fails on it
            self.error = str(e)


class RelocationLab:
    """One scenario's namespace, topics and consumer workload on the lab, and the ways to move it."""

    def __init__(self, env, mode, strategy="handover", name="relocation-consumer", partitions=4, slow_ms=8, replicas=1):
        self.env, self.mode, self.strategy = env, mode, strategy
        self.servers = env["KAFKA_BOOTSTRAP_SERVERS"]
        self.node = {"a": env["K8S_NODE_A"], "b": env["K8S_NODE_B"]}
        self.run_id = uuid.uuid4().hex[:8]
        self.namespace = "relocation-%s" % self.run_id
        self.name, self.partitions, self.slow_ms, self.replicas = name, partitions, slow_ms, replicas
        self.group = "relocation-%s-%s" % (mode, self.run_id)
        self.input = "relocation-in-%s-%s" % (mode, self.run_id)
        self.output = "relocation-out-%s-%s" % (mode, self.run_id)
        self.admin = AdminClient({"bootstrap.servers": self.servers})
        api = kubernetes.config.new_client_from_config(config_file=env["KUBECONFIG"])
        self.core, self.apps = kubernetes.client.CoreV1Api(api), kubernetes.client.AppsV1Api(api)
        self.relocations = []   # one dict per move: how, from, to, gap, seconds
        self.kills = 0
        self.output_before_kill = None

    # -- set-up --------------------------------------------------------------------------------

    def create(self, region="a"):
        topics = [NewTopic(t, self.partitions, 3) for t in (self.input, self.output)]
        for future in self.admin.create_topics(topics).values():
            future.result(30)
        self.core.create_namespace({"metadata": {"name": self.namespace}})
        self.apps.create_namespaced_deployment(self.namespace, self.deployment(region))
        self.wait_active(timeout=120)

    def deployment(self, region):
        gate = self.strategy == "warm"
        env = [
            {"name": "KAFKA_BOOTSTRAP_SERVERS", "value": self.servers},
            {"name": "STREAMOPS_GROUP", "value": self.group},
            {"name": "STREAMOPS_INPUT_TOPIC", "value": self.input},
            {"name": "STREAMOPS_OUTPUT_TOPIC", "value": self.output},
            {"name": "STREAMOPS_MODE", "value": self.mode},
            {"name": "STREAMOPS_SLOW_MS", "value": str(self.slow_ms)},
            {"name": "STREAMOPS_SLOW_NODES", "value": self.node["a"]},
            {"name": "STREAMOPS_START_GATE", "value": "after-others-leave" if gate else "none"},
            {"name": "STREAMOPS_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "STREAMOPS_INSTANCE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "STREAMOPS_GENERATION", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['pod-template-hash']"}}},
        ]
        return {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "replicas": self.replicas,
                "selector": {"matchLabels": {"app": self.name}},
                "template": {
                    "metadata": {"labels": {"app": self.name}},
                    "spec": {
                        "hostNetwork": True,  # the lab's Kafka listens on 127.0.0.1 (LAB.md, networking rules)
                        "nodeSelector": {REGION_LABEL: region},
                        "terminationGracePeriodSeconds": 15,
                        "containers": [{
                            "name": "consumer", "image": self.env["K8S_CONSUMER_IMAGE"], "imagePullPolicy": "IfNotPresent",
                            "command": ["python3", "-m", "streamops_consumer"], "env": env,
                            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
                            "readinessProbe": {"exec": {"command": ["test", "-f", "/tmp/streamops-ready"]},
                                               "periodSeconds": 1, "failureThreshold": 1},
                        }],
                    },
                },
            },
        }

    def delete(self):
        try:
            self.core.delete_namespace(self.namespace, grace_period_seconds=0)
        except kubernetes.client.ApiException:
            pass

    # -- observing -----------------------------------------------------------------------------

    def members(self):
        description = self.admin.describe_consumer_groups([self.group])[self.group].result(10)
        return description.state.name, description.members

    def wait_active(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state, members = self.members()
            if state == "STABLE" and members:
                return
            time.sleep(0.2)
        raise AssertionError("group %s has no Stable membership after %ds" % (self.group, timeout))

    def lag(self):
        """Messages between the group's committed offsets and the input topic's end. read_uncommitted: the committed
        offsets at once, not a wait on offsets pending in a killed instance's open transaction (as kafkalab.committed)."""
        consumer = Consumer({"bootstrap.servers": self.servers, "group.id": self.group, "enable.auto.commit": False,
                             "isolation.level": "read_uncommitted"})
        try:
            partitions = [TopicPartition(self.input, p) for p in range(self.partitions)]
            committed = consumer.committed(partitions, timeout=10)
            total = 0
            for tp in committed:
                low, high = consumer.get_watermark_offsets(TopicPartition(self.input, tp.partition), timeout=10)
                total += high - (tp.offset if tp.offset >= 0 else low)
            return total
        finally:
            consumer.close()

    def wait_lag(self, above=None, below=None, timeout=60):
        """Until the lag is above or below a number; returns (reached, seconds waited)."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            lag = self.lag()
            if (above is not None and lag > above) or (below is not None and lag <= below):
                return True, time.monotonic() - start
            time.sleep(0.5)
        return False, time.monotonic() - start

    def pods(self):
        return self.core.list_namespaced_pod(self.namespace, label_selector="app=%s" % self.name).items

    def region_now(self):
        deployment = self.apps.read_namespaced_deployment(self.name, self.namespace)
        return (deployment.spec.template.spec.node_selector or {}).get(REGION_LABEL)

    # -- moving --------------------------------------------------------------------------------

    def ansible(self, argv):
        """Run ansible or ansible-playbook; returns the k8s_consumer_relocate results it produced (test callback)."""
        results = ROOT / ".lab" / "reports" / ("results-%s.jsonl" % uuid.uuid4().hex[:8])
        results.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, KUBECONFIG=self.env["KUBECONFIG"], KAFKA_BOOTSTRAP_SERVERS=self.servers, RELOCATION_RESULTS=str(results),
                   ANSIBLE_CALLBACK_PLUGINS=str(Path(__file__).resolve().parent / "callback_plugins"),
                   ANSIBLE_CALLBACKS_ENABLED="relocation_results", ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
        proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
        found = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
        results.unlink(missing_ok=True)
        if proc.returncode != 0:
            raise AssertionError("%s failed (rc %d): %s\n%s" % (argv[0], proc.returncode, proc.stdout[-3000:], proc.stderr[-2000:]))
        return found

    def playbook(self, max_lag, cooldown=0):
        """The lag_relocation playbook, as AWX would run it, with this scenario's one managed job."""
        jobs = {"lag_relocation_jobs": [{"name": self.name, "namespace": self.namespace, "group": self.group, "regions": ["a", "b"],
                                         "max_lag": max_lag, "cooldown": cooldown, "strategy": self.strategy}]}
        started = time.monotonic()
        moves = [r for r in self.ansible(["ansible-playbook", "-i", str(ROOT / "inventories" / "lab"),
                                          str(ROOT / "playbooks" / "lag_relocation.yml"), "-e", json.dumps(jobs)]) if r.get("changed")]
        for move in moves:
            self._record("playbook (lag)", move, time.monotonic() - started)
        return moves

    def module(self, region):
        """One ad-hoc call of the module, as an operator would make it."""
        args = dict(name=self.name, namespace=self.namespace, group=self.group, regions=[region], strategy=self.strategy,
                    bootstrap_servers=self.servers.split(","), reason="planned move back")
        started = time.monotonic()
        moves = [r for r in self.ansible(["ansible", "localhost", "-i", str(ROOT / "inventories" / "lab"),
                                          "-m", "streamops.day2.k8s_consumer_relocate", "-a", json.dumps(args)]) if r.get("changed")]
        for move in moves:
            self._record("module (planned)", move, time.monotonic() - started)
        return moves

    def _record(self, how, move, seconds):
        self.relocations.append(dict(how=how, strategy=self.strategy, region_from=move["region_before"], region_to=move["region"],
                                     gap_seconds=move["gap_seconds"], task_seconds=round(seconds, 2), old_nodes=move["old_nodes"],
                                     new_nodes=move["new_nodes"], timings=move.get("timings")))

    def naive_move(self, region, timeout=120):
        """What one would do without the module: patch the node selector and let the rolling update do it.

        The gap is measured as the module measures it: time in which the group had no Stable membership."""
        started = time.monotonic()
        self.apps.patch_namespaced_deployment(self.name, self.namespace, {"spec": {"template": {"spec": {"nodeSelector": {REGION_LABEL: region}}}}})
        deadline, inactive_since, gap = started + timeout, None, 0.0
        while time.monotonic() < deadline:
            d = self.apps.read_namespaced_deployment(self.name, self.namespace)
            s = d.status
            state, members = self.members()
            active = state == "STABLE" and bool(members)
            now = time.monotonic()
            if not active and inactive_since is None:
                inactive_since = now
            elif active and inactive_since is not None:
                gap, inactive_since = gap + now - inactive_since, None
            if active and (s.observed_generation or 0) >= d.metadata.generation and s.updated_replicas == self.replicas and \
                    s.ready_replicas == self.replicas and s.replicas == self.replicas:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the naive rollout to region %s did not finish in %ds" % (region, timeout))
        self.relocations.append(dict(how="naive (node selector patch, rolling update)", strategy="rolling", region_to=region,
                                     gap_seconds=round(gap, 3), task_seconds=round(time.monotonic() - started, 2)))
        return [region]

    def sigkill(self):
        """SIGKILL the consumer's process in its container (by the container's task, through its node's containerd)."""
        pod = next(p for p in self.pods() if p.status.phase == "Running" and not p.metadata.deletion_timestamp)
        container = pod.status.container_statuses[0]
        restarts = container.restart_count
        socket = self.env["K8S_CONTAINERD_A"] if pod.spec.node_name == self.node["a"] else self.env["K8S_CONTAINERD_B"]
        self.output_before_kill = self.output_ends()
        subprocess.run([self.env.get("K8S_CTR", "ctr"), "-a", socket, "-n", "k8s.io", "task", "kill", "-s", "SIGKILL",
                        container.container_id.split("://", 1)[1]], check=True, capture_output=True, timeout=30)
        self.kills += 1
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            pod = self.core.read_namespaced_pod(pod.metadata.name, self.namespace)
            status = pod.status.container_statuses[0]
            if status.restart_count > restarts and status.ready:
                return
            time.sleep(0.3)
        raise AssertionError("the killed consumer did not come back Ready in 120 s")

    # -- the verdict ---------------------------------------------------------------------------

    def output_ends(self):
        consumer = Consumer({"bootstrap.servers": self.servers, "group.id": "reader", "isolation.level": "read_committed"})
        try:
            return {p: consumer.get_watermark_offsets(TopicPartition(self.output, p), timeout=10)[1] for p in range(self.partitions)}
        finally:
            consumer.close()

    def read_output(self):
        """[(partition, offset, value)] of every committed record of the output topic."""
        ends = self.output_ends()
        consumer = Consumer({"bootstrap.servers": self.servers, "group.id": "verify-%s" % self.run_id, "enable.auto.commit": False,
                             "isolation.level": "read_committed", "auto.offset.reset": "earliest"})
        consumer.assign([TopicPartition(self.output, p, 0) for p in range(self.partitions)])
        records, done = [], {p for p, end in ends.items() if end == 0}
        deadline = time.monotonic() + 120
        try:
            while len(done) < self.partitions and time.monotonic() < deadline:
                for msg in consumer.consume(1000, 1.0):
                    if msg.error():
                        continue
                    records.append((msg.partition(), msg.offset(), int(msg.value())))
                    if msg.offset() + 1 >= ends[msg.partition()]:
                        done.add(msg.partition())
                # Transaction markers take offsets too: a partition whose position reached its end is done.
                for tp in consumer.position([TopicPartition(self.output, p) for p in range(self.partitions)]):
                    if tp.offset >= ends[tp.partition]:
                        done.add(tp.partition)
        finally:
            consumer.close()
        return records

    def verdict(self, produced):
        records = self.read_output()
        counts = collections.Counter(value for unused, unused2, value in records)
        lost = sum(1 for i in range(produced) if counts[i] == 0)
        duplicated = sum(c - 1 for c in counts.values() if c > 1)
        result = dict(lost=lost, duplicated=duplicated, output_records=len(records))
        if self.output_before_kill is not None:
            before = collections.Counter(v for p, o, v in records if o < self.output_before_kill[p])
            result["duplicated_before_kill"] = sum(c - 1 for c in before.values() if c > 1)
        return result


def run(env, mode, strategy="handover", produced=20000, rate=200, max_lag=1000, relocations=5, kill=None, naive=False):
    """The whole scenario; returns the report (relocation.json's shape).

    kill: None, "middle" (SIGKILL the consumer half-way through the relocations) or "end" (after the last one, while the
    producer still writes: what the output held before it is what the planned relocations alone did)."""
    lab = RelocationLab(env, "auto-commit" if naive else mode, strategy)
    lab.create("a")
    producer = SteadyProducer(lab.servers, lab.input, produced, rate)
    producer.start()
    lag_waits = []
    try:
        for i in range(relocations):
            target = "b" if lab.region_now() == "a" else "a"
            if kill == "middle" and i == relocations // 2:
                lab.sigkill()
            if target == "b":
                # A margin over the threshold: the playbook measures the lag again a moment later.
                reached, waited = lab.wait_lag(above=max_lag * 1.3, timeout=40 if producer.is_alive() else 0)
                if naive:
                    moved = lab.naive_move("b")
                else:
                    moved = lab.playbook(max_lag) if reached else lab.module("b")
                assert moved, "the relocation to region b did not happen"
                # How long until the job is back under its threshold in region b.
                back, waited = lab.wait_lag(below=max_lag, timeout=60)
                lag_waits.append(round(waited, 2) if back else None)
            else:
                time.sleep(3)
                moved = lab.naive_move("a") if naive else lab.module("a")
                assert moved, "the planned relocation back to region a did not happen"
        if kill == "end":
            lab.wait_lag(above=200, timeout=10 if producer.is_alive() else 0)  # records in flight, if the producer still writes
            lab.sigkill()
        producer.join(timeout=produced / rate + 120)
        assert producer.error is None, producer.error
        caught_up, unused = lab.wait_lag(below=0, timeout=180)
        assert caught_up, "the consumer did not catch up (lag %d)" % lab.lag()
        time.sleep(1)  # an exactly-once consumer's last transaction commits with its offsets
        report = dict(input_topic=lab.input, output_topic=lab.output, group=lab.group, namespace=lab.namespace, produced=producer.sent,
                      mode=lab.mode, strategy="rolling" if naive else strategy, relocations=len(lab.relocations), kills=lab.kills,
                      gap_seconds=[r["gap_seconds"] for r in lab.relocations if r["gap_seconds"] is not None],
                      seconds_to_under_threshold=lag_waits, moves=lab.relocations)
        report.update(lab.verdict(producer.sent))
        return report
    finally:
        lab.delete()  # the pods and their namespace; both topics stay in the lab for a look afterwards
