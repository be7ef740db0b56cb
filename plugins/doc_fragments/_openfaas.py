# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""OpenFaaS gateway connection options (private: may change without notice)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  gateway_url:
    description:
      - URL of the OpenFaaS gateway, for example V(https://gateway.example.com) or V(http://127.0.0.1:8080).
      - If not set, the environment variable E(OPENFAAS_URL) is used; one of the two is required.
    type: str
  gateway_username:
    description:
      - Basic-auth user of the gateway.
      - If not set, the environment variable E(OPENFAAS_USERNAME) is used, else V(admin).
    type: str
    default: admin
    aliases: [username]
  gateway_password:
    description:
      - Basic-auth password of O(gateway_username). Never logged. Without it no credentials are sent (a gateway with
        basic auth then answers HTTP 401, which fails the task with a sentence saying so).
      - If not set, the environment variable E(OPENFAAS_PASSWORD) is used.
    type: str
    aliases: [password]
  validate_certs:
    description:
      - Verify the gateway's TLS certificate and host name on an V(https) URL.
      - Turn off only for a lab with self-signed certificates.
    type: bool
    default: true
  ca_path:
    description: PEM file of the CA certificates to trust for the gateway's certificate, instead of the system's.
    type: path
  timeout:
    description: Seconds to wait for the gateway to answer one request.
    type: float
    default: 30
"""
