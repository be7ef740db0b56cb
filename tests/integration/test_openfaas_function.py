"""openfaas_function and openfaas_function_info against the lab's REAL OpenFaaS gateway, its provider and Kubernetes.

Observed independently of the modules: invocations through the gateway and its REST API with plain urllib,
the Deployments and pods through kubectl (which node, which environment, which files are mounted).
"""

import base64
import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest

from conftest import run_module


class Gateway:
    """The gateway's REST API and the lab's kubectl, without the modules."""

    def __init__(self, env):
        self.url = env["OPENFAAS_URL"].rstrip("/")
        self.user, self.password = env["OPENFAAS_USERNAME"], env["OPENFAAS_PASSWORD"]
        self.namespace = env["OPENFAAS_NAMESPACE"]
        self.image = env["OPENFAAS_FN_IMAGE"]
        self.kubectl, self.kubeconfig = env["KUBECTL"], env["KUBECONFIG"]
        self.node_a, self.node_b, self.region_label = env["K8S_NODE_A"], env["K8S_NODE_B"], env["K8S_REGION_LABEL"]
        self.made = []

    def args(self, name, **extra):
        out = dict(gateway_url=self.url, gateway_username=self.user, gateway_password=self.password, name=name)
        out.update(extra)
        return out

    def name(self, suffix="f"):
        self.made.append("it-%s-%s" % (uuid.uuid4().hex[:6], suffix))
        return self.made[-1]

    def request(self, method, path, body=None, auth=True, timeout=60):
        data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if auth:
            req.add_header("Authorization", "Basic " + base64.b64encode(("%s:%s" % (self.user, self.password)).encode()).decode())
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def invoke(self, name, body):
        code, out = self.request("POST", "/function/%s" % name, body.encode(), auth=False, timeout=120)
        return code, out.decode()

    def function(self, name):
        code, out = self.request("GET", "/system/function/%s" % name)
        return json.loads(out) if code == 200 else None

    def listed(self, name):
        code, out = self.request("GET", "/system/functions")
        assert code == 200, out
        return next((f for f in json.loads(out) if f["name"] == name), None)

    def delete(self, name):
        self.request("DELETE", "/system/functions", {"functionName": name})

    def kc(self, *args):
        proc = subprocess.run([self.kubectl, "--kubeconfig", self.kubeconfig, "-n", self.namespace, *args],
                              capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def deployment(self, name):
        return json.loads(self.kc("get", "deployment", name, "-o", "json"))

    def pods(self, name):
        """The function's pods that are not being deleted."""
        items = json.loads(self.kc("get", "pods", "-l", "faas_function=%s" % name, "-o", "json"))["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def all_pods(self, name):
        return json.loads(self.kc("get", "pods", "-l", "faas_function=%s" % name, "-o", "json"))["items"]

    def wait_pods(self, name, test, timeout=45):
        deadline = time.monotonic() + timeout
        while True:
            pods = self.all_pods(name)
            if test(pods):
                return pods
            if time.monotonic() > deadline:
                raise AssertionError("pods of %s: %s" % (name, [(p["metadata"]["name"], p["status"].get("phase")) for p in pods]))
            time.sleep(0.3)


@pytest.fixture(scope="module")
def gateway(lab):
    if not lab.get("OPENFAAS_URL"):
        pytest.skip("the lab's OpenFaaS is not up (no OPENFAAS_URL in .lab/env): run tests/lab/up k8s openfaas")
    return Gateway(lab)


@pytest.fixture
def gw(gateway):
    """The gateway, with every function a test named deleted afterwards."""
    gateway.made = []
    yield gateway
    for name in gateway.made:
        gateway.delete(name)


def ok(result):
    assert result["rc"] == 0 and not result.get("failed"), result.get("msg")
    return result


def one_sentence(result, *words):
    assert result.get("failed") and result["rc"] != 0, result
    msg = result["msg"]
    assert "\n" not in msg and "Traceback" not in msg and msg.endswith("."), msg
    for word in words:
        assert word in msg, msg
    return msg


def upper(gw, name, **extra):
    args = gw.args(name, image=gw.image, env_vars={"FN_TRANSFORM": "upper"})
    args.update(extra)
    return args


def test_deploy_invoke_and_rerun_unchanged(gw):
    name = gw.name()
    args = upper(gw, name, labels={"com.openfaas.scale.min": "1"}, annotations={"topic": "orders"},
                 limits={"memory": "64Mi", "cpu": "0.5"}, requests={"memory": "32Mi", "cpu": "50m"})
    first = ok(run_module("openfaas_function", args))
    assert first["changed"] and first["actions"] == ["deploy function %s" % name]
    fn = first["function"]
    assert fn["available_replicas"] == 1 and fn["replicas"] == 1 and fn["namespace"] == gw.namespace
    assert fn["limits"] == {"memory": "64Mi", "cpu": "500m"}  # as the server shows it

    assert gw.invoke(name, "hello openfaas") == (200, "HELLO OPENFAAS")
    dep = gw.deployment(name)
    tmpl = dep["spec"]["template"]
    assert tmpl["metadata"]["labels"]["com.openfaas.scale.min"] == "1"
    assert tmpl["metadata"]["annotations"]["topic"] == "orders"
    assert tmpl["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "500m", "memory": "64Mi"}
    generation = dep["metadata"]["generation"]

    again = ok(run_module("openfaas_function", args))
    assert not again["changed"] and again["actions"] == [], again["actions"]
    assert gw.deployment(name)["metadata"]["generation"] == generation


def test_env_change_is_a_change_with_diff_and_the_pods_roll(gw):
    name = gw.name()
    ok(run_module("openfaas_function", upper(gw, name, env_vars={"FN_TRANSFORM": "upper", "KEEP": "1"})))
    old_pods = set(p["metadata"]["name"] for p in gw.pods(name))
    changed = ok(run_module("openfaas_function", upper(gw, name, env_vars={"FN_TRANSFORM": "reverse", "KEEP": "1"}), diff=True))
    assert changed["changed"] and changed["actions"] == ["update env_vars (set FN_TRANSFORM)"]
    assert changed["diff"]["before"]["env_vars"] == {"FN_TRANSFORM": "upper", "KEEP": "1"}
    assert changed["diff"]["after"]["env_vars"] == {"FN_TRANSFORM": "reverse", "KEEP": "1"}
    assert changed["function"]["available_replicas"] == 1
    # The wait covered the rollout: the next invocation is answered by the new spec.
    assert gw.invoke(name, "abc") == (200, "cba")
    pods = gw.wait_pods(name, lambda ps: len(ps) == 1 and ps[0]["metadata"]["name"] not in old_pods)
    env = dict((e["name"], e["value"]) for e in pods[0]["spec"]["containers"][0]["env"])
    assert env == {"FN_TRANSFORM": "reverse", "KEEP": "1"}
    same = ok(run_module("openfaas_function", upper(gw, name, env_vars={"FN_TRANSFORM": "reverse", "KEEP": "1"}), diff=True))
    assert not same["changed"] and same["diff"]["before"] == same["diff"]["after"]


def test_check_mode_predicts_and_touches_nothing(gw):
    name, new = gw.name(), gw.name("new")
    ok(run_module("openfaas_function", upper(gw, name)))
    dep = gw.deployment(name)
    pods = set(p["metadata"]["name"] for p in gw.pods(name))

    predicted = ok(run_module("openfaas_function", upper(gw, name, image="streamops-lab/fn:2", env_vars={"FN_TRANSFORM": "reverse"},
                                                         replicas=2), check=True, diff=True))
    assert predicted["changed"]
    assert predicted["actions"] == ["update image, env_vars (set FN_TRANSFORM)", "scale from 1 to 2 replicas"]
    assert predicted["function"]["image"] == "streamops-lab/fn:2" and predicted["function"]["replicas"] == 2
    assert predicted["diff"]["before"]["image"] == gw.image and predicted["diff"]["after"]["image"] == "streamops-lab/fn:2"

    gone = ok(run_module("openfaas_function", gw.args(name, state="absent"), check=True))
    assert gone["changed"] and gone["actions"] == ["delete function %s" % name]
    created = ok(run_module("openfaas_function", upper(gw, new), check=True))
    assert created["changed"] and created["function"]["name"] == new

    after = gw.deployment(name)
    assert after["metadata"]["generation"] == dep["metadata"]["generation"] and after["spec"]["replicas"] == 1
    assert after["spec"]["template"]["spec"]["containers"][0]["image"] == gw.image
    assert set(p["metadata"]["name"] for p in gw.pods(name)) == pods
    assert gw.function(new) is None
    assert gw.invoke(name, "still") == (200, "STILL")


def test_scale_to_zero_then_two(gw):
    name = gw.name()
    ok(run_module("openfaas_function", upper(gw, name)))

    zero = ok(run_module("openfaas_function", upper(gw, name, replicas=0), diff=True))
    assert zero["changed"] and zero["actions"] == ["scale from 1 to 0 replicas"]
    assert zero["function"]["replicas"] == 0 and zero["function"]["available_replicas"] == 0
    assert zero["diff"]["before"]["replicas"] == 1 and zero["diff"]["after"]["replicas"] == 0
    assert gw.deployment(name)["spec"]["replicas"] == 0
    gw.wait_pods(name, lambda ps: ps == [])
    assert not ok(run_module("openfaas_function", upper(gw, name, replicas=0)))["changed"]
    # Without replicas the count is left alone (an autoscaler's): still zero, no change.
    assert not ok(run_module("openfaas_function", upper(gw, name)))["changed"]
    assert gw.deployment(name)["spec"]["replicas"] == 0

    two = ok(run_module("openfaas_function", upper(gw, name, replicas=2)))
    assert two["changed"] and two["function"]["available_replicas"] == 2
    ready = [p for p in gw.pods(name) if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]
    assert len(ready) == 2
    assert not ok(run_module("openfaas_function", upper(gw, name, replicas=2)))["changed"]
    served = set()
    for i in range(12):  # the provider spreads invocations over the ready pods
        with urllib.request.urlopen(urllib.request.Request(gw.url + "/function/" + name, data=b"x%d" % i), timeout=30) as response:
            assert response.read() == b"X%d" % i
            served.add(response.headers["X-Fn-Pod"])
    assert served == set(p["metadata"]["name"] for p in gw.pods(name))


def test_constraints_pin_the_pods_to_a_region(gw):
    name = gw.name()
    b = ok(run_module("openfaas_function", upper(gw, name, constraints=["%s=b" % gw.region_label], replicas=2)))
    assert b["function"]["constraints"] == ["%s=b" % gw.region_label]
    pods = gw.wait_pods(name, lambda ps: len(ps) == 2 and all(p["spec"].get("nodeName") for p in ps))
    assert set(p["spec"]["nodeName"] for p in pods) == {gw.node_b}
    assert not ok(run_module("openfaas_function", upper(gw, name, constraints=["%s == b" % gw.region_label])))["changed"]

    a = ok(run_module("openfaas_function", upper(gw, name, constraints=["%s=a" % gw.region_label])))
    assert a["changed"] and a["function"]["available_replicas"] == 2
    pods = gw.wait_pods(name, lambda ps: len(ps) == 2 and all(p["spec"].get("nodeName") == gw.node_a for p in ps))
    assert gw.invoke(name, "moved") == (200, "MOVED")


def test_secrets_are_mounted_and_a_missing_one_is_one_sentence(gw):
    name, secret = gw.name(), "it-secret-%s" % uuid.uuid4().hex[:6]
    value = "s3cr3t-%s" % uuid.uuid4().hex[:8]
    code, out = gw.request("POST", "/system/secrets", {"name": secret, "value": value})
    assert code in (200, 201, 202), out
    try:
        args = gw.args(name, image=gw.image, env_vars={"FN_TRANSFORM": "secret:%s" % secret}, secrets=[secret])
        first = ok(run_module("openfaas_function", args))
        assert first["function"]["secrets"] == [secret]
        assert gw.invoke(name, "") == (200, value)
        pod = gw.pods(name)[0]["metadata"]["name"]
        assert gw.kc("exec", pod, "--", "cat", "/var/openfaas/secrets/%s" % secret) == value
        assert not ok(run_module("openfaas_function", args))["changed"]

        missing = run_module("openfaas_function", dict(args, secrets=[secret, "it-no-such-secret"]))
        one_sentence(missing, "it-no-such-secret", "HTTP 400")
        assert gw.function(name)["secrets"] == [secret]
    finally:
        gw.request("DELETE", "/system/secrets", {"name": secret})


def test_absent_twice(gw):
    name = gw.name()
    ok(run_module("openfaas_function", upper(gw, name)))
    first = ok(run_module("openfaas_function", gw.args(name, state="absent"), diff=True))
    assert first["changed"] and first["function"] == {} and first["diff"]["after"] == {}
    assert first["diff"]["before"]["name"] == name
    assert gw.function(name) is None
    gw.wait_pods(name, lambda ps: ps == [])
    second = ok(run_module("openfaas_function", gw.args(name, state="absent")))
    assert not second["changed"] and second["actions"] == []


def test_a_bad_password_is_one_sentence_and_never_shown(gw):
    name = gw.name()
    result = run_module("openfaas_function", upper(gw, name, gateway_password="wrong-%s" % uuid.uuid4().hex))
    msg = one_sentence(result, "HTTP 401", "credentials", "gateway_password")
    assert gw.password not in json.dumps(result) and "wrong-" not in msg
    info = run_module("openfaas_function_info", dict(gateway_url=gw.url, gateway_password="nope"))
    one_sentence(info, "HTTP 401")
    none = run_module("openfaas_function_info", dict(gateway_url=gw.url), env={"OPENFAAS_PASSWORD": None})
    one_sentence(none, "requires credentials", "gateway_password")


def test_an_unreachable_gateway_is_one_sentence_within_seconds(gw):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    result = run_module("openfaas_function", upper(gw, gw.name(), gateway_url="http://127.0.0.1:%d" % port))
    one_sentence(result, "Cannot reach the OpenFaaS gateway", "connection refused")
    assert result["_test_seconds"] < 5
    nothing = run_module("openfaas_function_info", {}, env={"OPENFAAS_URL": None})
    one_sentence(nothing, "gateway_url", "OPENFAAS_URL")


def test_an_unknown_namespace_is_one_sentence(gw):
    name = gw.name()
    for module, args in (("openfaas_function", upper(gw, name, namespace="it-no-such-ns")),
                         ("openfaas_function", gw.args(name, namespace="it-no-such-ns", state="absent")),
                         ("openfaas_function_info", dict(gw.args(name), namespace="it-no-such-ns"))):
        one_sentence(run_module(module, args), "Namespace it-no-such-ns", gw.namespace)
    assert gw.function(name) is None


def test_a_function_that_never_becomes_available_is_one_sentence(gw):
    name = gw.name()
    result = run_module("openfaas_function", gw.args(name, image="streamops-lab/no-such-image:1", wait_timeout=4))
    one_sentence(result, name, "0 of 1 replica(s) available after 4s")
    assert result["function"]["available_replicas"] == 0
    pods = gw.all_pods(name)
    assert pods and all(p["status"].get("phase") == "Pending" for p in pods)


def test_info_lists_functions_with_real_invocation_counts(gw):
    name, other = gw.name(), gw.name("other")
    ok(run_module("openfaas_function", upper(gw, name)))
    ok(run_module("openfaas_function", gw.args(other, image=gw.image, env_vars={"FN_TRANSFORM": "fail-on:BAD"}, replicas=0, wait=False)))
    for word in ("a", "b", "c"):
        assert gw.invoke(name, word) == (200, word.upper())

    deadline = time.monotonic() + 15
    while True:  # the gateway reads its counts back from Prometheus (scraped every second)
        mine = ok(run_module("openfaas_function_info", gw.args(name)))
        if mine["functions"] and mine["functions"][0]["invocation_count"] >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not mine["changed"] and mine["exists"]
    assert [f["name"] for f in mine["functions"]] == [name]
    fn = mine["functions"][0]
    assert fn["invocation_count"] == 3 == int(gw.listed(name)["invocationCount"])
    assert fn["replicas"] == 1 and fn["available_replicas"] == 1 and fn["image"] == gw.image
    assert fn["labels"]["faas_function"] == name

    listing = ok(run_module("openfaas_function_info", dict(gateway_url=gw.url, gateway_password=gw.password), check=True))
    assert not listing["changed"]
    by_name = dict((f["name"], f) for f in listing["functions"])
    assert by_name[other]["replicas"] == 0 and by_name[other]["invocation_count"] == 0
    everywhere = ok(run_module("openfaas_function_info", dict(gateway_url=gw.url, gateway_password=gw.password, all_namespaces=True)))
    assert {name, other} <= set(f["name"] for f in everywhere["functions"])
    absent = ok(run_module("openfaas_function_info", gw.args("it-no-such-function")))
    assert absent["functions"] == [] and not absent["exists"]


def test_the_environment_gives_the_gateway_and_credentials(gw):
    name = gw.name()
    env = dict(OPENFAAS_URL=gw.url, OPENFAAS_USERNAME=gw.user, OPENFAAS_PASSWORD=gw.password)
    made = ok(run_module("openfaas_function", dict(name=name, image=gw.image, env={"FN_TRANSFORM": "reverse"}), env=env))
    assert made["changed"] and made["function"]["env_vars"] == {"FN_TRANSFORM": "reverse"}
    assert gw.invoke(name, "lab") == (200, "bal")
    assert ok(run_module("openfaas_function_info", dict(name=name), env=env))["exists"]


def test_tls_is_verified_by_default(gw, lab):
    """The lab's Kubernetes API (HTTPS, its own CA, on 127.0.0.1) stands in for a gateway behind TLS."""
    https = lab["K8S_API_SERVER"]
    untrusted = run_module("openfaas_function_info", dict(gateway_url=https, gateway_password="x"))
    one_sentence(untrusted, "TLS certificate is not trusted", "ca_path")
    trusted = run_module("openfaas_function_info", dict(gateway_url=https, gateway_password="x", ca_path=lab["K8S_CA_CERT"]))
    # Past TLS: the API server takes no basic auth and refuses the anonymous user; its JSON error said as its message.
    assert "TLS" not in one_sentence(trusted, "HTTP 403", 'cannot get path "/system/functions"')
