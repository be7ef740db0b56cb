#!/usr/bin/python
# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: openfaas_function
short_description: Manage OpenFaaS functions
version_added: 0.2.0
description:
  - Deploys, updates, scales and removes a function through the OpenFaaS gateway's REST API
    (C(/system/functions), C(/system/scale-function/{name})); no faas-cli needed.
  - The spec asked for is compared with the live function (C(GET /system/function/{name}?namespace=)), so a run with
    the same spec reports no change. Only the options given are compared; an option left out keeps the function's
    current value, which is sent back unchanged when something else is updated (an update replaces the whole spec).
  - Values the server fills in itself are never reported as changes. These are the labels C(faas_function) and C(uid), the
    annotation C(prometheus.io.scrape) and C(kubectl.kubernetes.io/*), C(deployment.kubernetes.io/*) annotations
    (unless named in O(labels) or O(annotations)), and the canonical form the server gives quantities (V(0.5) CPU shows as V(500m)).
author:
  - streamops.day2 engineers (@streamops)
extends_documentation_fragment:
  - streamops.day2._openfaas
  - streamops.day2._attributes
  - streamops.day2._attributes.ACTIONGROUP_OPENFAAS
attributes:
  check_mode:
    support: full
    details: Deployment, updates, scaling and deletion are predicted from the live function, not made.
  diff_mode:
    support: full
    details: The function's spec and replica count before and after.
  idempotent:
    support: full
options:
  name:
    description: Name of the function (the service name, a DNS label).
    type: str
    required: true
  namespace:
    description:
      - Function namespace. Without it the gateway's default (C(openfaas-fn) on most installations).
      - A namespace that is not one of the gateway's function namespaces (C(GET /system/namespaces)) is an error, for
        every state.
    type: str
  state:
    description: V(present) deploys or updates the function; V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  image:
    description: Container image of the function. Required to deploy a new function.
    type: str
  env_vars:
    description:
      - Environment variables of the function's containers, the complete set (variables not listed are removed).
      - Values are sent as strings (V(true)/V(false) for booleans). Keep secrets in O(secrets), not here.
    type: dict
    aliases: [env]
  env_process:
    description: The process the OpenFaaS watchdog runs (C(fprocess)), for images built on the classic watchdog.
    type: str
  labels:
    description:
      - Labels of the function, the complete set apart from the labels the server adds (see the description).
      - Scaling labels go here, for example C(com.openfaas.scale.min), C(com.openfaas.scale.max),
        C(com.openfaas.scale.zero). A new function starts with C(com.openfaas.scale.min) replicas (1 without it)
        unless O(replicas) is given.
    type: dict
  annotations:
    description:
      - Annotations of the function, the complete set apart from those the server adds, for example a Kafka topic
        trigger (C(topic)).
    type: dict
  secrets:
    description:
      - Names of OpenFaaS secrets the function mounts (under C(/var/openfaas/secrets/)); compared as a set.
      - The secrets must exist in the function's namespace; the gateway refuses a function naming a missing one.
    type: list
    elements: str
  constraints:
    description:
      - Placement constraints, for example V(topology.kubernetes.io/region=b) (a node selector on Kubernetes).
      - Written V(key=value), V(key==value) or V(key == value); compared as a set.
    type: list
    elements: str
  limits:
    description: Resource limits of the function's containers, compared by quantity (V(0.5) equals V(500m)).
    type: dict
    suboptions:
      memory:
        description: Memory, for example V(128Mi).
        type: str
      cpu:
        description: CPU, for example V(500m) or V(0.5).
        type: str
  requests:
    description: Resource requests of the function's containers, compared by quantity.
    type: dict
    suboptions:
      memory:
        description: Memory, for example V(64Mi).
        type: str
      cpu:
        description: CPU, for example V(100m).
        type: str
  read_only_root_filesystem:
    description: Run the function with a read-only root file system (C(/tmp) stays writable).
    type: bool
  replicas:
    description:
      - Number of replicas (C(POST /system/scale-function/{name})), V(0) included. Without it the replica count is
        left as it is (for example to an autoscaler).
      - With O(state=absent) it is ignored.
    type: int
  wait:
    description:
      - Wait until the function has O(replicas) available replicas (without O(replicas), its own replica count), or
        none available when that is 0.
      - After an update the gateway counts only replicas of the new spec as available (on the lab's provider; on
        faas-netes the Deployment's count), so the wait covers the rollout.
      - With O(state=absent), wait until the gateway no longer shows the function.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait with O(wait).
    type: float
    default: 120
notes:
  - Uses the gateway's REST API with Ansible's own HTTP client; no Python library or faas-cli to install.
  - Invocation counts are returned by M(streamops.day2.openfaas_function_info).
seealso:
  - module: streamops.day2.openfaas_function_info
  - name: OpenFaaS gateway REST API
    description: The endpoints this module uses.
    link: https://docs.openfaas.com/architecture/gateway/
"""

EXAMPLES = r"""
- name: Deploy a function pinned to region b, one replica minimum
  streamops.day2.openfaas_function:
    gateway_url: https://gateway.example.com
    gateway_password: "{{ vault_openfaas_password }}"
    name: enrich-orders
    image: registry.example.com/fn/enrich:1.4.2
    env_vars:
      write_timeout: 30s
      LOG_LEVEL: info
    labels:
      com.openfaas.scale.min: "1"
      com.openfaas.scale.max: "10"
    annotations:
      topic: orders
    secrets: [orders-db-password]
    constraints: [topology.kubernetes.io/region=b]
    limits: {memory: 256Mi, cpu: 500m}
    requests: {memory: 64Mi, cpu: 100m}

- name: The gateway set once for every OpenFaaS task
  module_defaults:
    group/streamops.day2.openfaas:
      gateway_url: https://gateway.example.com
      gateway_username: admin
      gateway_password: "{{ vault_openfaas_password }}"
  block:
    - name: Scale a step to zero while its input is idle
      streamops.day2.openfaas_function:
        name: enrich-orders
        replicas: 0

    - name: Two replicas before a burst, and wait until both answer
      streamops.day2.openfaas_function:
        name: enrich-orders
        replicas: 2
        wait_timeout: 180

    - name: Remove a function
      streamops.day2.openfaas_function:
        name: old-step
        state: absent
"""

RETURN = r"""
function:
  description: The function after the task (as it would be, in check mode). Empty when it is absent.
  returned: always
  type: dict
  contains:
    name:
      description: Name of the function.
      type: str
      sample: enrich-orders
    namespace:
      description: Its namespace; V(null) in check mode for a new function without O(namespace).
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
      description: Its labels, those the server adds included.
      type: dict
      sample: {com.openfaas.scale.min: "1", faas_function: enrich-orders}
    annotations:
      description: Its annotations, those the server adds included.
      type: dict
      sample: {topic: orders, prometheus.io.scrape: "false"}
    secrets:
      description: The secrets it mounts, sorted.
      type: list
      elements: str
      sample: [orders-db-password]
    constraints:
      description: Its placement constraints as V(key=value), sorted.
      type: list
      elements: str
      sample: [topology.kubernetes.io/region=b]
    limits:
      description: Its resource limits as the server shows them.
      type: dict
      sample: {memory: 256Mi, cpu: 500m}
    requests:
      description: Its resource requests as the server shows them.
      type: dict
      sample: {memory: 64Mi, cpu: 100m}
    read_only_root_filesystem:
      description: Whether its root file system is read-only.
      type: bool
      sample: false
    replicas:
      description: Replicas asked for.
      type: int
      sample: 1
    available_replicas:
      description: Replicas ready to serve (0 in check mode for a new function).
      type: int
      sample: 1
    created_at:
      description: When the function was deployed (RFC 3339), when the gateway says.
      type: str
      sample: "2026-12-01T15:53:54Z"
actions:
  description: What was done (or would be done in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: ["update env_vars (set LOG_LEVEL)", "scale from 1 to 2 replicas"]
diff:
  description: The function's spec and replica count before and after.
  returned: when run with C(--diff)
  type: dict
  sample:
    before: {name: enrich-orders, image: "fn/enrich:1.4.1", replicas: 1}
    after: {name: enrich-orders, image: "fn/enrich:1.4.2", replicas: 1}
"""

from ansible_collections.streamops.day2.plugins.module_utils._openfaas import OpenFaaSModule, run_function


def main():
    resources = dict(memory=dict(type="str"), cpu=dict(type="str"))
    module = OpenFaaSModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            namespace=dict(type="str"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            image=dict(type="str"),
            env_vars=dict(type="dict", aliases=["env"]),
            env_process=dict(type="str"),
            labels=dict(type="dict"),
            annotations=dict(type="dict"),
            secrets=dict(type="list", elements="str", no_log=False),  # names of secrets, not their values
            constraints=dict(type="list", elements="str"),
            limits=dict(type="dict", options=resources),
            requests=dict(type="dict", options=resources),
            read_only_root_filesystem=dict(type="bool"),
            replicas=dict(type="int"),
            wait=dict(type="bool", default=True),
            wait_timeout=dict(type="float", default=120.0),
        ),
        supports_check_mode=True,
    )
    if module.params["replicas"] is not None and module.params["replicas"] < 0:
        module.fail_json(msg="replicas must be 0 or more, not %d." % module.params["replicas"])
    module.run(run_function)


if __name__ == "__main__":
    main()
