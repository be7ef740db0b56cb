# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""OpenFaaS gateway connection options (private: may change without notice)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  gateway_url:
    description:
      - URL of the OpenFaaS gateway.
      - If not set, the environment variable E(OPENFAAS_URL) is used.
    type: str
    required: true
  gateway_username:
    description: Basic-auth user of the gateway. If not set, E(OPENFAAS_USERNAME) is used.
    type: str
    default: admin
  gateway_password:
    description: Basic-auth password of the gateway. Never logged. If not set, E(OPENFAAS_PASSWORD) is used.
    type: str
  validate_certs:
    description: Verify the gateway's TLS certificate.
    type: bool
    default: true
"""
