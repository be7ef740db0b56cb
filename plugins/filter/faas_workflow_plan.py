# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: faas_workflow_plan
short_description: Plan the parts of a Kafka-staged OpenFaaS workflow, on the controller
version_added: 0.2.0
description:
  - Turns a workflow spec (sources, steps, sinks) into the topics, Kafka Connect connectors, OpenFaaS functions, step
    runners and scaler configuration that make it run, the way the P(streamops.day2.faas_workflow#role) role applies them.
  - Names left out follow the workflow's name; a step reads the previous step's output (the first step every source's topic)
    and writes C(<workflow>.<step>); a sink reads the last step's output.
  - No service is contacted. A spec that cannot be planned (an unknown key, a topic no one writes, two writers of one topic,
    both a step's C(replicas) and its C(scaling)) fails the task with one sentence naming the culprit.
author:
  - streamops.day2 engineers (@streamops)
options:
  _input:
    description: The workflow spec, as the role's C(faas_workflow_spec) variable (see the role's README).
    type: dict
    required: true
  defaults:
    description:
      - Defaults for what the spec leaves out, keys C(partitions), C(replication_factor), C(topic_config), C(runners), C(concurrency), C(retries),
        C(backoff_ms), C(timeout_ms), C(scaling) (a dict with C(target_lag), C(min), C(max), C(idle_seconds)) and C(dlq) (bool).
    type: dict
"""

EXAMPLES = r"""
- name: What a workflow is made of
  ansible.builtin.debug:
    msg: "{{ workflow | streamops.day2.faas_workflow_plan({'partitions': 6, 'runners': 2}) }}"
  vars:
    workflow:
      name: orders
      sources: [{name: in, file: /data/orders.txt}]
      steps:
        - {name: upper, image: "registry.example.com/fn-upper:1"}
        - {name: reverse, image: "registry.example.com/fn-reverse:1"}
      sinks: [{name: out, file: /data/orders.out}]
"""

RETURN = r"""
_value:
  description: The workflow's parts.
  type: dict
  contains:
    name:
      description: The workflow's name.
      type: str
    namespace:
      description: Kubernetes namespace of its runners and scaler.
      type: str
    topics:
      description: Topics to make (C(name), C(partitions), C(replication_factor), C(config)).
      type: list
      elements: dict
    connectors:
      description: Source and sink connectors (C(name), C(kind), C(config)).
      type: list
      elements: dict
    functions:
      description: Step functions (C(name), C(image), C(env), C(labels), C(annotations), C(secrets), C(limits), C(requests),
        C(constraints), C(replicas) (None when scaled), C(scaled)).
      type: list
      elements: dict
    runners:
      description: Step runners (C(name), C(step), C(function), C(group), C(input), C(output), C(dlq), C(replicas), C(concurrency), C(retries),
        C(backoff_ms), C(timeout_ms)).
      type: list
      elements: dict
    scaler:
      description: The scaler's name and steps (the JSON of E(STREAMOPS_SCALER_STEPS)), or None when no step is scaled.
      type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.streamops.day2.plugins.module_utils._workflow import WorkflowError, plan


def faas_workflow_plan(spec, defaults=None):
    if not isinstance(spec, dict):
        raise AnsibleFilterError("faas_workflow_plan needs the workflow spec as a dictionary, not %s" % type(spec).__name__)
    try:
        return plan(spec, defaults or {})
    except WorkflowError as exc:
        raise AnsibleFilterError("Invalid workflow spec: %s." % exc)


class FilterModule:

    def filters(self):
        return {"faas_workflow_plan": faas_workflow_plan}
