#!/usr/bin/python
# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: openfaas_function_info
short_description: List OpenFaaS functions with their replicas and invocation counts
version_added: 0.2.0
description:
  - Reads the functions of an OpenFaaS gateway (C(GET /system/functions?namespace=)), all of a namespace or one by
    name, with their image, labels, annotations, replicas asked for, replicas available and invocation count.
  - The invocation count is the gateway's, read back from its Prometheus; a gateway without a Prometheus reports 0.
author:
  - streamops.day2 engineers (@streamops)
extends_documentation_fragment:
  - streamops.day2._openfaas
  - streamops.day2._attributes
  - streamops.day2._attributes.INFO_MODULE
  - streamops.day2._attributes.ACTIONGROUP_OPENFAAS
options:
  name:
    description: Only the function of this name. Without it, every function.
    type: str
  namespace:
    description:
      - Function namespace to read. Without it the gateway's default.
      - A namespace that is not one of the gateway's function namespaces is an error.
    type: str
  all_namespaces:
    description: Read every function namespace of the gateway (C(GET /system/namespaces)). Not with O(namespace).
    type: bool
    default: false
notes:
  - Never changes anything; C(changed) is always false, also in check mode.
seealso:
  - module: streamops.day2.openfaas_function
"""

EXAMPLES = r"""
- name: Every function of the default namespace
  streamops.day2.openfaas_function_info:
    gateway_url: https://gateway.example.com
    gateway_password: "{{ vault_openfaas_password }}"
  register: fns

- name: How often has enrich-orders run, and is it up?
  streamops.day2.openfaas_function_info:
    name: enrich-orders
  register: enrich

- name: Say so
  ansible.builtin.debug:
    msg: >-
      {{ enrich.functions[0].invocation_count }} invocations,
      {{ enrich.functions[0].available_replicas }}/{{ enrich.functions[0].replicas }} replicas
  when: enrich.exists
"""

RETURN = r"""
exists:
  description: Whether at least one function matched (with O(name), whether that function exists).
  returned: always
  type: bool
  sample: true
functions:
  description: The functions, sorted by namespace and name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Name of the function.
      type: str
      sample: enrich-orders
    namespace:
      description: Its namespace.
      type: str
      sample: openfaas-fn
    image:
      description: Its image.
      type: str
      sample: registry.example.com/fn/enrich:1.4.2
    env_vars:
      description: Its environment variables.
      type: dict
      sample: {LOG_LEVEL: info}
    env_process:
      description: Its C(fprocess), or an empty string.
      type: str
      sample: ""
    labels:
      description: Its labels.
      type: dict
      sample: {com.openfaas.scale.min: "1", faas_function: enrich-orders}
    annotations:
      description: Its annotations.
      type: dict
      sample: {topic: orders}
    secrets:
      description: The secrets it mounts.
      type: list
      elements: str
      sample: []
    constraints:
      description: Its placement constraints.
      type: list
      elements: str
      sample: [topology.kubernetes.io/region=b]
    limits:
      description: Its resource limits.
      type: dict
      sample: {memory: 256Mi}
    requests:
      description: Its resource requests.
      type: dict
      sample: {}
    read_only_root_filesystem:
      description: Whether its root file system is read-only.
      type: bool
      sample: false
    replicas:
      description: Replicas asked for.
      type: int
      sample: 2
    available_replicas:
      description: Replicas ready to serve.
      type: int
      sample: 2
    invocation_count:
      description: Invocations through the gateway (every status code), as its Prometheus counted them.
      type: int
      sample: 10342
    created_at:
      description: When the function was deployed (RFC 3339).
      type: str
      sample: "2026-12-01T15:53:54Z"
"""

from ansible_collections.streamops.day2.plugins.module_utils._openfaas import OpenFaaSModule, run_function_info


def main():
    module = OpenFaaSModule(
        argument_spec=dict(
            name=dict(type="str"),
            namespace=dict(type="str"),
            all_namespaces=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    if module.params["all_namespaces"] and module.params["namespace"]:
        module.fail_json(msg="Give namespace or all_namespaces=true, not both.")
    module.run(run_function_info)


if __name__ == "__main__":
    main()
