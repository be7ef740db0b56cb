#!/usr/bin/python
# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_consumer_relocate
short_description: Move a Kafka consumer workload to another Kubernetes region without losing or repeating a message
version_added: 0.2.0
description:
  - Pins a Deployment or StatefulSet that consumes from Kafka to another region (nodes carrying a region label) and
    watches its consumer group while the pods move, so that no message is lost and none is processed twice.
  - With O(strategy=handover) every old instance is stopped first; only when the group has no member left and its committed
    offsets stand still is the workload pinned to the target region and started again. The module then waits until the pods
    are Ready B(and) the group has a Stable membership again.
  - With O(strategy=warm) (Deployments only) the new pods are scheduled in the target region and become Ready while the old ones
    still consume; the old ones are then stopped, and each new instance subscribes only once no member of the previous
    generation is left (the consumer helper's start gate, see notes). The gap is then only the group's join.
  - The first region of O(regions) that has Ready nodes with room for the pods' requests is chosen. A workload already pinned
    to that region is left alone (C(changed=false)).
  - If the pods are not Ready in time the workload is moved back to its region, the same careful way, and the task fails.
  - The relocation is recorded as annotations on the workload (C(streamops.day2/relocated-at), C(relocated-from),
    C(relocated-to), C(relocation-reason), C(relocations)), so cool-downs hold across runs without state on the controller.
author:
  - streamops.day2 engineers (@streamops)
extends_documentation_fragment:
  - streamops.day2._k8s
  - streamops.day2._kafka
  - streamops.day2._attributes
attributes:
  check_mode:
    support: full
    details: Chooses the region and reports the scheduling change without touching the workload.
  diff_mode:
    support: full
    details: Shows the region and the node selector (or node affinity) before and after.
  idempotent:
    support: full
  action_group:
    description: Use C(group/streamops.day2.k8s) and C(group/streamops.day2.kafka) in C(module_defaults) to set both connections once.
    support: full
    membership:
      - streamops.day2.k8s
      - streamops.day2.kafka
options:
  kind:
    description: Kind of the workload.
    type: str
    choices: [Deployment, StatefulSet]
    default: Deployment
  name:
    description: Name of the workload.
    type: str
    required: true
  namespace:
    description: Namespace of the workload.
    type: str
    default: default
  group:
    description: The Kafka consumer group the workload's instances form.
    type: str
    required: true
  regions:
    description:
      - Regions to move to, in order of preference. The first one with Ready nodes with room for the pods' requests is taken.
      - If that region is the one the workload is pinned to, nothing changes.
    type: list
    elements: str
    required: true
    aliases: [region]
  region_label:
    description: The node label whose value names a node's region.
    type: str
    default: topology.kubernetes.io/region
  placement:
    description:
      - How the workload is pinned to a region.
      - V(node_selector) sets O(region_label) in the pod template's C(nodeSelector).
      - V(affinity) sets a required node-affinity expression C(O(region_label) In [region]) in every node-selector term,
        keeping the terms' other expressions.
    type: str
    choices: [node_selector, affinity]
    default: node_selector
  strategy:
    description:
      - V(handover) stops the old instances before the new ones start (any workload, any consumer that commits on shutdown).
      - V(warm) starts the new instances first and needs the consumer helper's start gate in the application (see notes).
    type: str
    choices: [handover, warm]
    default: handover
  wait_timeout:
    description:
      - Seconds each phase may take (old instances gone and group empty; new pods Ready and group Stable).
      - When the new pods are not Ready in time the workload is moved back and the task fails.
    type: float
    default: 180
  settle_time:
    description: Seconds the group's committed offsets must stand still, with no member, before the new instances start (handover).
    type: float
    default: 1
  min_members:
    description: Members the group must have again (at most one per pod) before the relocation counts as done.
    type: int
    default: 1
  rotate:
    description:
      - Move on from the current region - try the regions after it in O(regions) first, wrapping around, and never stay.
      - With O(regions=[a, b, c]) a workload in V(b) goes to V(c), else V(a). This is how a lagging job is sent onward.
    type: bool
    default: false
  cooldown:
    description:
      - Seconds after the workload's last relocation (its C(streamops.day2/relocated-at) annotation) during which it is not moved
        again; the task then reports C(changed=false) and C(cooldown_remaining).
      - V(0) moves whenever asked.
    type: float
    default: 0
  reason:
    description: Why the workload moves (for example the lag that triggered it); kept in the C(streamops.day2/relocation-reason) annotation.
    type: str
notes:
  - The guarantee (nothing lost, nothing processed twice) needs consumers that commit exactly what they processed and commit
    on revoke and on SIGTERM before leaving the group, as the C(streamops_consumer) helper package of this collection does.
    Give the pods a C(terminationGracePeriodSeconds) long enough for that commit.
  - For O(strategy=warm), run the helper with C(STREAMOPS_START_GATE=after-others-leave) and C(STREAMOPS_GENERATION) taken from
    the pod's C(pod-template-hash) label through the downward API; a new instance then waits, Ready, until no member of another
    generation is left in the group.
  - The Kubernetes client is the official C(kubernetes) Python library; Kafka is read through confluent-kafka.
requirements:
  - kubernetes >= 24.2
  - confluent-kafka >= 2.3
seealso:
  - module: streamops.day2.kafka_lag_info
"""

EXAMPLES = r"""
- name: Move the detector to region b, handing over its partitions
  streamops.day2.k8s_consumer_relocate:
    name: traffic-detector
    namespace: edge
    group: detector
    regions: [b]
    bootstrap_servers: [kafka-1:9092]
    reason: lag 42000 messages over 10000

- name: Move to the first region that has room, starting the new pods before the old ones stop
  streamops.day2.k8s_consumer_relocate:
    name: traffic-detector
    namespace: edge
    group: detector
    regions: [b, c, a]
    strategy: warm
    wait_timeout: 120
  register: moved

- name: Show how long the group had no active member
  ansible.builtin.debug:
    msg: "{{ moved.region_before }} -> {{ moved.region }} on {{ moved.new_nodes | join(',') }}, gap {{ moved.gap_seconds }}s"
"""

RETURN = r"""
kind:
  description: Kind of the workload.
  returned: always
  type: str
  sample: Deployment
namespace:
  description: Namespace of the workload.
  returned: always
  type: str
  sample: edge
name:
  description: Name of the workload.
  returned: always
  type: str
  sample: traffic-detector
group:
  description: The consumer group watched.
  returned: always
  type: str
  sample: detector
strategy:
  description: The strategy used.
  returned: always
  type: str
  sample: handover
region_before:
  description: The region the workload was pinned to before the task (V(null) when it was not pinned).
  returned: always
  type: str
  sample: a
region:
  description: The region it is pinned to after the task (or would be, in check mode).
  returned: always
  type: str
  sample: b
regions_of_old_nodes:
  description: Regions of the nodes the old pods ran on.
  returned: always
  type: list
  elements: str
  sample: [a]
old_nodes:
  description: Nodes the workload's pods ran on before the task.
  returned: always
  type: list
  elements: str
  sample: [edge-a-1]
new_nodes:
  description: Nodes its pods run on after the task (the old ones when nothing moved or in check mode).
  returned: always
  type: list
  elements: str
  sample: [edge-b-1]
old_pods:
  description: Names of the pods before the task.
  returned: always
  type: list
  elements: str
  sample: [traffic-detector-6d8f7c9b5-x2k8q]
new_pods:
  description: Names of the pods after the relocation.
  returned: when moved
  type: list
  elements: str
  sample: [traffic-detector-7f9c8d6b4-p4m2z]
gap_seconds:
  description: Seconds in which the group had no Stable membership during the move (nobody consumed).
  returned: always
  type: float
  sample: 2.84
offsets:
  description: The group's committed offsets at the hand-over (what the new instances started from).
  returned: always
  type: list
  elements: dict
  sample: [{topic: detections, partition: 0, offset: 18231}]
members:
  description: The group's members after the move (client id, host, number of partitions assigned).
  returned: always
  type: list
  elements: dict
  sample: [{client_id: "streamops:7f9c8d6b4:traffic-detector-7f9c8d6b4-p4m2z", host: /10.244.1.1, partitions: 4}]
timings:
  description: Seconds spent stopping, starting and in all (handover), or in all (warm).
  returned: when moved
  type: dict
  sample: {stop_seconds: 1.9, start_seconds: 3.1, total_seconds: 5.0}
cooldown_remaining:
  description: Seconds of cool-down left; the workload was not moved when this is above zero.
  returned: always
  type: float
  sample: 0
rolled_back:
  description: Whether the workload was moved back after a failed move (the task then fails).
  returned: always
  type: bool
  sample: false
actions:
  description: What was done (or would be done in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: ["hand over Deployment edge/traffic-detector from region a to region b (nodes edge-b-1)"]
"""

from ansible_collections.streamops.day2.plugins.module_utils._k8s import K8sClient, check_library, k8s_argument_spec, WORKLOAD_KINDS
from ansible_collections.streamops.day2.plugins.module_utils._kafka import KafkaModule
from ansible_collections.streamops.day2.plugins.module_utils._relocate import Relocation


class RelocateModule(KafkaModule):
    """A Kafka module that also holds a Kubernetes connection."""

    k8s = None

    def close(self):
        super().close()
        if self.k8s is not None:
            self.k8s.close()


def main():
    module = RelocateModule(
        argument_spec=k8s_argument_spec(
            kind=dict(type="str", choices=list(WORKLOAD_KINDS), default="Deployment"),
            name=dict(type="str", required=True),
            namespace=dict(type="str", default="default"),
            group=dict(type="str", required=True),
            regions=dict(type="list", elements="str", required=True, aliases=["region"]),
            region_label=dict(type="str", default="topology.kubernetes.io/region"),
            placement=dict(type="str", choices=["node_selector", "affinity"], default="node_selector"),
            strategy=dict(type="str", choices=["handover", "warm"], default="handover"),
            wait_timeout=dict(type="float", default=180),
            settle_time=dict(type="float", default=1),
            min_members=dict(type="int", default=1),
            reason=dict(type="str"),
            rotate=dict(type="bool", default=False),
            cooldown=dict(type="float", default=0),
        ),
        supports_check_mode=True,
    )
    check_library(module)

    def work(module):
        if not module.params["regions"]:
            module.fail_json(msg="regions is empty; name at least one region to move to.")
        module.k8s = K8sClient(module.params)
        result = Relocation(module, module.k8s, module).run()
        if not module._diff:
            result.pop("diff", None)
        return result

    module.run(work)


if __name__ == "__main__":
    main()
