# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes API connection options (private: may change without notice)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file.
      - If not set, the environment variable E(K8S_AUTH_KUBECONFIG), then E(KUBECONFIG), then C(~/.kube/config),
        then the in-cluster service account.
    type: path
  context:
    description:
      - Name of the kubeconfig context to use. Defaults to the current context.
      - If not set, the environment variable E(K8S_AUTH_CONTEXT).
    type: str
  host:
    description:
      - URL of the Kubernetes API server, for example V(https://k8s.example.com:6443). Overrides the kubeconfig's server.
      - If not set, the environment variable E(K8S_AUTH_HOST).
    type: str
  api_key:
    description:
      - Bearer token to authenticate with. Overrides the kubeconfig's credentials.
      - If not set, the environment variable E(K8S_AUTH_API_KEY).
    type: str
  ca_cert:
    description:
      - Path to the CA certificate that signed the API server's certificate.
      - If not set, the environment variable E(K8S_AUTH_SSL_CA_CERT).
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description:
      - Path to a client certificate to authenticate with.
      - If not set, the environment variable E(K8S_AUTH_CERT_FILE).
    type: path
    aliases: [cert_file]
  client_key:
    description:
      - Path to the key of O(client_cert).
      - If not set, the environment variable E(K8S_AUTH_KEY_FILE).
    type: path
    aliases: [key_file]
  verify_ssl:
    description:
      - Whether to verify the API server's certificate.
      - Named as the alias C(kubernetes.core) accepts, because C(validate_certs) is the Kafka connection's option.
      - If not set, the environment variable E(K8S_AUTH_VERIFY_SSL).
    type: bool
    default: true
requirements:
  - kubernetes >= 24.2
"""
