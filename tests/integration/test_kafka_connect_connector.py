"""kafka_connect_connector against the lab's real Kafka Connect worker and brokers.

Observed independently of the module: the worker's REST API read with plain urllib, the records
in Kafka read with confluent-kafka, the files the sink writes read from disk.
"""

import base64
import concurrent.futures
import glob
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import uuid
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"
SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"
STRINGS = {"key.converter": "org.apache.kafka.connect.storage.StringConverter",
           "value.converter": "org.apache.kafka.connect.storage.StringConverter"}


class Rest:
    """The worker's REST API, read and cleaned up without the module."""

    def __init__(self, url):
        self.url = url.rstrip("/")

    def get(self, path):
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise

    def config(self, name):
        return self.get("/connectors/%s/config" % name)

    def status(self, name):
        return self.get("/connectors/%s/status" % name)

    def delete(self, name):
        request = urllib.request.Request(self.url + "/connectors/%s" % name, method="DELETE")
        try:
            urllib.request.urlopen(request, timeout=30).close()
        except urllib.error.HTTPError as e:
            if e.code != 404:
                raise

    def wait_status(self, name, connector_state, task_states, timeout=30):
        """Until the status shows connector_state and exactly task_states (a list); returns the status."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(name)
            got = status and (status["connector"]["state"], [t["state"] for t in status["tasks"]])
            if got == (connector_state, task_states):
                return status
            if time.monotonic() > deadline:
                raise AssertionError("connector %s: status %r, expected %r" % (name, got, (connector_state, task_states)))
            time.sleep(0.3)


@pytest.fixture(scope="module")
def connect(lab):
    if not lab.get("KAFKA_CONNECT_URL"):
        pytest.skip("the lab's Kafka Connect worker is not up (no KAFKA_CONNECT_URL in .lab/env): run tests/lab/up kafka")
    return dict(url=lab["KAFKA_CONNECT_URL"])


@pytest.fixture(scope="module")
def rest(connect):
    return Rest(connect["url"])


@pytest.fixture
def admin(kafka):
    return AdminClient({"bootstrap.servers": ",".join(kafka["bootstrap_servers"])})


@pytest.fixture
def topics(admin, unique):
    """Makes one-partition topics for a test and deletes them afterwards."""
    made = []

    def make(suffix="t"):
        name = "%s-%s" % (unique, suffix)
        admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(timeout=30)
        made.append(name)
        return name

    yield make
    if made:
        for future in admin.delete_topics(made).values():
            future.result(timeout=30)


@pytest.fixture
def connectors(connect, module, rest, unique):
    """A runner of kafka_connect_connector per connector name; every connector it names is deleted afterwards."""
    names = []

    def make(suffix="c"):
        name = "%s-%s" % (unique, suffix)
        names.append(name)

        def call(check=False, diff=False, **args):
            return module("kafka_connect_connector", dict(connect, name=name, **args), check=check, diff=diff)

        call.name = name
        return call

    yield make
    for name in names:
        rest.delete(name)


def source_config(path, topic, **extra):
    return dict({"connector.class": "FileStreamSource", "file": str(path), "topic": topic}, **extra)


def read_values(kafka, topic, count, timeout=60):
    """The first `count` record values of a one-partition topic (fewer if they do not arrive in time)."""
    consumer = Consumer({"bootstrap.servers": ",".join(kafka["bootstrap_servers"]), "group.id": "it-reader-%s" % topic,
                         "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        values, deadline = [], time.monotonic() + timeout
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                values.append(message.value())
        return values
    finally:
        consumer.close()


def end_offset(kafka, topic):
    consumer = Consumer({"bootstrap.servers": ",".join(kafka["bootstrap_servers"]), "group.id": "it-offsets"})
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    finally:
        consumer.close()


def json_payloads(values):
    """The worker's JsonConverter writes {"schema": ..., "payload": line}."""
    return [json.loads(v)["payload"] for v in values]


# ---------------------------------------------------------------------------------------------


def test_source_streams_a_file_into_a_topic_and_a_rerun_changes_nothing(connectors, topics, rest, kafka, tmp_path):
    topic, source = topics(), connectors("src")
    lines = ["line %d" % i for i in range(5)]
    (tmp_path / "in.txt").write_text("".join(line + "\n" for line in lines))
    config = source_config(tmp_path / "in.txt", topic, **{"tasks.max": 1})

    created = source(diff=True, config=config)
    assert created["rc"] == 0 and created["changed"], created
    assert created["actions"] == ["validate config", "create connector %s" % source.name]
    assert created["connector"]["state"] == "RUNNING" and [t["state"] for t in created["connector"]["tasks"]] == ["RUNNING"]
    assert created["connector"]["type"] == "source"
    assert created["diff"]["before"] == {} and created["diff"]["after"]["config"]["file"] == str(tmp_path / "in.txt")
    assert rest.config(source.name) == {"connector.class": "FileStreamSource", "file": str(tmp_path / "in.txt"), "topic": topic,
                                        "tasks.max": "1", "name": source.name}
    rest.wait_status(source.name, "RUNNING", ["RUNNING"])
    assert json_payloads(read_values(kafka, topic, 5)) == lines

    again = source(diff=True, config=config)
    assert again["rc"] == 0 and not again["changed"] and again["actions"] == ["validate config"]
    assert again["diff"]["before"] == again["diff"]["after"]
    assert not source(check=True, config=config)["changed"]


def test_effective_config_comparison_aliases_strings_and_defaults(connectors, topics, rest, tmp_path):
    topic, source = topics(), connectors("src")
    source(config=source_config(tmp_path / "in.txt", topic))  # tasks.max left to its default (1)
    stored = rest.config(source.name)

    # The full class for the alias, tasks.max as a number equal to the default, the name key given explicitly.
    explicit = {"connector.class": SOURCE, "tasks.max": 1, "name": source.name}
    same = source(diff=True, config=source_config(tmp_path / "in.txt", topic, **explicit))
    assert same["rc"] == 0 and not same["changed"], same
    assert rest.config(source.name) == stored

    mismatched = source(config=source_config(tmp_path / "in.txt", topic, name="someone-else"))
    assert mismatched["failed"] and "differs from the connector's name" in mismatched["msg"]


def test_a_changed_key_is_updated_with_a_diff(connectors, topics, rest, tmp_path):
    topic, source = topics(), connectors("src")
    source(config=source_config(tmp_path / "a.txt", topic, **{"batch.size": 100}))

    changed = source(diff=True, config=source_config(tmp_path / "b.txt", topic, **{"batch.size": 100}))
    assert changed["rc"] == 0 and changed["changed"], changed
    assert changed["actions"] == ["validate config", "update config: change file"]
    before, after = changed["diff"]["before"]["config"], changed["diff"]["after"]["config"]
    assert before["file"] == str(tmp_path / "a.txt") and after["file"] == str(tmp_path / "b.txt")
    assert {k: v for k, v in before.items() if k != "file"} == {k: v for k, v in after.items() if k != "file"}
    assert rest.config(source.name)["file"] == str(tmp_path / "b.txt")

    removed = source(diff=True, config=source_config(tmp_path / "b.txt", topic, **{"batch.size": 5}))
    assert removed["changed"] and removed["actions"][-1] == "update config: change batch.size"
    dropped = source(diff=True, config=source_config(tmp_path / "b.txt", topic))
    assert dropped["changed"] and dropped["actions"][-1] == "update config: remove batch.size"
    assert "batch.size" not in rest.config(source.name)
    assert not source(config=source_config(tmp_path / "b.txt", topic))["changed"]


def test_check_mode_validates_and_predicts_but_changes_nothing(connectors, topics, rest, tmp_path):
    topic, source = topics(), connectors("src")
    predicted = source(check=True, diff=True, config=source_config(tmp_path / "in.txt", topic))
    assert predicted["rc"] == 0 and predicted["changed"]
    assert predicted["actions"] == ["validate config", "create connector %s" % source.name]
    assert predicted["connector"]["state"] == "RUNNING" and predicted["diff"]["before"] == {}
    assert rest.config(source.name) is None

    invalid = source(check=True, config=source_config(tmp_path / "in.txt", topic, **{"tasks.max": 0}))
    assert invalid["failed"] and "tasks.max" in invalid["msg"]  # validation happens in check mode too

    source(config=source_config(tmp_path / "in.txt", topic))
    stored = rest.config(source.name)
    update = source(check=True, diff=True, config=source_config(tmp_path / "other.txt", topic))
    assert update["changed"] and update["diff"]["after"]["config"]["file"] == str(tmp_path / "other.txt")
    pause = source(check=True, state="paused")
    assert pause["changed"] and pause["actions"] == ["pause connector %s" % source.name] and pause["connector"]["state"] == "PAUSED"
    gone = source(check=True, state="absent")
    assert gone["changed"] and gone["actions"] == ["delete connector %s" % source.name]
    assert rest.config(source.name) == stored
    rest.wait_status(source.name, "RUNNING", ["RUNNING"])


def test_pause_stop_and_resume_are_reflected_in_the_status(connectors, topics, rest, tmp_path):
    topic, source = topics(), connectors("src")
    (tmp_path / "in.txt").write_text("x\n")
    source(config=source_config(tmp_path / "in.txt", topic))

    for state, connector_state, task_states, request in (("paused", "PAUSED", ["PAUSED"], "pause"),
                                                         ("stopped", "STOPPED", [], "stop"),
                                                         ("running", "RUNNING", ["RUNNING"], "resume"),
                                                         ("stopped", "STOPPED", [], "stop"),
                                                         ("paused", "PAUSED", [], "pause"),  # paused from stopped: no task
                                                         ("running", "RUNNING", ["RUNNING"], "resume")):
        moved = source(diff=True, state=state)
        assert moved["rc"] == 0 and moved["changed"] and moved["actions"] == ["%s connector %s" % (request, source.name)], moved
        assert moved["connector"]["state"] == connector_state
        assert [t["state"] for t in moved["connector"]["tasks"]] == task_states  # wait: the tasks followed
        assert moved["diff"]["after"]["state"] == connector_state
        rest.wait_status(source.name, connector_state, task_states, timeout=5)
        assert not source(state=state)["changed"]

    source(state="paused")
    kept = source(config=source_config(tmp_path / "in.txt", topic))  # present leaves the run state alone
    assert not kept["changed"] and kept["connector"]["state"] == "PAUSED"
    updated = source(config=source_config(tmp_path / "in2.txt", topic))
    assert updated["changed"] and updated["connector"]["state"] == "PAUSED"
    rest.wait_status(source.name, "PAUSED", ["PAUSED"], timeout=5)


def test_a_connector_created_stopped_never_runs_until_resumed(connectors, topics, rest, kafka, tmp_path):
    topic, source = topics(), connectors("src")
    (tmp_path / "in.txt").write_text("a\nb\n")
    created = source(state="stopped", config=source_config(tmp_path / "in.txt", topic))
    assert created["changed"] and created["actions"][-1] == "create connector %s STOPPED" % source.name
    rest.wait_status(source.name, "STOPPED", [], timeout=5)
    time.sleep(3)  # a source that had started would have sent its two lines by now (offsets flush every 2 s)
    assert end_offset(kafka, topic) == 0

    resumed = source(state="running", config=source_config(tmp_path / "in.txt", topic))
    assert resumed["changed"] and resumed["actions"] == ["validate config", "resume connector %s" % source.name]
    assert json_payloads(read_values(kafka, topic, 2)) == ["a", "b"]


def test_a_secret_is_compared_but_never_shown(connectors, topics, rest, tmp_path):
    topic, source = topics(), connectors("src")
    key = "producer.override.sasl.jaas.config"  # declared PASSWORD by Connect; unused on a PLAINTEXT cluster
    first, second = "pw-one-%s" % topic, "pw-two-%s" % topic

    created = source(diff=True, config=source_config(tmp_path / "in.txt", topic, **{key: first}))
    assert created["changed"] and created["connector"]["config"][key] == "[secret]"
    assert first not in json.dumps(created)
    assert rest.config(source.name)[key] == first

    assert not source(config=source_config(tmp_path / "in.txt", topic, **{key: first}))["changed"]

    rotated = source(diff=True, config=source_config(tmp_path / "in.txt", topic, **{key: second}))
    assert rotated["changed"] and rotated["actions"][-1] == "update config: change %s" % key
    assert rotated["diff"]["before"]["config"][key] == "[secret]" and rotated["diff"]["after"]["config"][key] == "[secret, changed]"
    assert first not in json.dumps(rotated) and second not in json.dumps(rotated)
    assert rest.config(source.name)[key] == second
    assert rotated["unknown_keys"] == []

    forced = source(config=source_config(tmp_path / "in.txt", topic, **{key: second}), force_update=True)
    assert forced["changed"] and forced["actions"][-1] == "update config: force_update, unchanged values sent again"


def test_invalid_config_fails_with_every_message_of_connect_and_creates_nothing(connectors, rest, tmp_path):
    source = connectors("src")
    failed = source(config={"connector.class": "FileStreamSource", "file": str(tmp_path / "in.txt"), "tasks.max": "abc"})
    assert failed["failed"] and failed["rc"] != 0
    msg = failed["msg"]
    assert msg.startswith("Kafka Connect rejected the configuration of connector %s, nothing was changed: " % source.name)
    assert "tasks.max (Invalid value abc for configuration tasks.max: Not a number of type INT" in msg
    assert 'topic (Missing required configuration "topic" which has no default value)' in msg
    assert "\n" not in msg and "Traceback" not in json.dumps(failed)
    assert set(failed["validation_errors"]) == {"tasks.max", "topic"}
    assert rest.config(source.name) is None


def test_unknown_class_fails_listing_the_installed_plugins(connectors, rest):
    source = connectors("src")
    failed = source(config={"connector.class": "com.example.NoSuchConnector", "topic": "x"})
    assert failed["failed"]
    assert failed["msg"] == ("Kafka Connect at %s has no connector plugin com.example.NoSuchConnector; installed: %s, %s."
                             % (rest.url, SINK, SOURCE))
    assert rest.config(source.name) is None


def test_an_unreachable_worker_fails_in_one_sentence_within_seconds(module):
    started = time.monotonic()
    failed = module("kafka_connect_connector", dict(url="http://127.0.0.1:9", name="any", state="paused"))
    elapsed = time.monotonic() - started
    assert failed["failed"] and elapsed < 5, (elapsed, failed)
    assert failed["msg"] == ("Cannot reach Kafka Connect at http://127.0.0.1:9: connection refused (is the worker running, "
                             "and is the port right?).")
    assert "Traceback" not in json.dumps(failed)
    missing = module("kafka_connect_connector", dict(url="http://no-such-host.invalid:8083", name="any", state="absent"))
    assert missing["failed"] and missing["msg"].startswith("Cannot reach Kafka Connect at http://no-such-host.invalid:8083: "
                                                           "its host name does not resolve")


def test_a_url_that_is_not_the_connect_api_is_not_taken_for_an_absent_connector(connect, kafka, module):
    wrong_prefix = module("kafka_connect_connector", dict(url=connect["url"] + "/not-connect", name="any", state="absent"))
    assert wrong_prefix["failed"] and wrong_prefix["msg"] == (
        "Kafka Connect at %s/not-connect answered HTTP 404 to GET /connectors/any/config (HTTP 404 Not Found), not with Connect's "
        "'not found' of a connector; is url the Connect REST listener?" % connect["url"])
    broker = "http://" + kafka["bootstrap_servers"][0]
    not_http = module("kafka_connect_connector", dict(url=broker, name="any", state="absent", timeout=5))
    assert not_http["failed"] and not_http["msg"] == ("Cannot reach Kafka Connect at %s: the server closed the connection without an "
                                                      "answer (is url the Connect REST listener?)." % broker)


def test_a_missing_connector_needs_a_config(connectors):
    source = connectors("src")
    failed = source(state="running")
    assert failed["failed"] and failed["msg"] == "Connector %s does not exist and no config was given to create it." % source.name


def test_absent_deletes_and_a_second_absent_changes_nothing(connectors, topics, rest, tmp_path):
    topic, source = topics(), connectors("src")
    source(config=source_config(tmp_path / "in.txt", topic))
    assert rest.config(source.name) is not None

    deleted = source(diff=True, state="absent")
    assert deleted["changed"] and deleted["actions"] == ["delete connector %s" % source.name]
    assert deleted["diff"]["after"] == {} and deleted["diff"]["before"]["config"]["topic"] == topic
    assert rest.config(source.name) is None and source.name not in rest.get("/connectors")
    again = source(state="absent")
    assert again["rc"] == 0 and not again["changed"] and again["actions"] == []


def test_sink_writes_a_topic_to_a_file(connectors, topics, kafka, tmp_path):
    topic, sink = topics(), connectors("sink")
    out = tmp_path / "out.txt"
    producer = Producer({"bootstrap.servers": ",".join(kafka["bootstrap_servers"])})
    values = ["record-%d" % i for i in range(20)]
    for value in values:
        producer.produce(topic, value=value.encode())
    assert producer.flush(30) == 0

    created = sink(config=dict(STRINGS, **{"connector.class": "FileStreamSink", "topics": [topic], "file": str(out)}))
    assert created["rc"] == 0 and created["changed"] and created["connector"]["type"] == "sink", created
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or len(out.read_text().splitlines()) < len(values)):
        time.sleep(0.3)
    assert out.read_text().splitlines() == values
    assert not sink(config=dict(STRINGS, **{"connector.class": SINK, "topics": topic, "file": str(out)}))["changed"]


def test_failed_tasks_fail_the_wait_and_are_restarted_on_request(connectors, topics, rest, tmp_path):
    topic, sink = topics(), connectors("sink")
    out = tmp_path / "later" / "out.txt"  # the folder does not exist yet: the task fails at start
    config = dict(STRINGS, **{"connector.class": "FileStreamSink", "topics": topic, "file": str(out)})

    failed = sink(config=config, wait_timeout=30)
    assert failed["failed"]
    assert failed["msg"].startswith("Connector %s did not reach RUNNING: task 0 FAILED (org.apache.kafka.connect.errors."
                                    "ConnectException: Couldn't find or create file '%s'" % (sink.name, out))
    assert "\n" not in failed["msg"]
    rest.wait_status(sink.name, "RUNNING", ["FAILED"])

    untouched = sink(config=config, wait=False)
    assert not untouched["changed"] and untouched["connector"]["tasks"][0]["state"] == "FAILED"
    out.parent.mkdir()
    predicted = sink(check=True, config=config, restart_failed_tasks=True)
    assert predicted["changed"] and predicted["actions"] == ["validate config", "restart failed task 0"]
    rest.wait_status(sink.name, "RUNNING", ["FAILED"])

    restarted = sink(config=config, restart_failed_tasks=True)
    assert restarted["rc"] == 0 and restarted["changed"] and restarted["actions"] == ["validate config", "restart failed task 0"]
    assert [t["state"] for t in restarted["connector"]["tasks"]] == ["RUNNING"]
    rest.wait_status(sink.name, "RUNNING", ["RUNNING"])
    assert not sink(config=config, restart_failed_tasks=True)["changed"]


def test_parallel_creations_ride_out_the_rebalances(connectors, topics, rest, tmp_path):
    """Every creation makes the worker group rebalance; requests landing in one get 409 and are retried."""
    topic = topics()
    calls = [connectors("p%d" % i) for i in range(4)]
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        results = list(pool.map(lambda call: call(config=source_config(tmp_path / ("%s.txt" % call.name), topic)), calls))
    for call, result in zip(calls, results):
        assert result["rc"] == 0 and result["changed"], result
        assert rest.status(call.name)["connector"]["state"] == "RUNNING"
    print("409 retries over %d parallel creations: %d" % (len(calls), sum(r["retries"] for r in results)))


def test_module_defaults_of_the_connect_group_in_a_playbook(connect, rest, topics, unique, tmp_path):
    topic, name = topics(), unique + "-play"
    playbook = tmp_path / "play.yml"
    playbook.write_text("""
- hosts: localhost
  gather_facts: false
  module_defaults:
    group/streamops.day2.connect:
      url: %(url)s
      timeout: 10
  tasks:
    - name: Create
      streamops.day2.kafka_connect_connector:
        name: %(name)s
        config: {connector.class: FileStreamSource, file: %(file)s, topic: %(topic)s}
      register: created
    - name: Again
      streamops.day2.kafka_connect_connector:
        name: %(name)s
        config: {connector.class: FileStreamSource, file: %(file)s, topic: %(topic)s}
      register: again
    - name: Check
      ansible.builtin.assert:
        that: [created is changed, again is not changed, again.connector.state == 'RUNNING']
""" % dict(url=connect["url"], name=name, file=tmp_path / "in.txt", topic=topic))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build" / "collections"), ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               KAFKA_CONNECT_URL="http://127.0.0.1:9", PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    try:
        run = subprocess.run(["ansible-playbook", str(playbook)], capture_output=True, text=True, env=env, timeout=300, check=False)
        assert run.returncode == 0, run.stdout + run.stderr
        assert rest.config(name)["topic"] == topic
    finally:
        rest.delete(name)


# ---------------------------------------------------------------------------------------------
# A Connect worker of our own with an HTTPS listener (a self-signed certificate made with the JDK's keytool) and
# Connect's basic-auth REST extension: the lab's worker has neither.

AUTH_USER, AUTH_PASSWORD = "day2-operator", "it-%s" % uuid.uuid4().hex[:12]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SecuredWorker:
    """One distributed Connect worker (its own group and internal topics) started by the tests and ended by its pid."""

    def __init__(self, lab, kafka, folder):
        libs = os.path.dirname(lab["KAFKA_CLASSPATH"])
        if not glob.glob(os.path.join(libs, "connect-basic-auth-extension-*.jar")):
            pytest.skip("connect-basic-auth-extension is not in %s: run tests/lab/kafka.sh fetch" % libs)
        self.folder, self.port, tag = folder, free_port(), uuid.uuid4().hex[:8]
        self.url = "https://127.0.0.1:%d" % self.port
        self.ca = folder / "ca.pem"
        keystore, store_password = folder / "worker.p12", uuid.uuid4().hex
        keytool = os.path.join(os.environ["JAVA_HOME"], "bin", "keytool") if os.environ.get("JAVA_HOME") else "keytool"
        subprocess.run([keytool, "-genkeypair", "-alias", "worker", "-keyalg", "RSA", "-keysize", "2048", "-validity", "2",
                        "-dname", "CN=127.0.0.1", "-ext", "SAN=IP:127.0.0.1", "-keystore", str(keystore), "-storetype", "PKCS12",
                        "-storepass", store_password, "-keypass", store_password], check=True, capture_output=True, timeout=120)
        subprocess.run([keytool, "-exportcert", "-rfc", "-alias", "worker", "-keystore", str(keystore), "-storepass", store_password,
                        "-file", str(self.ca)], check=True, capture_output=True, timeout=120)
        self.context = ssl.create_default_context(cafile=str(self.ca))
        self.topics = ["it-auth-%s-%s" % (tag, kind) for kind in ("configs", "offsets", "status")]
        (folder / "users.properties").write_text("%s: %s\n" % (AUTH_USER, AUTH_PASSWORD))
        (folder / "connect.jaas").write_text(
            "KafkaConnect {\n  org.apache.kafka.connect.rest.basic.auth.extension.PropertyFileLoginModule required\n"
            "  file=\"%s\";\n};\n" % (folder / "users.properties"))
        file_jar = glob.glob(os.path.join(libs, "connect-file-*.jar"))[0]
        (folder / "worker.properties").write_text("\n".join([
            "bootstrap.servers=%s" % ",".join(kafka["bootstrap_servers"]),
            "group.id=it-auth-%s" % tag,
            "key.converter=org.apache.kafka.connect.storage.StringConverter",
            "value.converter=org.apache.kafka.connect.storage.StringConverter",
            "config.storage.topic=%s" % self.topics[0], "config.storage.replication.factor=1",
            "offset.storage.topic=%s" % self.topics[1], "offset.storage.replication.factor=1", "offset.storage.partitions=1",
            "status.storage.topic=%s" % self.topics[2], "status.storage.replication.factor=1", "status.storage.partitions=1",
            "listeners=%s" % self.url, "rest.advertised.host.name=127.0.0.1", "rest.advertised.port=%d" % self.port,
            "rest.advertised.listener=https", "listeners.https.ssl.keystore.type=PKCS12",
            "listeners.https.ssl.keystore.location=%s" % keystore, "listeners.https.ssl.keystore.password=%s" % store_password,
            "listeners.https.ssl.key.password=%s" % store_password,
            "rest.extension.classes=org.apache.kafka.connect.rest.basic.auth.extension.BasicAuthSecurityRestExtension",
            "plugin.path=%s" % file_jar, "plugin.discovery=service_load", ""]))
        java = os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else "java"
        self.log = open(folder / "worker.out", "wb")
        self.proc = subprocess.Popen(
            [java, "-Xms64m", "-Xmx256m", "-XX:+UseSerialGC", "-Djava.net.preferIPv4Stack=true",
             "-Djava.security.auth.login.config=%s" % (folder / "connect.jaas"),
             "-Dlog4j2.configurationFile=%s" % (ROOT / "tests" / "lab" / "kafka" / "log4j2.properties"),
             "-Dkafka.logs.dir=%s" % folder, "-Dlab.log.name=worker",
             "-cp", lab["KAFKA_CLASSPATH"], "org.apache.kafka.connect.cli.ConnectDistributed", str(folder / "worker.properties")],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def get(self, path, auth=True):
        request = urllib.request.Request(self.url + path)
        if auth:
            token = base64.b64encode(("%s:%s" % (AUTH_USER, AUTH_PASSWORD)).encode()).decode()
            request.add_header("Authorization", "Basic " + token)
        with urllib.request.urlopen(request, timeout=10, context=self.context) as response:
            return json.loads(response.read())

    def wait_ready(self, timeout=180):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("the test worker exited (%s); its log: %s" % (self.proc.returncode, self.folder / "worker.log"))
            try:
                self.get("/connectors")
                return
            except (OSError, urllib.error.HTTPError):
                if time.monotonic() > deadline:
                    raise AssertionError("the test worker did not answer within %ds; its log: %s" % (timeout, self.folder / "worker.log"))
                time.sleep(0.5)

    def stop(self, admin):
        self.proc.terminate()  # our own child, by its pid
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
        self.log.close()
        for future in admin.delete_topics(self.topics).values():
            try:
                future.result(timeout=30)
            except Exception:  # a topic the worker never got to create
                pass


@pytest.fixture(scope="module")
def secured(lab, kafka, tmp_path_factory):
    if not lab.get("KAFKA_CLASSPATH"):
        pytest.skip("the lab's Kafka jars are not known (no KAFKA_CLASSPATH in .lab/env): run tests/lab/up kafka")
    worker = SecuredWorker(lab, kafka, tmp_path_factory.mktemp("connect-auth"))
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop(AdminClient({"bootstrap.servers": ",".join(kafka["bootstrap_servers"])}))


def test_basic_auth_wrong_or_missing_credentials_fail_in_one_sentence(secured, module, unique):
    for credentials in ({}, dict(url_username=AUTH_USER, url_password="wrong")):
        failed = module("kafka_connect_connector", dict(url=secured.url, ca_path=str(secured.ca), name=unique, state="absent",
                                                        **credentials))
        assert failed["failed"], failed
        assert failed["msg"] == ("Kafka Connect at %s refused the credentials (HTTP 401): set url_username and url_password "
                                 "(or KAFKA_CONNECT_USERNAME / KAFKA_CONNECT_PASSWORD) to a user of the worker's REST API." % secured.url)


def test_basic_auth_with_credentials_manages_the_connector(secured, module, unique, tmp_path, monkeypatch):
    name = unique + "-auth"
    args = dict(url=secured.url, ca_path=str(secured.ca), name=name, url_username=AUTH_USER, url_password=AUTH_PASSWORD,
                config={"connector.class": "FileStreamSource", "file": str(tmp_path / "in.txt"), "topic": unique + "-auth"})
    created = module("kafka_connect_connector", args)
    assert created["rc"] == 0 and created["changed"], created
    assert AUTH_PASSWORD not in json.dumps(created)
    assert secured.get("/connectors/%s/config" % name)["file"] == str(tmp_path / "in.txt")
    # The credentials from the environment, as a job template of AWX passes them.
    monkeypatch.setenv("KAFKA_CONNECT_USERNAME", AUTH_USER)
    monkeypatch.setenv("KAFKA_CONNECT_PASSWORD", AUTH_PASSWORD)
    from_env = dict(args, state="stopped")
    del from_env["url_username"], from_env["url_password"]
    stopped = module("kafka_connect_connector", from_env)
    assert stopped["rc"] == 0 and stopped["changed"] and stopped["connector"]["state"] == "STOPPED", stopped
    assert module("kafka_connect_connector", dict(from_env, state="absent"))["changed"]
    assert name not in secured.get("/connectors")


def test_tls_is_verified_by_default(secured, module, unique):
    args = dict(url=secured.url, name=unique, state="absent", url_username=AUTH_USER, url_password=AUTH_PASSWORD)
    untrusted = module("kafka_connect_connector", args)
    assert untrusted["failed"]
    assert untrusted["msg"].startswith("Cannot reach Kafka Connect at %s: its TLS certificate is not trusted (" % secured.url)
    assert untrusted["msg"].endswith("give the CA in ca_path, or validate_certs: false for a lab with self-signed certificates.")
    trusted = module("kafka_connect_connector", dict(args, ca_path=str(secured.ca)))
    assert trusted["rc"] == 0 and not trusted["changed"], trusted
    unverified = module("kafka_connect_connector", dict(args, validate_certs=False))
    assert unverified["rc"] == 0 and not unverified["changed"], unverified
