# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kafka Connect REST connection options (private: may change without notice)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  url:
    description:
      - URL of a Kafka Connect worker's REST API, for example V(https://connect-1:8083). Any worker of the cluster will do;
        it forwards what only the leader may do.
      - If not set, the environment variable E(KAFKA_CONNECT_URL) is used.
    type: str
    required: true
  url_username:
    description:
      - User for HTTP basic authentication (Connect's C(BasicAuthSecurityRestExtension), or a proxy in front of the workers).
      - If not set, the environment variable E(KAFKA_CONNECT_USERNAME) is used. Without a user no credentials are sent.
    type: str
  url_password:
    description:
      - Password of O(url_username). Never logged.
      - If not set, the environment variable E(KAFKA_CONNECT_PASSWORD) is used.
    type: str
  validate_certs:
    description:
      - Verify the worker's TLS certificate and host name on an V(https) URL.
      - Turn off only for a lab with self-signed certificates.
    type: bool
    default: true
  ca_path:
    description: PEM file of the CA certificates to trust for the worker's certificate, instead of the system's.
    type: path
  client_cert:
    description: PEM file of a client certificate, for workers that require mutual TLS (C(ssl.client.auth=required) on the REST listener).
    type: path
  client_key:
    description: PEM file of the private key of O(client_cert), when the certificate file does not hold it.
    type: path
  timeout:
    description:
      - Seconds to wait for the worker to answer one request.
      - Also the longest time one request is retried while the worker answers HTTP 409 (its group is rebalancing),
        with a back-off from 0.25 to 4 seconds.
    type: float
    default: 30
"""
