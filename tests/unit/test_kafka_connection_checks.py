"""The Kafka connection checks that need no broker: options checked before connecting, and the verdict drawn from
librdkafka's error callbacks (the texts are the ones librdkafka 2.x gives against the lab's PLAINTEXT listeners)."""

import pytest
from confluent_kafka import KafkaError

from ansible_collections.streamops.day2.plugins.module_utils._kafka import KAFKA_CONNECTION_SPEC, ConnectErrors, check_connection_params


def params(**given):
    out = {key: spec.get("default") for key, spec in KAFKA_CONNECTION_SPEC.items()}
    out.update(bootstrap_servers=["k1:9092"])
    out.update(given)
    return out


def test_bootstrap_servers_is_not_required_by_the_spec_but_empty_is_refused():
    assert not KAFKA_CONNECTION_SPEC["bootstrap_servers"].get("required")
    for servers in (None, [], [""], ["  "]):
        problem, unused = check_connection_params(params(bootstrap_servers=servers))
        assert problem.startswith("bootstrap_servers is empty")


def test_files_and_credentials_are_checked_before_connecting(tmp_path):
    ca = tmp_path / "ca.pem"
    assert check_connection_params(params(security_protocol="SSL", ssl_cafile=str(ca)))[0] == (
        "ssl_cafile %s (the CA certificates) does not exist or is not a file." % ca)
    ca.write_text("pem")
    assert check_connection_params(params(security_protocol="SSL", ssl_cafile=str(ca))) == (None, [])
    assert check_connection_params(params(security_protocol="SSL", ssl_certfile=str(ca)))[0] == (
        "ssl_certfile and ssl_keyfile go together (a client certificate needs its key).")
    assert check_connection_params(params(security_protocol="SASL_PLAINTEXT", sasl_username="u"))[0] == (
        "security_protocol=SASL_PLAINTEXT needs sasl_password (or the environment variable KAFKA_SASL_PASSWORD).")
    problem, warnings = check_connection_params(params(ssl_cafile=str(ca), sasl_username="u", sasl_password="p"))
    assert problem is None and warnings == [
        "ssl_cafile is ignored with security_protocol=PLAINTEXT (only SSL and SASL_SSL use it).",
        "sasl_username and sasl_password are ignored with security_protocol=PLAINTEXT (only SASL_PLAINTEXT and SASL_SSL use them)."]


def errors(*events):
    found = ConnectErrors()
    for code, text in events:
        found.add(KafkaError(code, text))
    return found


DOWN = (KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down")


@pytest.mark.parametrize("protocol, event, expected", [
    ("SASL_PLAINTEXT", (KafkaError._AUTHENTICATION, "sasl_plaintext://127.0.0.1:9092/bootstrap: SASL PLAIN mechanism handshake failed: "
                        "Broker: Request not valid in current SASL state: broker's supported mechanisms:  (after 0ms in state AUTH_HANDSHAKE)"),
     "the brokers refused the SASL handshake, as a listener without SASL does (security_protocol=SASL_PLAINTEXT against a "
     "PLAINTEXT or SSL listener?); check security_protocol and the port"),
    ("SASL_SSL", (KafkaError._AUTHENTICATION, "sasl_ssl://k1:9093/bootstrap: SASL PLAIN mechanism handshake failed: Broker: "
                  "Unsupported SASL mechanism: broker's supported mechanisms: SCRAM-SHA-512 (after 3ms in state AUTH_HANDSHAKE)"),
     "the brokers do not offer sasl_mechanism=PLAIN (they offer SCRAM-SHA-512); check sasl_mechanism"),
    ("SASL_SSL", (KafkaError._AUTHENTICATION, "sasl_ssl://k1:9093/1: SASL authentication error: Authentication failed during "
                  "authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (after 5ms in state AUTH_REQ)"),
     "authentication as u failed (SASL authentication error: Authentication failed during authentication due to invalid "
     "credentials with SASL mechanism SCRAM-SHA-512); check sasl_username, sasl_password and sasl_mechanism"),
    ("SSL", (KafkaError._TRANSPORT, "ssl://127.0.0.1:9092/bootstrap: SSL handshake failed: Disconnected: SSL connection closed by "
             "peer: connecting to a PLAINTEXT broker listener? (after 8ms in state SSL_HANDSHAKE)"),
     "the TLS handshake failed, as it does against a PLAINTEXT listener (security_protocol=SSL against a PLAINTEXT or "
     "SASL_PLAINTEXT listener?); check security_protocol and the port"),
    ("PLAINTEXT", (KafkaError._RESOLVE, "nosuch.invalid:9092/bootstrap: Failed to resolve 'nosuch.invalid:9092': Name or service "
                   "not known (after 2ms in state CONNECT)"),
     "the broker address does not resolve (Failed to resolve 'nosuch.invalid:9092': Name or service not known)"),
])
def test_a_definite_cause_is_named_as_soon_as_every_broker_failed(protocol, event, expected):
    given = params(security_protocol=protocol, sasl_username="u", sasl_mechanism="PLAIN")
    assert errors(event).verdict(given, 0.1) is None            # not every broker has failed yet
    assert errors(event, DOWN).verdict(given, 0.1) == expected


# What librdkafka reported against the lab's mTLS listener (ssl.client.auth=required), without and with a rogue certificate.
BAD_CERTIFICATE = (KafkaError._TRANSPORT, "ssl://127.0.0.1:27911/bootstrap: Receive failed: error:0A000412:SSL routines::ssl/tls "
                                          "alert bad certificate: SSL alert number 42 (after 12ms in state APIVERSION_QUERY)")


def test_a_refused_client_certificate_is_named_at_once():
    without = params(security_protocol="SSL", ssl_cafile="/ca.pem")
    assert errors(BAD_CERTIFICATE, DOWN).verdict(without, 0.1) == (
        "the brokers refused the TLS handshake without a client certificate (ssl/tls alert bad certificate): the listener "
        "requires one (mTLS); set ssl_certfile and ssl_keyfile")
    rogue = params(security_protocol="SSL", ssl_cafile="/ca.pem", ssl_certfile="/c.pem", ssl_keyfile="/c.key")
    assert errors(BAD_CERTIFICATE, DOWN).verdict(rogue, 0.1) == (
        "the brokers refused the TLS handshake with the client certificate /c.pem (ssl/tls alert bad certificate); check "
        "that it is signed by a CA the brokers trust and has not expired")


def test_refused_connections_get_a_moment_then_fail():
    refused = (KafkaError._TRANSPORT, "127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: Connection refused (after 0ms in state CONNECT)")
    found = errors(refused, DOWN)
    assert found.verdict(params(), 0.5) is None
    assert found.verdict(params(), 2.5) == "nothing listens there (every broker refused the connection)"
    timed_out = (KafkaError._TRANSPORT, "k2:9092/bootstrap: Connect to ipv4#10.0.0.2:9092 failed: Connection timed out "
                 "(after 30000ms in state CONNECT)")
    mixed = errors(refused, timed_out, DOWN)
    expected = "every broker failed (the last one: Connect to ipv4#10.0.0.2:9092 failed: Connection timed out)"
    assert mixed.verdict(params(), 2.5) == expected
