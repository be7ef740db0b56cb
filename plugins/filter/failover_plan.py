# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: failover_plan
short_description: Decide, container by container, what a failover does from the probes of every engine
version_added: 0.1.0
description:
  - Takes the registered results of M(streamops.day2.docker_checkpoint) with O(streamops.day2.docker_checkpoint#module:state=query),
    one per container and engine (the loop item being C([container, engine])), and returns what the
    C(streamops.day2.container_failover) role does with each container.
  - A container's home is the engine where it last ran, the newest of the store's home record (written by every checkpoint,
    restore and migration that names the store), the engine of its newest version, and the container itself on each engine
    that answers.
  - A container that runs is left alone; one stopped on its home engine, which answers, is left alone; one that runs nowhere
    is restored on its home engine when it answers, else on the first engine that answers, except when its newest version
    was taken before it ran on another engine that does not answer now (restoring it would bring back older state than the
    copy there), which is refused unless O(force).
author:
  - streamops.day2 engineers (@streamops)
options:
  _input:
    description: The probe results (C(results) of the registered loop).
    type: list
    elements: dict
    required: true
  engines:
    description: The engines (each with C(name) and C(docker_host)), in order of preference as restore targets.
    type: list
    elements: dict
    required: true
  force:
    description: Restore a version even when it is older than a copy on an engine that does not answer.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Decide what to do with every protected container
  ansible.builtin.set_fact:
    plan: "{{ probe.results | streamops.day2.failover_plan(engines) }}"
"""

RETURN = r"""
_value:
  description: One decision per container, in the order first probed.
  type: list
  elements: dict
  contains:
    container:
      description: The container's name.
      type: str
    action:
      description: V(running), V(conflict), V(no_checkpoint), V(stopped_on_its_healthy_engine), V(restore), V(refused) or V(no_engine).
      type: str
    reason:
      description: Why, in one sentence.
      type: str
    target:
      description: The engine a restore goes to (empty otherwise).
      type: str
    home:
      description: The engine where the container last ran, with C(home_since) and C(home_how) (what says so).
      type: str
    version:
      description: The newest version in the store, with C(version_engine), the engine it was taken on.
      type: str
    running_on:
      description: Engines where the container runs.
      type: list
      elements: str
    stale_on:
      description: Engines holding a stopped copy while it runs elsewhere.
      type: list
      elements: str
    engines_up:
      description: Engines that answered.
      type: list
      elements: str
    forced:
      description: Whether a refusal was overridden by O(force).
      type: bool
"""

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.collections import is_sequence

from ansible_collections.streamops.day2.plugins.module_utils._criu.failover import plan


def failover_plan(probes, engines, force=False):
    """The failover decisions for the probes: see DOCUMENTATION."""
    if not is_sequence(probes) or not is_sequence(engines):
        raise AnsibleFilterError("failover_plan: the input and engines must be lists.")
    try:
        return plan(list(probes), list(engines), force=bool(force))
    except (KeyError, IndexError, TypeError, AttributeError) as e:
        raise AnsibleFilterError("failover_plan: the input is not the results of docker_checkpoint state=query looped over "
                                 "[container, engine] (%s: %s)." % (type(e).__name__, e))


class FilterModule:

    def filters(self):
        return {"failover_plan": failover_plan}
