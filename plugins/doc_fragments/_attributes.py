# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attribute documentation shared by every module (private: may change without notice)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check mode and predict what would change without changing anything.
  diff_mode:
    description: Returns details of what changed (or would change in check mode) when run with C(--diff).
  idempotent:
    description: Running the task again with the same arguments reports no change.
"""

    # Modules that only read.
    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details: This action does not modify state.
  diff_mode:
    support: N/A
    details: This action does not modify state.
  idempotent:
    support: full
"""

    ACTIONGROUP_KAFKA = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/streamops.day2.kafka) in C(module_defaults) to set the Kafka connection once for every Kafka module.
    support: full
    membership:
      - streamops.day2.kafka
"""

    ACTIONGROUP_DOCKER = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/streamops.day2.docker) in C(module_defaults) to set the Docker connection once for every Docker module.
    support: full
    membership:
      - streamops.day2.docker
"""

    ACTIONGROUP_K8S = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/streamops.day2.k8s) in C(module_defaults) to set the Kubernetes connection once for every Kubernetes module.
    support: full
    membership:
      - streamops.day2.k8s
"""

    ACTIONGROUP_CONNECT = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/streamops.day2.connect) in C(module_defaults) to set the Connect worker and its credentials once for every Connect module.
    support: full
    membership:
      - streamops.day2.connect
"""

    ACTIONGROUP_OPENFAAS = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/streamops.day2.openfaas) in C(module_defaults) to set the gateway once for every OpenFaaS module.
    support: full
    membership:
      - streamops.day2.openfaas
"""
