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
      - If not set, the environment variable E(K8S_AUTH_KUBECONFIG), then E(KUBECONFIG), then the in-cluster service account.
    type: path
  context:
    description: Name of the kubeconfig context to use. Defaults to the current context.
    type: str
"""
