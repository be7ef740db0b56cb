# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The step runner and the scaler, and the helper contract they rest on (Output to other topics with headers,
checkpoint() inside a hook, Unprocessed), against the lab's real Kafka and, where a gateway is needed, the lab's real
OpenFaaS gateway and function image (tests/lab/openfaas.sh; those tests skip without it)."""

from __future__ import annotations

import base64
import collections
import io
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from kafkalab import PARTITIONS, REPO, assert_each_once, wait_until
from streamops_consumer import ConsumerHelper, Output, Settings, Unprocessed
from streamops_consumer.gateway import GatewaySettings
from streamops_consumer.scaler import ScaledStep, ScalerSettings
from streamops_consumer.settings import SettingsError
from streamops_consumer.step import StepSettings

pytestmark = pytest.mark.timeout(180)
N = 600


# -- pure ------------------------------------------------------------------------------------------

def test_step_settings_and_back_off():
    step = StepSettings.from_env({"STREAMOPS_STEP_FUNCTION": "upper", "STREAMOPS_STEP_BACKOFF_MS": "100", "STREAMOPS_STEP_BACKOFF_MAX_MS": "350"})
    assert (step.function, step.retries, step.timeout_ms, step.dlq_topic) == ("upper", 5, 10000, None)
    assert [step.backoff(i) for i in (1, 2, 3, 4)] == [0.1, 0.2, 0.35, 0.35]
    with pytest.raises(SettingsError, match="STREAMOPS_STEP_FUNCTION"):
        StepSettings.from_env({})
    with pytest.raises(SettingsError, match="STREAMOPS_STEP_RETRIES must be an integer"):
        StepSettings.from_env({"STREAMOPS_STEP_FUNCTION": "f", "STREAMOPS_STEP_RETRIES": "many"})


def test_gateway_settings(tmp_path):
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    gw = GatewaySettings.from_env({"STREAMOPS_GATEWAY_URL": "https://gw:8080/", "STREAMOPS_GATEWAY_USERNAME": "admin",
                                   "STREAMOPS_GATEWAY_PASSWORD_FILE": str(secret)})
    assert (gw.url, gw.password, gw.verify) == ("https://gw:8080", "s3cret", True)
    assert "s3cret" not in repr(gw)
    with pytest.raises(SettingsError, match="http"):
        GatewaySettings.from_env({"STREAMOPS_GATEWAY_URL": "gw:8080"})
    with pytest.raises(SettingsError, match="without a password"):
        GatewaySettings.from_env({"STREAMOPS_GATEWAY_URL": "http://gw", "STREAMOPS_GATEWAY_USERNAME": "admin"})
    with pytest.raises(SettingsError, match="cannot read"):
        GatewaySettings.from_env({"STREAMOPS_GATEWAY_URL": "http://gw", "STREAMOPS_GATEWAY_PASSWORD_FILE": str(tmp_path / "none")})
    with pytest.raises(SettingsError, match="true or false"):
        GatewaySettings.from_env({"STREAMOPS_GATEWAY_URL": "http://gw", "STREAMOPS_GATEWAY_TLS_VERIFY": "perhaps"})


def test_scaler_wants():
    step = ScaledStep("f", ["in"], "g", target_lag=100, min_replicas=1, max_replicas=4, idle_seconds=10)
    assert step.wanted(1, 0) == (1, "lag")
    assert step.wanted(250, 0) == (3, "lag")
    assert step.wanted(10 ** 6, 0) == (4, "lag")
    assert step.wanted(0, 9.9) == (1, "min")
    assert step.wanted(0, 10) == (0, "idle")
    never = ScaledStep("f", ["in"], "g", min_replicas=0, idle_seconds=0)
    assert never.wanted(0, 3600) == (1, "min")
    two = ScaledStep("f", ["in"], "g", target_lag=1000, min_replicas=2, max_replicas=4)
    assert two.wanted(5, 0) == (2, "lag")


def test_scaler_settings():
    base = {"KAFKA_BOOTSTRAP_SERVERS": "k:9092"}
    steps = [{"function": "a", "input_topics": ["x"], "group": "g1", "target_lag": 50, "max_replicas": 3, "idle_seconds": 5},
             {"function": "b", "input_topic": "y,z", "group": "g2"}]
    s = ScalerSettings.from_env(dict(base, STREAMOPS_SCALER_STEPS=json.dumps(steps)))
    assert [(x.function, x.input_topics, x.target_lag, x.min_replicas, x.max_replicas, x.idle_seconds) for x in s.steps] == \
        [("a", ["x"], 50, 1, 3, 5.0), ("b", ["y", "z"], 100, 1, 5, 30.0)]
    one = ScalerSettings.from_env(dict(base, STREAMOPS_SCALER_FUNCTION="f", STREAMOPS_SCALER_INPUT_TOPIC="t", STREAMOPS_SCALER_GROUP="g",
                                       STREAMOPS_SCALER_MAX="2"))
    assert (one.steps[0].max_replicas, one.interval_ms, one.down_window_s) == (2, 1000, 10.0)
    for bad, match in [({}, "nothing to scale"), ({"STREAMOPS_SCALER_STEPS": "[{"}, "not JSON"),
                       ({"STREAMOPS_SCALER_STEPS": '[{"function": "f", "group": "g"}]'}, "input topic"),
                       ({"STREAMOPS_SCALER_STEPS": '[{"function": "f", "group": "g", "input_topic": "t", "colour": 1}]'}, "unknown keys"),
                       ({"STREAMOPS_SCALER_STEPS": '[{"function": "f", "group": "g", "input_topic": "t", "min_replicas": 3, '
                                                   '"max_replicas": 2}]'}, "min_replicas <= max_replicas")]:
        with pytest.raises(SettingsError, match=match):
            ScalerSettings.from_env(dict(base, **bad))


# -- the helper contract the step runner rests on ----------------------------------------------------

def run_library(helper, until, timeout=60):
    """helper.run() in a thread until until() holds; its exit code and its events."""
    result = []
    thread = threading.Thread(target=lambda: result.append(helper.run()), daemon=True)
    thread.start()
    try:
        wait_until("the helper to finish its work", lambda: until() or not thread.is_alive(), timeout, step=0.1)
    finally:
        helper.stop()
        thread.join(15)
    events = [json.loads(line) for line in helper.events.stream.getvalue().splitlines()]
    return (result[0] if result else None), events


def read_with_headers(lab, topic):
    consumer = Consumer({"bootstrap.servers": lab.servers, "group.id": "reader-%s" % uuid.uuid4().hex[:6], "enable.auto.commit": False,
                         "isolation.level": "read_committed", "enable.partition.eof": True})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    records, at_end, deadline = [], set(), time.monotonic() + 30
    try:
        while len(at_end) < PARTITIONS and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                continue
            records.append((msg.key().decode() if msg.key() else None, msg.value().decode(), dict(msg.headers() or [])))
    finally:
        consumer.close()
    assert len(at_end) == PARTITIONS, "%s not read to the end" % topic
    return records


def settings_for(lab, names, tmp_path, **extra):
    return Settings(bootstrap_servers=lab.servers, group=names["group"], input_topics=[names["input"]], output_topic=names["output"],
                    mode="exactly-once", instance="lib-%s" % uuid.uuid4().hex[:4], ready_file=str(tmp_path / "ready"), **extra)


def test_outputs_to_another_topic_with_headers_commit_with_the_offsets(lab, names, tmp_path):
    """Output(topic=...) goes to that topic with its headers, in the same transaction; (key, value) pairs still work."""
    side = names["output"] + "-side"
    lab.create_topics(side)
    lab.produce_sequence(names["input"], N)

    def process(msg):
        if int(msg.value()) % 10 == 0:
            return [Output(msg.key(), msg.value(), topic=side, headers=[("why", b"tens"), ("offset", str(msg.offset()).encode())])]
        return [(msg.key(), msg.value())]

    helper = ConsumerHelper(settings_for(lab, names, tmp_path), process, stream=io.StringIO())
    try:
        rc, events = run_library(helper, lambda: lab.committed(names["group"], names["input"]) >= N)
        main, tens = lab.read_all(names["output"]), read_with_headers(lab, side)
    finally:
        lab.cleanup([side], [])
    assert rc == 0, events
    assert_each_once(main + [(k, v) for k, v, h in tens], N)
    assert sorted(int(v) for k, v, h in tens) == list(range(0, N, 10))
    assert all(h["why"] == b"tens" and h["offset"].isdigit() for k, v, h in tens)


def waiting_hook(lab, names, seen, checkpoint):
    """Copies records; at record 101 it waits 3.5 s, longer than the 2 s transaction timeout of the tests below, with
    or without checkpoint() first."""
    def process(msg):
        if msg.value() == b"101" and "waited" not in seen:
            if checkpoint:
                seen["helper"].checkpoint()
            time.sleep(0.5)
            seen["committed_at_wait"] = lab.committed(names["group"], names["input"])
            time.sleep(3.0)
            seen["waited"] = True
        seen["done"] = seen.get("done", 0) + 1
        return [(msg.key(), msg.value())]
    return process


# One transaction for the whole input unless something commits it: whatever came before record 101 is in it.
ONE_TXN = dict(batch_records=100000, batch_ms=600000, kafka_conf={"transaction.timeout.ms": "2000"})


def test_checkpoint_inside_a_hook_keeps_no_transaction_open_while_it_waits(lab, names, tmp_path):
    """A hook that waits longer than the transaction timeout: with checkpoint() before the wait nothing is aborted and
    what came before the record in hand is committed while it waits; each record once."""
    lab.produce_sequence(names["input"], 200)
    seen = {}
    helper = ConsumerHelper(settings_for(lab, names, tmp_path, **ONE_TXN), waiting_hook(lab, names, seen, True), stream=io.StringIO())
    seen["helper"] = helper
    rc, events = run_library(helper, lambda: seen.get("done", 0) >= 200)
    assert rc == 0, events
    assert not [e for e in events if e["event"] in ("aborted", "fatal")], events
    assert seen["committed_at_wait"] > 0, "nothing was committed while the hook waited"
    assert_each_once(lab.read_all(names["output"]), 200)


def test_without_checkpoint_nothing_is_committed_while_the_hook_waits(lab, names, tmp_path):
    """The control of the test above: the same wait without checkpoint() holds the whole open transaction. With the
    2 s timeout the broker would abort it once its check notices (every 10 s by default), and fence the producer: the
    helper's run ends fatal or not by that check's timing, the hazard checkpoint() avoids. So here the timeout is long
    and the outcome certain."""
    lab.produce_sequence(names["input"], 200)
    seen = {}
    settings = settings_for(lab, names, tmp_path, batch_records=ONE_TXN["batch_records"], batch_ms=ONE_TXN["batch_ms"],
                            kafka_conf={"transaction.timeout.ms": "60000"})
    helper = ConsumerHelper(settings, waiting_hook(lab, names, seen, False), stream=io.StringIO())
    rc, events = run_library(helper, lambda: seen.get("done", 0) >= 200)
    assert rc == 0, events
    assert seen["committed_at_wait"] == 0, "committed while the hook waited, without checkpoint()"


def test_unprocessed_gives_the_record_back(lab, names, tmp_path):
    """A hook that raises Unprocessed: the helper commits what came before, stops cleanly, and the next run starts at that record."""
    lab.produce_sequence(names["input"], N)
    given_back = {}

    def process(msg):
        if msg.value() == b"300" and not given_back:
            given_back.update(partition=msg.partition(), offset=msg.offset())
            raise Unprocessed("asked to stop")
        return [(msg.key(), msg.value())]

    first = ConsumerHelper(settings_for(lab, names, tmp_path), process, stream=io.StringIO())
    rc, events = run_library(first, lambda: given_back and first.stopping, timeout=60)
    assert rc == 0, events
    unprocessed = [e for e in events if e["event"] == "unprocessed"]
    assert unprocessed and unprocessed[0]["offset"] == given_back["offset"], events
    consumer = Consumer({"bootstrap.servers": lab.servers, "group.id": names["group"]})
    try:
        committed = consumer.committed([TopicPartition(names["input"], given_back["partition"])], timeout=10)[0].offset
    finally:
        consumer.close()
    assert committed == given_back["offset"], "committed %d, the record given back is at %d" % (committed, given_back["offset"])
    second = ConsumerHelper(settings_for(lab, names, tmp_path), None, stream=io.StringIO())
    rc, events = run_library(second, lambda: lab.committed(names["group"], names["input"]) >= N)
    assert rc == 0
    assert_each_once(lab.read_all(names["output"]), N)


# -- against the lab's OpenFaaS gateway ---------------------------------------------------------------

def openfaas_env():
    env = {}
    for name in ("env", "openfaas.env"):
        path = REPO / ".lab" / name
        if path.exists():
            for line in path.read_text().splitlines():
                if "=" in line and not line.lstrip().startswith("#"):
                    key, value = line.split("=", 1)
                    env[key.strip()] = value.strip()
    env.update({k: v for k, v in os.environ.items() if k.startswith("OPENFAAS_")})
    return env if env.get("OPENFAAS_URL") and env.get("OPENFAAS_FN_IMAGE") else None


class LabGateway:
    """The tests' own calls to the gateway: deploy, scale, read and delete functions (plain HTTP, as documented)."""

    def __init__(self, env):
        self.url = env["OPENFAAS_URL"].rstrip("/")
        self.image = env["OPENFAAS_FN_IMAGE"]
        self.namespace = env.get("OPENFAAS_NAMESPACE") or "openfaas-fn"
        self.username, self.password = env.get("OPENFAAS_USERNAME", ""), env.get("OPENFAAS_PASSWORD", "")
        self.auth = "Basic " + base64.b64encode(("%s:%s" % (self.username, self.password)).encode()).decode()

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Authorization": self.auth, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = response.read()
        return json.loads(answer) if answer.strip().startswith(b"{") else answer

    def deploy(self, name, transform, constraints=None, method="POST"):
        self.call(method, "/system/functions", {"service": name, "image": self.image, "namespace": self.namespace,
                                                "envVars": {"FN_TRANSFORM": transform}, "constraints": constraints or []})
        if method == "POST":
            self.wait_available(name, lambda n: n >= 1, 120)

    def status(self, name):
        return self.call("GET", "/system/function/%s?namespace=%s" % (name, self.namespace))

    def scale(self, name, replicas):
        self.call("POST", "/system/scale-function/%s?namespace=%s" % (name, self.namespace),
                  {"serviceName": name, "replicas": replicas, "namespace": self.namespace})

    def wait_available(self, name, ok, timeout):
        return wait_until("function %s's available replicas" % name, lambda: ok(int(self.status(name).get("availableReplicas") or 0)),
                          timeout, step=0.2)

    def delete(self, name):
        try:
            self.call("DELETE", "/system/functions", {"functionName": name, "namespace": self.namespace})
        except urllib.error.URLError:
            pass

    def step_env(self, function, **extra):
        env = dict(STREAMOPS_STEP_FUNCTION=function, STREAMOPS_GATEWAY_URL=self.url, STREAMOPS_GATEWAY_USERNAME=self.username,
                   STREAMOPS_GATEWAY_PASSWORD=self.password, STREAMOPS_FUNCTION_NAMESPACE=self.namespace)
        env.update({k: str(v) for k, v in extra.items()})
        return env


@pytest.fixture(scope="module")
def gateway():
    env = openfaas_env()
    if not env:
        pytest.skip("the lab's OpenFaaS is not up (no OPENFAAS_URL / OPENFAAS_FN_IMAGE in .lab/openfaas.env): run tests/lab/up openfaas")
    return LabGateway(env)


@pytest.fixture
def function(gateway):
    """function(transform) deploys a fresh function of the lab image; all are deleted afterwards."""
    made = []

    def deploy(transform):
        name = "st-%s" % uuid.uuid4().hex[:8]
        made.append(name)
        gateway.deploy(name, transform)
        return name
    yield deploy
    for name in made:
        gateway.delete(name)


@pytest.fixture
def step(lab, names, tmp_path):
    """step(name, **env) starts `python -m streamops_consumer.step` on the test's topics."""
    from kafkalab import Instance
    started = []

    def start(name, **env):
        full = dict(KAFKA_BOOTSTRAP_SERVERS=lab.servers, STREAMOPS_GROUP=names["group"], STREAMOPS_INPUT_TOPIC=names["input"],
                    STREAMOPS_OUTPUT_TOPIC=names["output"])
        full.update({key: str(value) for key, value in env.items()})
        started.append(Instance(name, full, tmp_path, module="streamops_consumer.step"))
        return started[-1]
    yield start
    for instance in started:
        instance.close()


def produce_words(lab, topic, count):
    """Values "rec-<i>-x" (keys "<i>"): a transform shows in them."""
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": lab.servers, "acks": "all", "linger.ms": 20})
    for i in range(count):
        producer.produce(topic, key=str(i), value="rec-%d-x" % i, partition=i % PARTITIONS)
        producer.poll(0)
    assert producer.flush(30) == 0


def assert_transformed_once(records, count, transform):
    wanted = collections.Counter(transform("rec-%d-x" % i) for i in range(count))
    got = collections.Counter(v for k, v in records)
    lost, extra = wanted - got, got - wanted
    assert not lost and not extra, "%d missing (%s), %d unexpected or repeated (%s)" % (
        sum(lost.values()), list(lost)[:5], sum(extra.values()), list(extra)[:5])
    assert all(transform("rec-%s-x" % k) == v for k, v in records), "a key no longer matches its value"


def test_step_runner_each_record_once_across_a_sigkill(lab, names, gateway, function, step):
    """upper through the real gateway; SIGKILL mid-stream, restart with the same transactional id: each record once, upper-cased.
    The function sleeps 10 ms a record (at most 800 records/s over 8 calls at once), so the kill lands mid-stream
    however fast the machine runs: without it the runner once did all 2000 between the wait and the kill."""
    count = 2000
    produce_words(lab, names["input"], count)
    fn = function("sleep-ms:10,upper")
    env = gateway.step_env(fn, STREAMOPS_GROUP_INSTANCE_ID="step-0")
    first = step("step-0", **env)
    lab.wait_committed(names["group"], names["input"], count // 5, timeout=90)
    first.signal(signal.SIGKILL)
    assert first.wait_exit(10) == -signal.SIGKILL
    assert lab.committed(names["group"], names["input"]) < count, "finished before the kill"
    second = step("step-0", **env)
    lab.wait_committed(names["group"], names["input"], count, timeout=120)
    second.signal(signal.SIGTERM)
    assert second.wait_exit(10) == 0, second.stderr()
    assert_transformed_once(lab.read_all(names["output"]), count, str.upper)
    assert first.find("step") and second.find("step")


@pytest.mark.parametrize("concurrency", [1, 8])
def test_step_runner_transforms_and_dead_letters(lab, names, gateway, function, step, concurrency):
    """fail-on:7 fails every record with a 7: after its retries each goes to the dead-letter topic with the error, the
    function and the source position in headers; the others pass; nothing lost, nothing twice."""
    count = 300
    dlq = names["output"] + "-dlq"
    lab.create_topics(dlq)
    try:
        lab.produce_sequence(names["input"], count)
        fn = function("fail-on:7")
        runner = step("step-d", **gateway.step_env(fn, STREAMOPS_DLQ_TOPIC=dlq, STREAMOPS_STEP_RETRIES=2, STREAMOPS_STEP_BACKOFF_MS=5,
                                                   STREAMOPS_STEP_CONCURRENCY=concurrency))
        lab.wait_committed(names["group"], names["input"], count, timeout=120)
        runner.signal(signal.SIGTERM)
        assert runner.wait_exit(10) == 0, runner.stderr()
        good, dead = lab.read_all(names["output"]), read_with_headers(lab, dlq)
    finally:
        lab.cleanup([dlq], [])
    assert_each_once(good + [(k, v) for k, v, h in dead], count)
    assert sorted(int(v) for k, v, h in dead) == [i for i in range(count) if "7" in str(i)]
    for key, value, headers in dead:
        assert headers["streamops.function"] == fn.encode()
        assert headers["streamops.source.topic"] == names["input"].encode()
        assert headers["streamops.attempts"] == b"3"
        assert headers["streamops.error"] and headers["streamops.source.offset"].isdigit()
    failed = runner.find("invoke-failed")
    assert len(failed) == 2 * len(dead), "two retries per dead letter expected, %d failures for %d" % (len(failed), len(dead))
    assert runner.find("step")[0]["concurrency"] == concurrency


def reverse_with_no_replica(gateway, function):
    """The lab function reverse at 0 replicas, pinned to a region without nodes: no replica can start until the
    constraint is lifted (deploy it again without constraints)."""
    fn = function("reverse")
    gateway.scale(fn, 0)
    gateway.wait_available(fn, lambda n: n == 0, 60)
    gateway.deploy(fn, "reverse", constraints=["topology.kubernetes.io/region=nowhere"], method="PUT")
    return fn


def assert_reversed_once(records, count):
    """Each of the sequence numbers 0..count-1, reversed by the function, exactly once."""
    assert sorted(int(v[::-1]) for k, v in records) == list(range(count))
    assert collections.Counter(v for k, v in records).most_common(1)[0][1] == 1


def test_step_runner_waits_for_a_replica_without_burning_retries(lab, names, gateway, function, step):
    """No replica can start (the function is pinned to a region without nodes): the gateway's own scale from zero
    cannot help, the invocation times out, and the runner waits, spending no retry and dead-lettering nothing, until
    a replica is available (the constraint lifted); then it does every record."""
    count = 100
    fn = reverse_with_no_replica(gateway, function)
    lab.produce_sequence(names["input"], count)
    runner = step("step-w", **gateway.step_env(fn, STREAMOPS_DLQ_TOPIC=names["output"] + "-none", STREAMOPS_STEP_RETRIES=1,
                                               STREAMOPS_STEP_TIMEOUT_MS=2000))
    waiting = runner.wait_event("waiting", timeout=60)
    assert waiting["why"] == "no-replica", waiting
    time.sleep(3.0)
    assert lab.committed(names["group"], names["input"]) == 0
    lifted_wall = time.time()
    gateway.deploy(fn, "reverse", method="PUT")
    available = runner.wait_event("replica-available", timeout=120)
    lab.wait_committed(names["group"], names["input"], count, timeout=60)
    runner.signal(signal.SIGTERM)
    assert runner.wait_exit(10) == 0, runner.stderr()
    assert available["waited_s"] >= 3.0
    assert not runner.find("dead-lettered") and not runner.find("invoke-failed"), runner.events
    assert_reversed_once(lab.read_all(names["output"]), count)
    print("\nthe runner waited %.1fs for a replica (available %.1fs after the constraint was lifted), no retry spent"
          % (available["waited_s"], available["ts"] - lifted_wall))


def test_a_long_wait_keeps_the_runner_in_its_group(lab, names, gateway, function, step):
    """A wait for a replica longer than the consumer's max.poll.interval.ms (6 s here, 5 minutes by default): the runner
    gives its records back every STREAMOPS_STEP_WAIT_HOLD_MS (Later) and polls, so it is never dropped from the group
    (librdkafka would report the poll interval exceeded); once a replica is there, every record once."""
    count = 50
    fn = reverse_with_no_replica(gateway, function)
    lab.produce_sequence(names["input"], count)
    runner = step("step-hold", **gateway.step_env(fn, STREAMOPS_STEP_RETRIES=5, STREAMOPS_STEP_TIMEOUT_MS=1000, STREAMOPS_STEP_WAIT_HOLD_MS=1500,
                                                  KAFKA_CONF_MAX_POLL_INTERVAL_MS=6000, KAFKA_CONF_SESSION_TIMEOUT_MS=6000))
    runner.wait_event("waiting", timeout=60)
    time.sleep(14.0)  # more than twice the poll interval
    assert lab.committed(names["group"], names["input"]) == 0
    gateway.deploy(fn, "reverse", method="PUT")
    lab.wait_committed(names["group"], names["input"], count, timeout=120)
    runner.signal(signal.SIGTERM)
    assert runner.wait_exit(10) == 0, runner.stderr()
    later = runner.find("later")
    assert len(later) >= 3 and all(e["why"].startswith("waited") for e in later), later
    dropped = [e for e in runner.find("consumer-error") + runner.find("lost") if "poll" in json.dumps(e).lower() or e["event"] == "lost"]
    assert not dropped, dropped
    assert not runner.find("dead-lettered"), runner.events
    assert_reversed_once(lab.read_all(names["output"]), count)


def test_scaler_reads_the_lag_as_the_runners_see_it(lab, names, tmp_path):
    """The scaler's lag: end offsets (read_committed) minus the group's committed offsets, the start of the log where the
    group has none; after an exactly-once stage has read everything (transaction markers included) it is 0."""
    from confluent_kafka.admin import AdminClient
    from streamops_consumer.scaler import LagReader
    reader = LagReader(AdminClient({"bootstrap.servers": lab.servers}))
    step = ScaledStep("f", [names["input"]], names["group"])

    def settled():  # a new topic's leaders may not be known to every broker yet: the scaler, too, just tries again
        try:
            return reader.measure(step)
        except KafkaException:
            return None
    assert wait_until("the new topic's offsets", settled, 30)[0] == 0
    lab.produce_sequence(names["input"], 400)
    lag, ends = reader.measure(step)
    assert lag == 400 and sum(ends.values()) == 400
    # An exactly-once copy into the output, read by a second step's group: markers take offsets, the lag still ends at 0.
    helper = ConsumerHelper(settings_for(lab, names, tmp_path), None, stream=io.StringIO())
    rc, events = run_library(helper, lambda: lab.committed(names["group"], names["input"]) >= 400)
    assert rc == 0 and reader.measure(step)[0] == 0
    second = ScaledStep("g", [names["output"]], names["group"] + "-next")
    lag, ends = reader.measure(second)
    assert lag >= 400 and sum(ends.values()) > 400, (lag, ends)  # commit markers are offsets too
    settings = Settings(bootstrap_servers=lab.servers, group=second.group, input_topics=[names["output"]], mode="exactly-once",
                        instance="next", ready_file=str(tmp_path / "ready2"), output_topic=None)
    done = []
    helper = ConsumerHelper(settings, lambda msg: done.append(1) and None, stream=io.StringIO())
    # While it runs (as a runner does, idle after the last record), the markers past its last record get committed too.
    rc, events = run_library(helper, lambda: len(done) >= 400 and reader.measure(second)[0] == 0, timeout=30)
    assert rc == 0 and len(done) == 400
    assert reader.measure(second)[0] == 0
    assert [e for e in events if e["event"] == "committed" and e["reason"] == "markers"], events
