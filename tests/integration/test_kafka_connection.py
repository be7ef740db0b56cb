"""Every Kafka module against the lab's brokers with connection options that cannot work: one clear sentence, fast.

An empty bootstrap list, a missing CA file, every broker refusing, and a security_protocol the listener does not speak
(SASL or TLS against the lab's PLAINTEXT listeners) each fail within a few seconds, not after request_timeout, naming
the cause; and KAFKA_BOOTSTRAP_SERVERS is honoured when bootstrap_servers is not given.
"""

import json

import pytest

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
