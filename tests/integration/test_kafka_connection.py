"""Every Kafka module against the lab's brokers with connection options that cannot work: one clear sentence, fast.

An empty bootstrap list, a missing CA file, every broker refusing, and a security_protocol the listener does not speak
(SASL or TLS against the lab's PLAINTEXT listeners) each fail within a few seconds, not after request_timeout, naming
the cause; and KAFKA_BOOTSTRAP_SERVERS is honoured when bootstrap_servers is not given. Over the lab's secured
listeners: a wrong password, an untrusted CA, a missing or untrusted client certificate and a principal without ACLs
each get their own sentence, and the SASL password is never printed, not even at -vvv.
"""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import warnings_of

ROOT = Path(__file__).resolve().parents[2]

MODULES = {
    "kafka_topic": dict(name="it-never-created", partitions=1),
    "kafka_lag_info": {},
    "kafka_reassignment": dict(plan={"version": 1, "partitions": []}),
    "kafka_rebalance_plan": dict(sample_seconds=0),
}
FAST = 8.0   # seconds: Python and Ansible start-up included, against a request_timeout of 30


@pytest.fixture(params=sorted(MODULES))
def call(request, module):
    name = request.param

    def run(env=None, **args):
        return module(name, dict(MODULES[name], request_timeout=30, **args), env=env)
    run.name = name
    return run


def assert_fails_fast(result, start):
    assert result.get("failed") and result["rc"] != 0, result
    assert result["msg"].startswith(start), result["msg"]
    assert "Traceback" not in result["msg"] and "\n" not in result["msg"], result["msg"]
    assert result["_test_seconds"] < FAST, "took %ss: %s" % (result["_test_seconds"], result["msg"])


EMPTY = ("bootstrap_servers is empty: give the brokers as host:port (or set the environment variable KAFKA_BOOTSTRAP_SERVERS).",
         # kafka_rebalance_plan can also plan on a model instead of the brokers, and says so
         "Give cluster_model, cluster_model_file, or bootstrap_servers to read the model live from the brokers.")


def test_empty_bootstrap_servers_are_said_at_once(call, kafka):
    expected = EMPTY if call.name == "kafka_rebalance_plan" else EMPTY[0]
    for servers in ([], [""], [" ", ""]):
        assert_fails_fast(call(bootstrap_servers=servers, env={"KAFKA_BOOTSTRAP_SERVERS": None}), expected)
    assert_fails_fast(call(env={"KAFKA_BOOTSTRAP_SERVERS": None}), expected)


def test_the_environment_gives_the_brokers_when_the_option_is_not_set(call, kafka):
    # kafka_topic asked for its topic to be absent: it reads the brokers' metadata and creates nothing.
    extra = dict(state="absent") if call.name == "kafka_topic" else {}
    result = call(env={"KAFKA_BOOTSTRAP_SERVERS": ",".join(kafka["bootstrap_servers"])}, **extra)
    assert result["rc"] == 0, result.get("msg")
    if call.name == "kafka_topic":
        assert not result["changed"] and result["topic"] == {}, result


def test_every_broker_refusing_fails_within_seconds(call):
    assert_fails_fast(call(bootstrap_servers=["127.0.0.1:9", "127.0.0.1:10"]),
                      "Cannot reach the Kafka brokers at 127.0.0.1:9,127.0.0.1:10: nothing listens there (every broker refused "
                      "the connection).")


def test_an_unresolvable_broker_fails_within_seconds(call):
    assert_fails_fast(call(bootstrap_servers=["nosuch.invalid:9092"]),
                      "Cannot reach the Kafka brokers at nosuch.invalid:9092: the broker address does not resolve")


def test_a_missing_ca_file_is_named_before_connecting(call, kafka, tmp_path):
    missing = tmp_path / "ca.pem"
    assert_fails_fast(call(security_protocol="SSL", ssl_cafile=str(missing), **kafka),
                      "ssl_cafile %s (the CA certificates) does not exist or is not a file." % missing)
    assert_fails_fast(call(security_protocol="SASL_SSL", sasl_username="alice", sasl_password="pw-9x7q", ssl_certfile=str(missing),
                           ssl_keyfile=str(missing), **kafka),
                      "ssl_certfile %s (the client certificate) does not exist or is not a file." % missing)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_sasl_against_a_plaintext_listener_names_the_mismatch(call, kafka, mechanism):
    result = call(security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism, sasl_username="alice", sasl_password="s3cret-pw",
                  **kafka)
    assert_fails_fast(result, "Cannot reach the Kafka brokers at %s: the brokers refused the SASL handshake, as a listener "
                              "without SASL does (security_protocol=SASL_PLAINTEXT against a PLAINTEXT or SSL listener?)"
                      % ",".join(kafka["bootstrap_servers"]))
    assert "s3cret-pw" not in json.dumps(result)


def test_tls_against_a_plaintext_listener_names_the_mismatch(call, kafka):
    assert_fails_fast(call(security_protocol="SSL", **kafka),
                      "Cannot reach the Kafka brokers at %s: the TLS handshake failed, as it does against a PLAINTEXT listener"
                      % ",".join(kafka["bootstrap_servers"]))


def test_sasl_without_credentials_is_said_before_connecting(call, kafka):
    assert_fails_fast(call(security_protocol="SASL_SSL", env={"KAFKA_SASL_USERNAME": None, "KAFKA_SASL_PASSWORD": None}, **kafka),
                      "security_protocol=SASL_SSL needs sasl_username and sasl_password")


# --- the lab's secured listeners (SASL_SSL with SCRAM-SHA-512, SSL with client certificates, ACLs on) ---------------

@pytest.fixture
def sasl(lab, listeners):
    return dict(bootstrap_servers=lab["KAFKA_SASL_SSL_BOOTSTRAP_SERVERS"].split(","), security_protocol="SASL_SSL",
                sasl_mechanism="SCRAM-SHA-512", sasl_username=lab["KAFKA_LAB_SCRAM_USERNAME"],
                sasl_password=lab["KAFKA_LAB_SCRAM_PASSWORD"], ssl_cafile=lab["KAFKA_LAB_CA_FILE"])


@pytest.fixture
def mtls(lab, listeners):
    return dict(bootstrap_servers=lab["KAFKA_MTLS_BOOTSTRAP_SERVERS"].split(","), security_protocol="SSL",
                ssl_cafile=lab["KAFKA_LAB_CA_FILE"], ssl_certfile=lab["KAFKA_LAB_CLIENT_CERT"], ssl_keyfile=lab["KAFKA_LAB_CLIENT_KEY"])


@pytest.fixture(scope="session")
def listeners(lab):
    if not lab.get("KAFKA_SASL_SSL_BOOTSTRAP_SERVERS"):
        pytest.skip("the lab's Kafka has no secured listeners (no KAFKA_SASL_SSL_BOOTSTRAP_SERVERS in .lab/env): run tests/lab/up kafka")


def test_a_wrong_password_is_one_sentence_without_the_password(call, sasl):
    result = call(**dict(sasl, sasl_password="wrong-pw-5k2j"))
    assert_fails_fast(result, "Cannot reach the Kafka brokers at %s: authentication as streamops failed" % ",".join(sasl["bootstrap_servers"]))
    assert "check sasl_username, sasl_password and sasl_mechanism" in result["msg"]
    assert "wrong-pw-5k2j" not in json.dumps(result)


def test_a_wrong_ca_is_one_sentence(call, sasl, mtls, lab):
    for options in (sasl, mtls):
        assert_fails_fast(call(**dict(options, ssl_cafile=lab["KAFKA_LAB_ROGUE_CA_FILE"])),
                          "Cannot reach the Kafka brokers at %s: the brokers' certificate is not trusted"
                          % ",".join(options["bootstrap_servers"]))


def test_mtls_without_a_trusted_client_certificate_is_one_sentence(call, mtls, lab):
    servers = ",".join(mtls["bootstrap_servers"])
    without = dict(mtls, ssl_certfile=None, ssl_keyfile=None)
    assert_fails_fast(call(**without), "Cannot reach the Kafka brokers at %s: the brokers refused the TLS handshake" % servers)
    rogue = dict(mtls, ssl_certfile=lab["KAFKA_LAB_ROGUE_CLIENT_CERT"], ssl_keyfile=lab["KAFKA_LAB_ROGUE_CLIENT_KEY"])
    assert_fails_fast(call(**rogue), "Cannot reach the Kafka brokers at %s: the brokers refused the TLS handshake" % servers)


@pytest.fixture(scope="module")
def hidden(kafka, lab):
    """A topic with data and a consumer group with a commit, made over PLAINTEXT: User:nobody has no ACL on either."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
    servers = ",".join(kafka["bootstrap_servers"])
    name = "it-hidden-%s" % uuid.uuid4().hex[:8]
    admin = AdminClient({"bootstrap.servers": servers})
    admin.create_topics([NewTopic(name, 2, 1)])[name].result(30)
    producer = Producer({"bootstrap.servers": servers})
    for index in range(10):
        producer.produce(name, b"x", partition=index % 2)
    producer.flush(30)
    consumer = Consumer({"bootstrap.servers": servers, "group.id": name})
    consumer.commit(offsets=[TopicPartition(name, 0, 3)], asynchronous=False)
    consumer.close()
    yield name
    admin.delete_topics([name])[name].result(30)
    admin.delete_consumer_groups([name])[name].result(30)


def test_a_principal_without_acls_is_refused_in_one_sentence_and_nothing_changes(module, sasl, lab, hidden):
    """User:nobody authenticates but has no ACL: a topic or group it may not Describe is never reported absent or unknown."""
    nobody = dict(sasl, sasl_username=lab["KAFKA_LAB_NOACL_USERNAME"], sasl_password=lab["KAFKA_LAB_NOACL_PASSWORD"])
    refused = "User:nobody is not authorized to describe %s (%s); grant it the ACL (docs/security.md lists what each module needs)."
    topic = refused % ("topic " + hidden, "TOPIC_AUTHORIZATION_FAILED")
    calls = [
        ("kafka_topic", dict(name=hidden, state="absent"), topic),         # it exists: "absent, nothing to do" would be a lie
        ("kafka_topic", dict(name=hidden, partitions=4), topic),
        ("kafka_lag_info", dict(groups=[hidden]), refused % ("consumer group " + hidden, "GROUP_AUTHORIZATION_FAILED")),
        ("kafka_lag_info", dict(topics=[hidden]), topic),
        ("kafka_reassignment", dict(plan={"version": 1, "partitions": [{"topic": hidden, "partition": 0, "replicas": [2]}]}), topic),
    ]
    for name, args, expected in calls:
        for check in (True, False):
            result = module(name, dict(args, request_timeout=30, **nobody), check=check)
            assert result.get("failed") and result["msg"] == expected, (name, args, result)
            assert result["_test_seconds"] < FAST, (name, result["_test_seconds"])
            assert lab["KAFKA_LAB_NOACL_PASSWORD"] not in json.dumps(result)
    # What it may list is empty, and the modules say why instead of reporting an empty cluster as healthy.
    lag = module("kafka_lag_info", dict(request_timeout=30, **nobody))
    assert lag["rc"] == 0 and lag["groups"] == [], lag
    assert "The brokers list no consumer group (User:nobody sees only the groups its ACLs let it Describe)" in " ".join(warnings_of(lag))
    plan = module("kafka_rebalance_plan", dict(sample_seconds=0, request_timeout=30, **nobody))
    assert plan["rc"] == 0 and not plan["changed"], plan
    assert "The brokers list no topic (User:nobody sees only the topics its ACLs let it Describe)." in warnings_of(plan)


def test_the_sasl_password_never_shows_even_at_vvv(sasl, tmp_path):
    """An ad hoc call at -vvv, with the right and with a wrong password: neither password is printed (no_log)."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build" / "collections"))
    for password in (sasl["sasl_password"], "wrong-pw-8h3m"):
        args = " ".join("%s=%s" % (k, ",".join(v) if isinstance(v, list) else v) for k, v in dict(sasl, sasl_password=password).items())
        argv = [str(Path(sys.executable).parent / "ansible"), "localhost", "-i", "localhost,", "-c", "local", "-vvv", "-e",
                "ansible_python_interpreter=%s" % sys.executable, "-m", "streamops.day2.kafka_lag_info", "-a", args]
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)
        assert ("SUCCESS" in proc.stdout) == (password == sasl["sasl_password"]), proc.stdout[-2000:]
        assert password not in proc.stdout + proc.stderr
