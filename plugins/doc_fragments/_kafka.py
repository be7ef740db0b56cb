# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kafka connection options shared by every Kafka module (private: may change without notice)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  bootstrap_servers:
    description:
      - Kafka brokers to bootstrap from, as C(host:port).
      - If not set, the environment variable E(KAFKA_BOOTSTRAP_SERVERS) is used (comma separated); one of them is needed,
        and an empty list fails at once.
      - Every broker refusing the connection, an address that does not resolve, or a O(security_protocol) the listener does
        not speak fails within a few seconds, naming the likely cause, rather than after O(request_timeout).
    type: list
    elements: str
  security_protocol:
    description: Protocol used to talk to the brokers.
    type: str
    choices: [PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL]
    default: PLAINTEXT
  sasl_mechanism:
    description: SASL mechanism, when O(security_protocol) is V(SASL_PLAINTEXT) or V(SASL_SSL).
    type: str
    choices: [PLAIN, SCRAM-SHA-256, SCRAM-SHA-512]
    default: PLAIN
  sasl_username:
    description:
      - SASL user name.
      - If not set, the environment variable E(KAFKA_SASL_USERNAME) is used.
    type: str
  sasl_password:
    description:
      - SASL password. Never logged.
      - If not set, the environment variable E(KAFKA_SASL_PASSWORD) is used.
    type: str
  ssl_cafile:
    description:
      - PEM file of the CA certificates that signed the brokers' certificates.
      - This file, O(ssl_certfile) and O(ssl_keyfile) are checked before connecting; a missing one fails naming it.
    type: path
  ssl_certfile:
    description: PEM file of the client certificate, for mutual TLS.
    type: path
  ssl_keyfile:
    description: PEM file of the client private key, for mutual TLS.
    type: path
  ssl_key_password:
    description: Password of O(ssl_keyfile). Never logged.
    type: str
  validate_certs:
    description:
      - Verify the brokers' certificates and host names.
      - Turn off only for a lab with self-signed certificates.
    type: bool
    default: true
  client_id:
    description: Client id the brokers see in their logs, quotas and metrics.
    type: str
    default: streamops.day2
  request_timeout:
    description: Seconds to wait for the brokers to answer one request before giving up with an error.
    type: float
    default: 30
"""
