"""The workflow scenario on the real lab: Kafka, Kafka Connect (file connectors), two real kubelet nodes, the OpenFaaS
gateway with the lab's provider, the faas_workflow playbook.

A workflow of two steps (upper, then reverse) between a FileStreamSource and a FileStreamSink is deployed by the
playbook; the step functions idle down to zero; a burst of records is appended to the source file; runners are
killed with SIGKILL (their container's task, through their node's containerd) while it flows; the sink's file must
end with every record transformed, once. Meanwhile the functions' replicas are sampled from the gateway
(GET /system/function/<name>) and the scaler's decisions read from its log: the replica timeline.

Shared by tests/e2e/test_workflow.py (the proof) and tests/bench/workflow (the cold start).
"""

from __future__ import annotations

import base64
import collections
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

ROOT = Path(__file__).resolve().parents[2]


def lab_env():
    """.lab/env and .lab/openfaas.env (written by tests/lab/up), with the process environment winning."""
    env = {}
    for name in ("env", "openfaas.env"):
        path = ROOT / ".lab" / name
        if path.exists():
            for line in path.read_text().splitlines():
                if "=" in line and not line.lstrip().startswith("#"):
                    key, value = line.split("=", 1)
                    env[key.strip()] = value.strip()
    env.update({k: v for k, v in os.environ.items() if k.startswith(("KAFKA_", "K8S_", "KUBECONFIG", "KUBECTL", "OPENFAAS_"))})
    return env


def missing(env):
    """Why the scenario cannot run here, or None."""
    for key, part in (("KAFKA_BOOTSTRAP_SERVERS", "Kafka"), ("KAFKA_CONNECT_URL", "Kafka Connect"), ("KUBECONFIG", "Kubernetes"),
                      ("K8S_CONSUMER_IMAGE", "Kubernetes"), ("OPENFAAS_URL", "OpenFaaS"), ("OPENFAAS_FN_IMAGE", "OpenFaaS")):
        if not env.get(key):
            return "the lab's %s is not up (no %s in .lab/env): run tests/lab/up" % (part, key)
    return None


def record(i):
    return "rec-%05d-x" % i


def transformed(i):
    return record(i).upper()[::-1]


class Gateway:
    def __init__(self, env):
        self.url = env["OPENFAAS_URL"].rstrip("/")
        self.namespace = env.get("OPENFAAS_NAMESPACE") or "openfaas-fn"
        auth = "%s:%s" % (env.get("OPENFAAS_USERNAME", "admin"), env.get("OPENFAAS_PASSWORD", ""))
        self.headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode(), "Content-Type": "application/json"}

    def call(self, method, path, body=None, timeout=10):
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode() if body is not None else None,
                                         method=method, headers=self.headers)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = response.read()
        return json.loads(answer) if answer.strip().startswith((b"{", b"[")) else answer

    def function(self, name):
        try:
            return self.call("GET", "/system/function/%s?namespace=%s" % (name, self.namespace))
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def scale(self, name, replicas):
        self.call("POST", "/system/scale-function/%s?namespace=%s" % (name, self.namespace),
                  {"serviceName": name, "replicas": replicas, "namespace": self.namespace})


class ReplicaSampler(threading.Thread):
    """Samples the functions' replicas and available replicas from the gateway; keeps the changes, timestamped."""

    def __init__(self, gateway, functions, period=0.25):
        super().__init__(daemon=True)
        self.gateway, self.functions, self.period = gateway, functions, period
        self.timeline = {f: [] for f in functions}
        self.errors = 0
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            for fn in self.functions:
                try:
                    status = self.gateway.function(fn) or {}
                except (urllib.error.URLError, OSError, ValueError):
                    self.errors += 1
                    continue
                point = (int(status.get("replicas") or 0), int(status.get("availableReplicas") or 0))
                series = self.timeline[fn]
                if not series or (series[-1]["replicas"], series[-1]["available"]) != point:
                    series.append({"ts": round(time.time(), 3), "replicas": point[0], "available": point[1]})
            self._halt.wait(self.period)

    def now(self, fn):
        series = self.timeline[fn]
        return series[-1] if series else None

    def stop(self):
        self._halt.set()
        self.join(5)


class WorkflowLab:
    """One workflow of two steps (upper, reverse) on the lab, made and removed by the faas_workflow playbook."""

    def __init__(self, env, runners=2, concurrency=16, target_lag=500, max_replicas=3, idle_seconds=12, down_window=5):
        self.env = env
        self.run_id = uuid.uuid4().hex[:6]
        self.name = "wf-%s" % self.run_id
        self.dir = ROOT / ".lab" / "workflow-e2e" / self.name
        self.input, self.output = self.dir / "in.txt", self.dir / "out.txt"
        self.functions = {"upper": "%s-upper" % self.name, "reverse": "%s-reverse" % self.name}
        self.groups = {"upper": "%s-upper" % self.name, "reverse": "%s-reverse" % self.name}
        self.topics = {"in": "%s.in" % self.name, "upper": "%s.upper" % self.name, "reverse": "%s.reverse" % self.name}
        self.down_window, self.runners, self.concurrency = down_window, runners, concurrency
        scaling = {"target_lag": target_lag, "min": 1, "max": max_replicas, "idle_seconds": idle_seconds}
        self.spec = {
            "name": self.name,
            "sources": [{"name": "in", "file": str(self.input)}],
            "steps": [{"name": step, "image": env["OPENFAAS_FN_IMAGE"], "env": {"FN_TRANSFORM": step}, "runners": runners, "concurrency": concurrency,
                       "scaling": scaling} for step in ("upper", "reverse")],
            "sinks": [{"name": "out", "file": str(self.output)}],
        }
        self.gateway = Gateway(env)
        self.admin = AdminClient({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"]})
        self.kills = []
        self.playbook_runs = []

    # -- the playbook ---------------------------------------------------------------------------

    def playbook(self, state="present", extra=None, check=False):
        variables = {"faas_workflow_spec": self.spec, "faas_workflow_state": state, "faas_workflow_scaler_down_window": self.down_window}
        if state == "absent":
            variables["faas_workflow_delete_topics"] = True
        variables.update(extra or {})
        spec_file = self.dir / ("vars-%s.json" % state)
        self.dir.mkdir(parents=True, exist_ok=True)
        spec_file.write_text(json.dumps(variables))
        started = time.monotonic()
        env = dict(os.environ, **{k: v for k, v in self.env.items() if k.startswith("OPENFAAS_")})
        proc = subprocess.run(["ansible-playbook", "-i", str(ROOT / "inventories" / "lab"), str(ROOT / "playbooks" / "faas_workflow.yml"),
                               "-e", "@%s" % spec_file] + (["--check"] if check else []), cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600, check=False)
        recap = [line for line in proc.stdout.splitlines() if line.startswith("localhost") and "ok=" in line]
        self.playbook_runs.append({"state": state, "check": check, "rc": proc.returncode, "seconds": round(time.monotonic() - started, 1),
                                   "recap": recap[-1].split(":", 1)[1].strip() if recap else None})
        if proc.returncode != 0:
            raise AssertionError("the faas_workflow playbook (%s) failed (rc %d): %s\n%s"
                                 % (state, proc.returncode, proc.stdout[-4000:], proc.stderr[-2000:]))
        return self.playbook_runs[-1]

    def create(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        self.input.write_text("")
        return self.playbook("present")

    def delete(self):
        """The workflow down (state absent, topics too), the source's file offsets reset first, the files removed."""
        connect = self.env["KAFKA_CONNECT_URL"].rstrip("/")
        source = "%s/connectors/%s-in" % (connect, self.name)
        try:
            urllib.request.urlopen(urllib.request.Request(source + "/stop", method="PUT"), timeout=30).read()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                state = json.loads(urllib.request.urlopen(source + "/status", timeout=10).read())["connector"]["state"]
                if state == "STOPPED":
                    break
                time.sleep(0.5)
            urllib.request.urlopen(urllib.request.Request(source + "/offsets", method="DELETE"), timeout=30).read()
        except urllib.error.URLError:
            pass  # not made (a failed create), or already gone
        try:
            self.playbook("absent")
        finally:
            for future in self.admin.delete_consumer_groups(list(self.groups.values()), request_timeout=10).values():
                try:
                    future.result()
                except Exception:  # best effort: a group may never have been made
                    pass
            for path in sorted(self.dir.glob("*")):
                path.unlink()
            self.dir.rmdir()

    # -- observing ----------------------------------------------------------------------------

    def committed(self, step):
        """Records of a step's input its group has committed (offsets summed; markers included downstream)."""
        topic = self.topics["in"] if step == "upper" else self.topics["upper"]
        parts = self.admin.list_topics(topic, timeout=10).topics[topic].partitions
        request = [ConsumerGroupTopicPartitions(self.groups[step], [TopicPartition(topic, p) for p in parts])]
        result = self.admin.list_consumer_group_offsets(request, request_timeout=10)[self.groups[step]].result()
        return sum(tp.offset for tp in result.topic_partitions if tp.offset and tp.offset > 0)

    def output_lines(self):
        try:
            return self.output.read_text().splitlines()
        except FileNotFoundError:
            return []

    def exists(self):
        """What of the workflow exists: its namespace, its connectors, its functions."""
        proc = subprocess.run([self.env.get("KUBECTL", "kubectl"), "get", "namespace", self.name, "--ignore-not-found", "-o", "name"],
                              capture_output=True, text=True, timeout=60, env=dict(os.environ, KUBECONFIG=self.env["KUBECONFIG"]), check=True)
        connectors = json.loads(urllib.request.urlopen(self.env["KAFKA_CONNECT_URL"].rstrip("/") + "/connectors", timeout=10).read())
        return {"namespace": bool(proc.stdout.strip()), "connectors": sorted(c for c in connectors if c.startswith(self.name + "-")),
                "functions": sorted(f for f in self.functions.values() if self.gateway.function(f) is not None)}

    def kubectl(self, *args, timeout=60):
        proc = subprocess.run([self.env.get("KUBECTL", "kubectl"), "-n", self.name] + list(args), capture_output=True, text=True, timeout=timeout,
                              env=dict(os.environ, KUBECONFIG=self.env["KUBECONFIG"]), check=False)
        if proc.returncode != 0:
            raise AssertionError("kubectl %s: %s" % (" ".join(args), proc.stderr.strip()))
        return proc.stdout

    def scaler_decisions(self):
        """The scaler's "scaled" lines (its log is the replica timeline it decided)."""
        out = self.kubectl("logs", "deployment/%s-scaler" % self.name, "--tail=-1")
        events = []
        for line in out.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "scaled":
                events.append({k: event.get(k) for k in ("ts", "function", "replicas_from", "replicas_to", "lag", "reason")})
        return events

    def runner_events(self, step, name):
        """Events `name` from every runner pod of a step (current and previous containers)."""
        found = []
        pods = json.loads(self.kubectl("get", "pods", "-l", "app=%s-%s-runner" % (self.name, step), "-o", "json"))["items"]
        for pod in pods:
            for previous in (False, True):
                args = ["logs", pod["metadata"]["name"]] + (["--previous"] if previous else [])
                try:
                    out = self.kubectl(*args)
                except AssertionError:
                    continue  # no previous container
                for line in out.splitlines():
                    if '"event": "%s"' % name in line:
                        found.append(json.loads(line))
        return found

    # -- the crash ----------------------------------------------------------------------------

    def sigkill_runner(self, step, timeout=120):
        """SIGKILL one runner of a step in its container (its task, through its node's containerd); waits for the restart."""
        pods = json.loads(self.kubectl("get", "pods", "-l", "app=%s-%s-runner" % (self.name, step), "-o", "json"))["items"]
        pod = next(p for p in pods if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp"))
        status = pod["status"]["containerStatuses"][0]
        node_a = self.env["K8S_NODE_A"]
        socket = self.env["K8S_CONTAINERD_A"] if pod["spec"]["nodeName"] == node_a else self.env["K8S_CONTAINERD_B"]
        done_before = self.committed(step)
        subprocess.run([self.env.get("K8S_CTR", "ctr"), "-a", socket, "-n", self.env.get("K8S_CTR_NAMESPACE", "k8s.io"), "task", "kill",
                        "-s", "SIGKILL", status["containerID"].split("://", 1)[1]], check=True, capture_output=True, timeout=30)
        kill = {"step": step, "pod": pod["metadata"]["name"], "ts": round(time.time(), 3), "committed_before": done_before}
        self.kills.append(kill)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = json.loads(self.kubectl("get", "pod", pod["metadata"]["name"], "-o", "json"))["status"]["containerStatuses"][0]
            if now.get("restartCount", 0) > status.get("restartCount", 0) and now.get("ready"):
                kill["back_after_s"] = round(time.time() - kill["ts"], 2)
                return kill
            time.sleep(0.3)
        raise AssertionError("the killed runner %s did not come back Ready in %ds" % (pod["metadata"]["name"], timeout))

    def verdict(self, count):
        lines = self.output_lines()
        counts = collections.Counter(lines)
        want = {transformed(i) for i in range(count)}
        return {"output_lines": len(lines), "lost": sum(1 for w in want if counts[w] == 0),
                "duplicated": sum(c - 1 for c in counts.values() if c > 1), "unexpected": sorted(set(counts) - want)[:10]}
