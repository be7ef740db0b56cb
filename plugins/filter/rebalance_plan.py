# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: rebalance_plan
short_description: Plan a Kafka partition rebalance on a cluster model, on the controller
version_added: 0.1.0
description:
  - Runs the collection's hill-climbing planner (the engine of M(streamops.day2.kafka_rebalance_plan)) on a cluster
    model held in a variable, without talking to any broker.
  - Returns the reassignment plan in the JSON format of C(kafka-reassign-partitions.sh --execute) and a summary of the
    load per broker before and after. The goals, the model format and the search are described in
    C(docs/rebalance.md) of the collection.
  - Bad input (an unknown broker, a partition listed twice, an unsatisfiable constraint, a zero budget, ...) fails
    the task with one sentence naming the culprit.
author:
  - streamops.day2 engineers (@streamops)
options:
  _input:
    description: The cluster model, a dictionary with C(brokers), C(partitions) and optionally C(drain_brokers).
    type: dict
    required: true
  goal_weights:
    description:
      - Weights of the built-in goals, overriding the defaults; V(0) switches a goal off.
      - 'Goals and default weights: C(nw_in) 1, C(nw_out) 1, C(disk) 1, C(replicas) 0.5, C(leaders) 0.5,
        C(peaks) 100 (no broker above max(1.03, 1.01 x floor) of its target), C(topic_spread) 0.02, C(movement) 0.02 (bytes
        moved), C(replica_moves) 0.01, C(leader_changes) 0.005.'
    type: dict
  balance_bands:
    description:
      - Per resource, a fraction such as V(0.05) within which a broker's deviation from its target costs nothing.
    type: dict
  custom_goals:
    description:
      - Goals of your own, each a dictionary with C(class) (dotted path of a class importable on the controller),
        optional C(weight) and C(options) (keyword arguments for the class).
    type: list
    elements: dict
  max_moves:
    description: Most replica moves the plan may hold. Unlimited when not set; V(0) is refused.
    type: int
  max_bytes:
    description: Most bytes the plan may move between brokers. Unlimited when not set; V(0) is refused.
    type: int
  max_leader_moves:
    description: Most leader changes the plan may hold. Unlimited when not set; V(0) is refused.
    type: int
  drain_brokers:
    description: Ids of brokers to decommission; the plan leaves them with no replicas.
    type: list
    elements: int
  excluded_topics:
    description: Topics the plan must leave exactly as they are.
    type: list
    elements: str
  capacity_threshold:
    description: Fraction of a declared broker capacity no broker may exceed.
    type: float
    default: 0.8
  time_limit:
    description:
      - Seconds the search may take; the best plan found by then is returned.
      - Unset, 60 seconds, or 50 seconds per million replicas on a larger cluster.
    type: float
  seed:
    description: Seed of the search's random choices; the same model and seed give the same plan.
    type: int
    default: 0
  frontier:
    description:
      - Fractions such as V([0.25, 0.5]) of the full plan's bytes to move; besides the full plan, plan again under each
        budget and return every plan with its figures as C(frontier) (the full plan last). C(plan) stays the full plan.
    type: list
    elements: float
seealso:
  - module: streamops.day2.kafka_rebalance_plan
  - module: streamops.day2.kafka_reassignment
"""

EXAMPLES = r"""
- name: Plan on a model saved earlier, draining broker 6
  ansible.builtin.set_fact:
    planned: "{{ lookup('ansible.builtin.file', 'model.json') | from_json | streamops.day2.rebalance_plan(drain_brokers=[6]) }}"

- name: Try other weights on the same live model, without reading the cluster again
  streamops.day2.kafka_rebalance_plan:
    return_model: true
    sample_seconds: 30
  register: live

- name: Plans at a quarter, half and all of the movement, with their max/mean and bytes
  ansible.builtin.debug:
    msg: "{{ (live.model | streamops.day2.rebalance_plan(frontier=[0.25, 0.5])).frontier
             | map(attribute='max_to_mean') | list }}"

- name: Network balance above all
  ansible.builtin.debug:
    msg: "{{ (live.model | streamops.day2.rebalance_plan(goal_weights={'nw_in': 3, 'nw_out': 3})).summary.bytes_to_move }}"
"""

RETURN = r"""
_value:
  description: The plan and its summary, as M(streamops.day2.kafka_rebalance_plan) returns them.
  type: dict
  contains:
    plan:
      description: >-
        The reassignment (C(version) 1 and C(partitions), each with C(topic), C(partition) and C(replicas)) for the
        partitions that change, first replica the preferred leader.
      type: dict
    summary:
      description: Per resource (C(nw_in), C(nw_out), C(disk), C(replicas), C(leaders)) the per-broker C(min), C(max),
        C(mean), C(sd) and C(max_to_mean) C(before) and C(after); C(replica_moves), C(leader_changes),
        C(bytes_to_move), C(partitions_changed), C(run_time), C(stop_reason), C(actions_evaluated), C(goals).
      type: dict
    warnings:
      description: Remarks that did not stop the planning (for example an excluded topic not in the model).
      type: list
      elements: str
    frontier:
      description: With O(frontier), the plans along the balance/movement trade-off, as M(streamops.day2.kafka_rebalance_plan) returns them.
      type: list
      elements: dict
"""

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.collections import is_sequence

from ansible_collections.streamops.day2.plugins.module_utils.rebalance.model import ModelError
from ansible_collections.streamops.day2.plugins.module_utils.rebalance.plan import plan_rebalance


def rebalance_plan(model, goal_weights=None, balance_bands=None, custom_goals=None, max_moves=None, max_bytes=None, max_leader_moves=None,
                   drain_brokers=None, excluded_topics=None, capacity_threshold=0.8, time_limit=None, seed=0, frontier=None):
    """Plan a rebalance of ``model``: {plan, summary, warnings} (and frontier)."""
    for name, value in (("drain_brokers", drain_brokers), ("excluded_topics", excluded_topics), ("custom_goals", custom_goals),
                        ("frontier", frontier)):
        if value is not None and not is_sequence(value):
            raise AnsibleFilterError("rebalance_plan: %s must be a list, got %s." % (name, type(value).__name__))
    try:
        return plan_rebalance(
            model, goal_weights=goal_weights, balance_bands=balance_bands, custom_goals=list(custom_goals or []), max_moves=max_moves, max_bytes=max_bytes,
            max_leader_moves=max_leader_moves, drain_brokers=list(drain_brokers or []),
            excluded_topics=list(excluded_topics or []), capacity_threshold=capacity_threshold, time_limit=time_limit, seed=seed,
            frontier=list(frontier) if frontier is not None else None)
    except ModelError as e:
        raise AnsibleFilterError("rebalance_plan: %s" % e)


class FilterModule:

    def filters(self):
        return {"rebalance_plan": rebalance_plan}
