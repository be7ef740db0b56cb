"""k8s_consumer_relocate against the lab's real Kubernetes (two kubelet nodes, regions a and b) and real Kafka.

Each test deploys the lab's consumer app (the streamops_consumer helper) in its own namespace, consuming a topic of
its own, and moves it with the module; the pods' nodes, the group's members and the workload are read back from
the API server and the brokers themselves.
"""

from __future__ import annotations

import time
import uuid

import confluent_kafka
import kubernetes
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import run_module

pytestmark = pytest.mark.timeout(600)
LABEL = "topology.kubernetes.io/region"


@pytest.fixture(scope="module")
def k8s(lab):
    for key in ("KUBECONFIG", "K8S_NODE_A", "K8S_NODE_B", "K8S_CONSUMER_IMAGE", "KAFKA_BOOTSTRAP_SERVERS"):
        if not lab.get(key):
            pytest.skip("the lab's Kubernetes or Kafka is not up (no %s in .lab/env): run tests/lab/up" % key)
    return Cluster(lab)


class Cluster:
    def __init__(self, env):
        self.env = env
        api = kubernetes.config.new_client_from_config(config_file=env["KUBECONFIG"])
        self.core, self.apps = kubernetes.client.CoreV1Api(api), kubernetes.client.AppsV1Api(api)
        self.servers = env["KAFKA_BOOTSTRAP_SERVERS"]
        self.admin = AdminClient({"bootstrap.servers": self.servers})
        self.nodes = {"a": env["K8S_NODE_A"], "b": env["K8S_NODE_B"]}

    def args(self, app, **extra):
        base = dict(name=app.name, namespace=app.namespace, group=app.group, kind=app.kind,
                    bootstrap_servers=self.servers.split(","), kubeconfig=self.env["KUBECONFIG"], wait_timeout=90)
        base.update(extra)
        return base


class App:
    """One consumer app (Deployment or StatefulSet) in a namespace of its own, in region a."""

    def __init__(self, cluster, kind="Deployment", gate=False, probe=None, requests=None, replicas=1):
        self.cluster, self.kind = cluster, kind
        tag = uuid.uuid4().hex[:8]
        self.namespace = "reloc-it-%s" % tag
        self.name = "consumer"
        self.group = "reloc-it-%s" % tag
        self.topic = "reloc-it-%s" % tag
        for future in cluster.admin.create_topics([NewTopic(self.topic, 2, 3)]).values():
            future.result(30)
        producer = confluent_kafka.Producer({"bootstrap.servers": cluster.servers})
        for i in range(100):
            producer.produce(self.topic, value=str(i).encode())
        producer.flush(30)
        cluster.core.create_namespace({"metadata": {"name": self.namespace}})
        body = self.manifest(gate, probe, requests or {"cpu": "50m", "memory": "64Mi"}, replicas)
        if kind == "Deployment":
            cluster.apps.create_namespaced_deployment(self.namespace, body)
        else:
            cluster.apps.create_namespaced_stateful_set(self.namespace, body)
        self.wait_consuming()

    def manifest(self, gate, probe, requests, replicas):
        env = [
            {"name": "KAFKA_BOOTSTRAP_SERVERS", "value": self.cluster.servers},
            {"name": "STREAMOPS_GROUP", "value": self.group},
            {"name": "STREAMOPS_INPUT_TOPIC", "value": self.topic},
            {"name": "STREAMOPS_MODE", "value": "at-least-once"},
            {"name": "STREAMOPS_START_GATE", "value": "after-others-leave" if gate else "none"},
            {"name": "STREAMOPS_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "STREAMOPS_INSTANCE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ]
        if gate:
            env.append({"name": "STREAMOPS_GENERATION", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['pod-template-hash']"}}})
        spec = {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": self.name}},
            "template": {"metadata": {"labels": {"app": self.name}}, "spec": {
                "hostNetwork": True, "nodeSelector": {LABEL: "a"}, "terminationGracePeriodSeconds": 10,
                "containers": [{"name": "consumer", "image": self.cluster.env["K8S_CONSUMER_IMAGE"], "imagePullPolicy": "IfNotPresent",
                                "command": ["python3", "-m", "streamops_consumer"], "env": env, "resources": {"requests": requests},
                                "readinessProbe": {"exec": {"command": probe or ["test", "-f", "/tmp/streamops-ready"]},
                                                   "periodSeconds": 1, "failureThreshold": 1}}]}},
        }
        if self.kind == "StatefulSet":
            spec["serviceName"] = self.name
        return {"apiVersion": "apps/v1", "kind": self.kind, "metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec}

    def read(self):
        reader = self.cluster.apps.read_namespaced_deployment if self.kind == "Deployment" else self.cluster.apps.read_namespaced_stateful_set
        return reader(self.name, self.namespace)

    def region(self):
        return (self.read().spec.template.spec.node_selector or {}).get(LABEL)

    def pod_nodes(self):
        pods = self.cluster.core.list_namespaced_pod(self.namespace, label_selector="app=%s" % self.name).items
        return sorted({p.spec.node_name for p in pods if not p.metadata.deletion_timestamp})

    def members(self):
        description = self.cluster.admin.describe_consumer_groups([self.group])[self.group].result(10)
        return description.state.name, description.members

    def wait_consuming(self, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state, members = self.members()
            if state == "STABLE" and members:
                return
            time.sleep(0.3)
        raise AssertionError("the app's group %s never became Stable" % self.group)

    def delete(self):
        self.cluster.core.delete_namespace(self.namespace, grace_period_seconds=0)


@pytest.fixture
def app(k8s):
    made = []

    def make(**options):
        made.append(App(k8s, **options))
        return made[-1]

    yield make
    for one in made:
        one.delete()


def test_handover_moves_the_pods_and_the_group_follows(k8s, app):
    one = app()
    result = run_module("k8s_consumer_relocate", k8s.args(one, regions=["b"], reason="test"), diff=True)
    assert result["rc"] == 0, result["msg"]
    assert result["changed"] and (result["region_before"], result["region"]) == ("a", "b")
    assert result["old_nodes"] == [k8s.nodes["a"]] and result["new_nodes"] == [k8s.nodes["b"]]
    assert one.pod_nodes() == [k8s.nodes["b"]] and one.region() == "b"
    state, members = one.members()
    assert state == "STABLE" and len(members) == 1 and result["members"][0]["client_id"] == members[0].client_id
    assert 0 < result["gap_seconds"] < 60
    assert {o["topic"] for o in result["offsets"]} == {one.topic} and sum(o["offset"] for o in result["offsets"]) == 100
    assert result["diff"]["before"]["nodeSelector"] == {LABEL: "a"} and result["diff"]["after"]["nodeSelector"] == {LABEL: "b"}
    annotations = one.read().metadata.annotations
    assert annotations["streamops.day2/relocated-from"] == "a" and annotations["streamops.day2/relocation-reason"] == "test"

    again = run_module("k8s_consumer_relocate", k8s.args(one, regions=["b"]))
    assert again["rc"] == 0 and not again["changed"] and again["region"] == "b"
    assert one.read().metadata.annotations == annotations


def test_check_mode_predicts_and_touches_nothing(k8s, app):
    one = app()
    before = one.read()
    result = run_module("k8s_consumer_relocate", k8s.args(one, regions=["b"]), check=True, diff=True)
    assert result["rc"] == 0 and result["changed"] and result["region"] == "b"
    assert result["diff"]["after"]["nodeSelector"] == {LABEL: "b"}
    after = one.read()
    assert after.metadata.generation == before.metadata.generation and after.spec.replicas == before.spec.replicas
    assert one.pod_nodes() == [k8s.nodes["a"]]


def test_warm_strategy_starts_the_new_pod_first(k8s, app):
    one = app(gate=True)
    strategy = one.read().spec.strategy.to_dict()
    result = run_module("k8s_consumer_relocate", k8s.args(one, regions=["b"], strategy="warm"))
    assert result["rc"] == 0, result["msg"]
    assert result["changed"] and one.pod_nodes() == [k8s.nodes["b"]]
    assert one.members()[0] == "STABLE"
    assert result["gap_seconds"] < 30
    assert one.read().spec.strategy.to_dict() == strategy, "the Deployment's own rollout strategy was not put back"


def test_statefulset_handover_and_warm_refused(k8s, app):
    one = app(kind="StatefulSet")
    refused = run_module("k8s_consumer_relocate", k8s.args(one, regions=["b"], strategy="warm"))
    assert refused["rc"] != 0 and "warm strategy needs a Deployment" in refused["msg"]
    assert one.region() == "a"
    result = run_module("k8s_consumer_relocate", k8s.args(one, regions=["b"]))
    assert result["rc"] == 0, result["msg"]
    assert one.pod_nodes() == [k8s.nodes["b"]] and one.members()[0] == "STABLE"


def test_pods_not_ready_in_the_target_region_roll_back(k8s, app):
    # Ready only off node b: in region b the pods start but never become Ready.
    probe = ["sh", "-c", "test -f /tmp/streamops-ready && test \"$STREAMOPS_NODE_NAME\" != %s" % k8s.nodes["b"]]
    one = app(probe=probe)
    result = run_module("k8s_consumer_relocate", k8s.args(one, regions=["b"], wait_timeout=15))
    assert result["rc"] != 0 and result["rolled_back"]
    assert result["msg"].startswith("Relocation rolled back: the new pods") and "region a again" in result["msg"]
    assert one.region() == "a"
    one.wait_consuming()
    assert one.pod_nodes() == [k8s.nodes["a"]]


def test_rotate_and_cooldown(k8s, app):
    one = app()
    first = run_module("k8s_consumer_relocate", k8s.args(one, regions=["a", "b"], rotate=True, cooldown=600))
    assert first["rc"] == 0 and first["changed"] and first["region"] == "b"
    held = run_module("k8s_consumer_relocate", k8s.args(one, regions=["a", "b"], rotate=True, cooldown=600))
    assert held["rc"] == 0 and not held["changed"] and held["region"] == "b" and 500 < held["cooldown_remaining"] <= 600
    back = run_module("k8s_consumer_relocate", k8s.args(one, regions=["a", "b"], rotate=True, cooldown=0))
    assert back["rc"] == 0 and back["changed"] and back["region"] == "a"
    assert one.read().metadata.annotations["streamops.day2/relocations"] == "2"


def test_clear_errors_and_nothing_changed(k8s, app):
    one = app()
    generation = one.read().metadata.generation
    cases = [
        (dict(name="nosuch", regions=["b"]), "Deployment %s/nosuch does not exist" % one.namespace),
        (dict(regions=["z"]), "No region to move Deployment %s/consumer to: z has no Ready node" % one.namespace),
        (dict(regions=["a"], rotate=True), "the only region"),
        (dict(regions=[]), "regions is empty"),
    ]
    for extra, expected in cases:
        result = run_module("k8s_consumer_relocate", k8s.args(one, **extra))
        assert result["rc"] != 0 and expected in result["msg"], (extra, result["msg"])
        assert "Traceback" not in result["msg"]
    assert one.read().metadata.generation == generation and one.pod_nodes() == [k8s.nodes["a"]]


def test_no_room_in_the_target_region(k8s, app):
    one = app()
    args = k8s.args(one, regions=["b"])
    # A workload asking for more CPU than node b has: patched on the template while it runs in a (Pending there too, but
    # the module must refuse before it stops anything).
    k8s.apps.patch_namespaced_deployment(one.name, one.namespace, {"spec": {"template": {"spec": {"containers": [
        {"name": "consumer", "resources": {"requests": {"cpu": "500"}}}]}}}})
    result = run_module("k8s_consumer_relocate", args)
    assert result["rc"] != 0 and "b has no room for 1 pod requesting cpu 500" in result["msg"], result["msg"]


def test_unreachable_api_server_is_said_at_once():
    started = time.monotonic()
    result = run_module("k8s_consumer_relocate", dict(name="x", group="g", regions=["b"], bootstrap_servers=["127.0.0.1:9"],
                                                      host="https://127.0.0.1:1", api_key="secret-token-1234", verify_ssl=False))
    assert result["rc"] != 0 and result["msg"].startswith("Cannot reach the Kubernetes API server at https://127.0.0.1:1")
    assert result["invocation"]["module_args"]["api_key"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert time.monotonic() - started < 15
