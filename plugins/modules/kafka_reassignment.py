#!/usr/bin/python
# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: kafka_reassignment
short_description: Execute or cancel a Kafka partition reassignment plan, in batches and under a throttle
version_added: 0.1.0
description:
  - Executes a reassignment plan, the JSON C(kafka-reassign-partitions.sh --execute) reads, through the
    AlterPartitionReassignments API (KIP-455), or cancels the moves in flight.
  - 'Before anything moves, the plan is checked against the cluster: unknown topics, partitions or brokers, offline
    brokers and replication factor changes are refused with one message naming them all.'
  - Moves start in a sliding window that keeps at most O(max_concurrent_moves) in flight in the cluster and
    O(max_concurrent_moves_per_broker) per broker (a move occupies the broker it copies from, the leader, and the
    brokers it copies to), in the order O(order) gives.
  - The replication throttle is set exactly as Kafka's own tool sets it (the broker rates
    C(leader.replication.throttled.rate) and C(follower.replication.throttled.rate) on every broker that sends or
    receives, and the topic lists C(leader.replication.throttled.replicas) and C(follower.replication.throttled.replicas)),
    and it is removed at the end of the run, also when the run fails, unless O(keep_throttle=true).
  - Partitions already at their target are skipped and moves already running towards it are adopted, so running the
    task again after an interruption resumes where the first run stopped.
  - After the moves, preferred leaders are elected for the plan's partitions (O(elect_leaders)).
author:
  - streamops.day2 engineers (@streamops)
extends_documentation_fragment:
  - streamops.day2._kafka
  - streamops.day2._attributes
  - streamops.day2._attributes.ACTIONGROUP_KAFKA
attributes:
  check_mode:
    support: full
    details: Checks the plan against the cluster and lists the moves, the batches they would run in, the leader elections and
      the throttle left-overs that would be removed, without changing anything.
  diff_mode:
    support: full
    details: The replicas of the partitions that move, before and after, as two reassignment plans.
  idempotent:
    support: full
    details: A plan whose partitions are all at their target changes nothing.
options:
  state:
    description:
      - V(present) executes the plan.
      - V(absent) cancels the moves of the plan that are in flight (every move in flight when no plan is given);
        Kafka puts their partitions back on their original replicas. The throttle is removed too.
    type: str
    choices: [present, absent]
    default: present
  plan:
    description:
      - 'The plan, as a dict or its JSON text: V({"version": 1, "partitions": [{"topic": "orders", "partition": 0, "replicas": [4, 2, 3]}]}).'
      - The first replica of each partition is its preferred leader. C(log_dirs) entries other than V(any) are refused.
      - The C(plan) return value of M(streamops.day2.kafka_rebalance_plan) can be given as it is.
    type: raw
  plan_file:
    description: Path of a JSON file holding the plan, on the host that runs the module.
    type: path
  fingerprint:
    description:
      - The approved plan's fingerprint (C(sha256:...), as returned by a check-mode run of this module).
      - When given, a plan with another fingerprint is refused before anything moves, so what runs is what was approved.
      - The fingerprint depends on the partitions and their replica lists only (not on entry order or JSON layout).
    type: str
  throttle:
    description:
      - Replication throttle per broker, in bytes per second, or a size per second such as V(50MB), V(50MiB/s) (decimal units
        are powers of 1000, binary units powers of 1024).
      - Without it the moves are not throttled.
    type: raw
  keep_throttle:
    description:
      - Leave the throttle in place at the end of the run (and after a failure).
      - With V(false) it is always removed at the end, except when O(wait=false) leaves moves running, which need it;
        a later run of the task removes it once they are done.
    type: bool
    default: false
  max_concurrent_moves:
    description: Moves in flight at once in the whole cluster.
    type: int
    default: 50
  max_concurrent_moves_per_broker:
    description:
      - Moves in flight at once per broker, counted on the broker a move copies from (the partition leader) and on every
        broker it copies to.
      - A move that only changes the replica order (a new preferred leader) copies nothing and takes no broker slot.
    type: int
    default: 5
  order:
    description:
      - Order in which moves start. Strategies chain, the first decides and the next ones break ties; the plan's own order
        breaks the last ties.
      - V(small_first) and V(large_first) order by bytes to copy; V(under_replicated_last) postpones partitions that already
        lack an in-sync replica; V(plan) keeps the plan's order.
    type: list
    elements: str
    choices: [small_first, large_first, under_replicated_last, plan]
    default: [under_replicated_last, small_first]
  wait:
    description:
      - Wait until every move is done, starting new moves as earlier ones finish, then elect leaders and remove the throttle.
      - With V(false), start the moves the caps allow and return; run the task again to start more and to finish.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds the whole run may take. When it runs out the task fails, the moves still running keep running (run the task
        again to resume, or with O(state=absent) to cancel them) and the throttle is removed unless O(keep_throttle=true).
      - With O(state=absent), seconds to wait for the cancellations to show.
    type: float
    default: 3600
  poll_interval:
    description: Seconds between two looks at the moves in flight.
    type: float
    default: 1
  elect_leaders:
    description: After the moves, elect the preferred (first) replica as leader of every partition of the plan that is not led by it.
    type: bool
    default: true
notes:
  - Uses kafka-python for AlterPartitionReassignments, ListPartitionReassignments, DescribeLogDirs and DescribeCluster
    (librdkafka lacks them), and confluent-kafka for metadata, configurations and leader elections.
  - 'A broker that is offline at the end of a run keeps the throttle rates it had: Kafka only accepts a broker''s
    configuration through that broker. The next run of the task, or O(state=absent), removes them once it is back.'
  - For runs longer than the connection to the host allows, use C(async) and C(poll) on the task.
requirements:
  - confluent-kafka >= 2.3
  - kafka-python >= 2.1
seealso:
  - module: streamops.day2.kafka_rebalance_plan
  - module: streamops.day2.kafka_topic
  - name: Kafka operations, expanding your cluster
    description: Kafka's own tool and its throttle semantics.
    link: https://kafka.apache.org/documentation/#basic_ops_cluster_expansion
"""

EXAMPLES = r"""
- name: See what a plan would do, and its fingerprint
  streamops.day2.kafka_reassignment:
    plan_file: /var/tmp/rebalance-plan.json
    throttle: 50MB
  check_mode: true
  register: preview

- name: Execute exactly the approved plan, 50 MB/s per broker, 3 moves per broker at a time
  streamops.day2.kafka_reassignment:
    plan_file: /var/tmp/rebalance-plan.json
    fingerprint: "{{ approved_fingerprint }}"
    throttle: 50MB
    max_concurrent_moves_per_broker: 3
    order: [under_replicated_last, large_first]
    wait_timeout: 7200

- name: Move one partition, given inline
  streamops.day2.kafka_reassignment:
    plan:
      version: 1
      partitions:
        - {topic: orders, partition: 0, replicas: [2, 3, 1]}
    bootstrap_servers: [kafka-1:9092]

- name: Start the moves and return at once (a later run finishes them and removes the throttle)
  streamops.day2.kafka_reassignment:
    plan: "{{ plan }}"
    throttle: 20MiB/s
    wait: false

- name: Cancel every reassignment in flight and remove the throttle
  streamops.day2.kafka_reassignment:
    state: absent
"""

RETURN = r"""
fingerprint:
  description: Fingerprint of the plan; give it as O(fingerprint) to make sure a later run executes this very plan.
  returned: when a plan is given
  type: str
  sample: sha256:9f2c0e4b8a1d47e3b6f5c2a19d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e
actions:
  description: What was done (or would be done in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: ["throttle 50.0 MB/s on brokers 1,2,3 and topics orders", "move orders-0, orders-3", "elect preferred leaders of orders-0",
           "remove throttle from brokers 1,2,3 and topics orders"]
moves:
  description: The plan's partitions that were not at their target when the run began.
  returned: with O(state=present)
  type: list
  elements: dict
  contains:
    topic:
      description: Topic.
      type: str
    partition:
      description: Partition number.
      type: int
    before:
      description: Replicas before the move.
      type: list
      elements: int
    after:
      description: Target replicas.
      type: list
      elements: int
    bytes:
      description: Bytes to copy (size of one replica times the replicas added).
      type: int
    status:
      description: V(moved), V(in_flight), V(pending) (not started), or V(would_move) in check mode.
      type: str
    finished_at:
      description: Seconds into the run when the move was seen done.
      type: float
      returned: for moves done in this run
  sample: [{topic: orders, partition: 0, before: [1, 2], after: [2, 3], bytes: 5242880, status: moved, finished_at: 4.2}]
batches:
  description:
    - The moves started together, with the second of the run they started at.
    - In check mode, the waves the moves would run in if each finished before the next started, in the same shape (C(at) null).
  returned: with O(state=present)
  type: list
  elements: dict
  contains:
    at:
      description: Seconds into the run when the batch was submitted; V(null) in check mode.
      type: float
    partitions:
      description: The partitions of the batch (C(topic-partition)).
      type: list
      elements: str
  sample: [{at: 0.1, partitions: [orders-0, orders-3]}, {at: 4.3, partitions: [orders-1]}]
progress:
  description: How far the run got (also returned when it fails).
  returned: with O(state=present)
  type: dict
  contains:
    partitions:
      description: Partitions in the plan.
      type: int
    at_target_before:
      description: Partitions already at their target when the run began (skipped).
      type: int
    moved:
      description: Moves completed by this run (including adopted ones).
      type: int
    in_flight:
      description: Moves still running when the run ended.
      type: int
    pending:
      description: Moves not started.
      type: int
    replica_moves:
      description: Replicas the moves of this run add to brokers that did not hold them (the planner's count of moves).
      type: int
    bytes_total:
      description: Bytes the moves of this run copy.
      type: int
    bytes_moved:
      description: Bytes of the completed moves.
      type: int
    batches:
      description: Submissions made.
      type: int
    elapsed_seconds:
      description: Duration of the run.
      type: float
  sample: {partitions: 6, at_target_before: 2, moved: 4, in_flight: 0, pending: 0, replica_moves: 4, bytes_total: 20971520, bytes_moved: 20971520,
           batches: 2, elapsed_seconds: 8.4}
estimated_seconds:
  description: Lower bound of the time the moves take under the throttle (the busiest broker sets the pace); null without throttle.
  returned: with O(state=present)
  type: float
  sample: 12.5
throttle:
  description: The throttle of the run.
  returned: always
  type: dict
  contains:
    rate:
      description: Bytes per second per broker; null when not throttled.
      type: int
    brokers:
      description: Brokers that got the throttle rates.
      type: list
      elements: int
    topics:
      description: Topics that got throttled-replica lists.
      type: list
      elements: str
    removed:
      description: Brokers and topics the throttle was (or in check mode, would be) removed from at the end.
      type: dict
    kept:
      description: Whether the throttle was left in place.
      type: bool
    left_on:
      description: Offline brokers that may keep throttle rates until they are back and the task runs again.
      type: list
      elements: int
  sample: {rate: 50000000, brokers: [1, 2, 3], topics: [orders], removed: {brokers: [1, 2, 3], topics: [orders]}, kept: false, left_on: []}
leader_elections:
  description: Partitions whose preferred leader was (or in check mode, would be) elected.
  returned: with O(state=present)
  type: list
  elements: str
  sample: [orders-0]
rollback_plan:
  description: A plan that puts the partitions that move back on their replicas before the run (what Kafka's tool tells you to save).
  returned: with O(state=present)
  type: dict
  sample: {version: 1, partitions: [{topic: orders, partition: 0, replicas: [1, 2]}]}
cancelled:
  description: The reassignments cancelled (or that would be), with their replicas while moving and after the cancel.
  returned: with O(state=absent)
  type: list
  elements: dict
  sample: [{topic: orders, partition: 0, before: [2, 3, 1], after: [1]}]
diff:
  description: Replicas of the partitions that move (or are cancelled), before and after, each as a reassignment plan.
  returned: when run with C(--diff)
  type: dict
"""

from ansible_collections.streamops.day2.plugins.module_utils._kafka import KafkaModule
from ansible_collections.streamops.day2.plugins.module_utils._reassignment.executor import run
from ansible_collections.streamops.day2.plugins.module_utils._reassignment.schedule import DEFAULT_ORDER, ORDERS


def main():
    kafka = KafkaModule(
        argument_spec=dict(
            state=dict(type="str", default="present", choices=["present", "absent"]),
            plan=dict(type="raw"),
            plan_file=dict(type="path"),
            fingerprint=dict(type="str"),
            throttle=dict(type="raw"),
            keep_throttle=dict(type="bool", default=False),
            max_concurrent_moves=dict(type="int", default=50),
            max_concurrent_moves_per_broker=dict(type="int", default=5),
            order=dict(type="list", elements="str", choices=list(ORDERS), default=list(DEFAULT_ORDER)),
            wait=dict(type="bool", default=True),
            wait_timeout=dict(type="float", default=3600.0),
            poll_interval=dict(type="float", default=1.0),
            elect_leaders=dict(type="bool", default=True),
        ),
        needs_kafka_python=True,
        mutually_exclusive=[("plan", "plan_file")],
        required_if=[("state", "present", ("plan", "plan_file"), True)],
        supports_check_mode=True,
    )
    kafka.run(run)


if __name__ == "__main__":
    main()
