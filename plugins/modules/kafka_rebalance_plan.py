#!/usr/bin/python
# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: kafka_rebalance_plan
short_description: Plan a Kafka partition rebalance with the bundled hill-climbing optimiser
version_added: 0.1.0
description:
  - Builds a cluster model, live from the brokers or from O(cluster_model) / O(cluster_model_file), and searches for
    a cheaper placement of replicas and leaders under weighted goals (network in and out, disk, replica and leader
    counts, per-topic spread, data movement, leader changes, and any custom goal) without breaking hard constraints
    (replication factor, distinct brokers, rack awareness, drained brokers, capacity limits, excluded topics).
  - Returns the plan in the exact JSON format of C(kafka-reassign-partitions.sh --execute), ready for
    M(streamops.day2.kafka_reassignment), and a summary of the load per broker before and after.
  - Only reads the cluster. The task reports a change only when it writes O(dest) with content different from
    what the file held; planning alone is never a change.
  - The live model takes brokers and racks from DescribeCluster, replicas and leaders from topic metadata, replica
    sizes from DescribeLogDirs (the leader's copy), and rates from two samples O(sample_seconds) apart (produce rate
    from log-end offsets, consume rate from consumer groups' committed offsets, both in bytes through each
    partition's average message size).
  - The goals, formats and the search are described in C(docs/rebalance.md) of the collection.
author:
  - streamops.day2 engineers (@streamops)
extends_documentation_fragment:
  - streamops.day2._kafka
  - streamops.day2._attributes
  - streamops.day2._attributes.ACTIONGROUP_KAFKA
attributes:
  check_mode:
    support: full
    details: Plans as usual; O(dest) is not written, and RV(ignore:changed) says whether it would be.
  diff_mode:
    support: full
    details: Shows the old and new content of O(dest).
  idempotent:
    support: full
    details: On the same model and O(seed) the plan is the same, so O(dest) is not rewritten. A live model changes
      between runs as the traffic does.
options:
  bootstrap_servers:
    description:
      - Kafka brokers to bootstrap from, as C(host:port), to read the model live.
      - Not needed with O(cluster_model) or O(cluster_model_file).
      - If not set, the environment variable E(KAFKA_BOOTSTRAP_SERVERS) is used (comma separated).
    required: false
  cluster_model:
    description:
      - The cluster model as a dictionary with C(brokers), C(partitions) and optionally C(drain_brokers), in the format of
        C(docs/rebalance.md).
      - Mutually exclusive with O(cluster_model_file). Without either, the model is read live from the brokers.
    type: dict
  cluster_model_file:
    description:
      - Path of a JSON or YAML file holding the cluster model, on the host the module runs on.
    type: path
  sample_seconds:
    description:
      - For a live model, seconds between the two samples the rates are measured from.
      - V(0) skips sampling; every rate is then 0 and the plan balances disk, replica and leader counts only.
    type: float
    default: 10
  broker_capacity:
    description:
      - For a live model, the capacity of every broker, with any of the keys C(nw_in), C(nw_out) (bytes/s) and
        C(disk) (bytes). Limits apply at O(capacity_threshold) of it, and targets follow capacity.
    type: dict
  capacity_threshold:
    description: Fraction of a declared capacity no broker may exceed.
    type: float
    default: 0.8
  goal_weights:
    description:
      - Weights of the built-in goals, overriding the defaults; V(0) switches a goal off.
      - 'Goals and default weights: C(nw_in) 1, C(nw_out) 1, C(disk) 1, C(replicas) 0.5, C(leaders) 0.5,
        C(peaks) 100 (no broker above max(1.03, 1.01 x floor) of its target), C(topic_spread) 0.02, C(movement) 0.02 (bytes
        moved), C(replica_moves) 0.01, C(leader_changes) 0.005.'
      - Higher C(movement) and C(replica_moves) weights give plans that move less for slightly less even loads.
    type: dict
  balance_bands:
    description:
      - 'Per resource (C(nw_in), C(nw_out), C(disk), C(replicas), C(leaders)), a fraction such as V(0.05): deviations
        within that share of a broker''s target cost nothing, so the plan stops moving data once every broker is
        inside the band.'
      - Without a band a resource is balanced as evenly as the movement cost allows.
    type: dict
  custom_goals:
    description:
      - Goals of your own, each a class importable on the host the module runs on (see C(docs/rebalance.md)).
    type: list
    elements: dict
    suboptions:
      class:
        description: Dotted path of the goal class, for example V(mygoals.AvoidBrokersGoal).
        type: str
        required: true
      weight:
        description: Weight of the goal. Defaults to the class's C(default_weight).
        type: float
      options:
        description: Keyword arguments for the class.
        type: dict
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
    default: []
  excluded_topics:
    description: Topics the plan must leave exactly as they are (their load still counts on their brokers).
    type: list
    elements: str
    default: []
  time_limit:
    description:
      - Seconds the search may take; the best plan found by then is returned.
      - Unset, 60 seconds, or 50 seconds per million replicas on a larger cluster (150 on 3,000,000 replicas, where the
        search needs about that long to stop on its own); RV(summary.time_limit) says which limit applied.
      - With O(frontier), each plan of the frontier has this much time of its own.
    type: float
  frontier:
    description:
      - Fractions such as V([0.25, 0.5]) of the full plan's bytes to move. Besides the full plan, the planner plans again
        under a budget of each fraction and returns every plan with its figures as RV(frontier), so that an operator or
        an approval gate can pick a point on the trade-off between balance and data moved.
      - RV(plan) (and O(dest)) is always the full plan, which wins by default; to execute another point, pass its
        RV(frontier[].plan) to M(streamops.day2.kafka_reassignment).
      - Each point costs one more search (see O(time_limit)).
    type: list
    elements: float
  seed:
    description: Seed of the search's random choices; the same model and seed give the same plan.
    type: int
    default: 0
  dest:
    description:
      - Path to write the plan to, as JSON. Written only when its content would change.
    type: path
  return_model:
    description:
      - Return the cluster model the plan was made from as RV(model), for example to save a live model and plan on it
        again offline with the P(streamops.day2.rebalance_plan#filter) filter.
    type: bool
    default: false
notes:
  - The live model needs DescribeLogDirs, which only kafka-python offers, besides confluent-kafka.
  - The planner is pure Python (no numpy, which is not a dependency of the collection, and the search is a long chain of small
    dependent steps that arrays would not speed up); on a 2-core machine a 10,000-partition cluster plans in about 1.5 seconds and a
    100,000-partition, 200-broker cluster in about 9 seconds of CPU on the classic models and 17-32 on the hard (badly skewed) ones,
    in 250-340 MB (C(tests/bench/README.md) has the measurements).
requirements:
  - confluent-kafka >= 2.3
  - kafka-python >= 2.1 (live model only)
seealso:
  - module: streamops.day2.kafka_reassignment
  - plugin: streamops.day2.rebalance_plan
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Plan from the live cluster, sampling traffic for 30 seconds
  streamops.day2.kafka_rebalance_plan:
    bootstrap_servers: [kafka-1:9092, kafka-2:9092]
    sample_seconds: 30
    dest: /var/tmp/rebalance.json
  register: planned

- name: Show how much data the plan moves
  ansible.builtin.debug:
    msg: "{{ planned.summary.replica_moves }} replica moves, {{ planned.summary.bytes_to_move | human_readable }}"

- name: Decommission broker 6, moving at most 500 replicas, leaving the audit topic alone
  streamops.day2.kafka_rebalance_plan:
    drain_brokers: [6]
    max_moves: 500
    excluded_topics: [audit]

- name: Plan on a saved model, network balance first, with a goal of our own
  streamops.day2.kafka_rebalance_plan:
    cluster_model_file: /srv/kafka/model.json
    goal_weights:
      nw_in: 2
      nw_out: 2
      movement: 0.05
    custom_goals:
      - class: mygoals.AvoidBrokersGoal
        weight: 1
        options:
          topics: [audit]
          brokers: [3]
    seed: 7

- name: Plans at a quarter, half and all of the full plan's movement, for an approval gate
  streamops.day2.kafka_rebalance_plan:
    cluster_model_file: /srv/kafka/model.json
    frontier: [0.25, 0.5]
  register: options

- name: Show the trade-off
  ansible.builtin.debug:
    msg: "{{ options.frontier | map(attribute='max_to_mean') | zip(options.frontier | map(attribute='bytes_to_move')) }}"

- name: Execute the half-movement plan instead of the full one
  streamops.day2.kafka_reassignment:
    plan: "{{ (options.frontier | selectattr('fraction', 'equalto', 0.5) | first).plan }}"
    order: [plan]
"""

RETURN = r"""
plan:
  description:
    - The reassignment, exactly as C(kafka-reassign-partitions.sh --execute) and M(streamops.day2.kafka_reassignment)
      read it. Only partitions whose replica list changes; the first replica of each is its preferred (planned) leader.
  returned: always
  type: dict
  contains:
    version:
      description: Format version.
      type: int
      sample: 1
    partitions:
      description: One entry per changed partition.
      type: list
      elements: dict
      sample: [{"topic": "orders", "partition": 0, "replicas": [4, 2, 3]}]
summary:
  description:
    - Load per broker before and after, for each of V(nw_in), V(nw_out) (bytes/s), V(disk) (bytes), V(replicas) and
      V(leaders). C(before) covers every broker, C(after) the brokers kept (drained brokers end empty).
  returned: always
  type: dict
  contains:
    nw_in:
      description: C(before) and C(after), each with C(min), C(max), C(mean), C(sd) (standard deviation) and C(max_to_mean).
      type: dict
      sample: {"before": {"min": 0, "max": 9.1e7, "mean": 5.0e7, "sd": 2.7e7, "max_to_mean": 1.82},
               "after": {"min": 4.9e7, "max": 5.1e7, "mean": 5.0e7, "sd": 4.1e5, "max_to_mean": 1.01}}
    nw_out:
      description: As RV(summary.nw_in), for the bytes/s the brokers send.
      type: dict
    disk:
      description: As RV(summary.nw_in), for bytes on disk.
      type: dict
    replicas:
      description: As RV(summary.nw_in), for replica counts.
      type: dict
    leaders:
      description: As RV(summary.nw_in), for leader counts.
      type: dict
    replica_moves:
      description: Replicas placed on a broker that did not hold them.
      type: int
      sample: 412
    leader_changes:
      description: Partitions whose leader changes.
      type: int
      sample: 130
    bytes_to_move:
      description: Bytes copied between brokers to execute the plan.
      type: int
      sample: 73014444032
    partitions_changed:
      description: Number of entries in RV(plan.partitions).
      type: int
      sample: 480
    run_time:
      description: Seconds spent planning (model checks and search), not reading the cluster.
      type: float
      sample: 1.7
    stop_reason:
      description:
        - V(converged) when no action was worth taking any more, V(diminishing returns) when the last stretch of the search
          lowered the cost by less than 0.5% of the cost still left, V(time limit) when O(time_limit) cut it short.
      type: str
      sample: converged
    time_limit:
      description: Seconds the search was allowed (O(time_limit), or the default for the cluster's size).
      type: float
      sample: 60.0
    actions_evaluated:
      description: Candidate actions the search scored.
      type: int
      sample: 250000
    goals:
      description: Each goal's weighted cost before and after.
      type: dict
      sample: {"nw_in": {"before": 0.21, "after": 0.0002}}
frontier:
  description:
    - With O(frontier), one entry per fraction in increasing order and the full plan last (C(fraction) V(1.0)). A fraction
      whose budget cannot hold the forced moves (draining, rack repair) is left out with a warning.
  returned: when O(frontier) is set
  type: list
  elements: dict
  contains:
    fraction:
      description: The share of the full plan's bytes to move this plan was limited to.
      type: float
      sample: 0.25
    max_bytes:
      description: The byte budget it was planned under (V(null) for the full plan without O(max_bytes)).
      type: int
      sample: 18253611008
    plan:
      description: The reassignment, in the format of RV(plan).
      type: dict
    summary:
      description: Its figures, in the format of RV(summary).
      type: dict
    max_to_mean:
      description: Per resource, the per-broker max/mean after this plan (a copy from RV(frontier[].summary) for a quick look).
      type: dict
      sample: {"nw_in": 1.04, "nw_out": 1.03, "disk": 1.05, "replicas": 1.01, "leaders": 1.01}
    bytes_to_move:
      description: Bytes this plan copies between brokers.
      type: int
      sample: 17011901440
    replica_moves:
      description: Replica moves of this plan.
      type: int
      sample: 212
model:
  description: The cluster model the plan was made from, in the format of O(cluster_model).
  returned: when O(return_model=true)
  type: dict
  sample: {"brokers": [{"id": 1, "rack": "a"}], "partitions": [{"topic": "orders", "partition": 0, "replicas": [1],
           "leader": 1, "size": 1048576, "nw_in": 2000.0, "nw_out": 4000.0}]}
dest:
  description: Path the plan was written to (or would be, in check mode).
  returned: when O(dest) is set
  type: str
  sample: /var/tmp/rebalance.json
"""

import json
import os
import tempfile

from ansible.module_utils.basic import env_fallback, missing_required_lib
from ansible_collections.streamops.day2.plugins.module_utils._kafka import KAFKA_PYTHON_IMPORT_ERROR, KafkaError, KafkaModule
from ansible_collections.streamops.day2.plugins.module_utils.rebalance.live import LiveModelReader
from ansible_collections.streamops.day2.plugins.module_utils.rebalance.model import ModelError, load_model_file
from ansible_collections.streamops.day2.plugins.module_utils.rebalance.plan import plan_rebalance

PLANNER_OPTIONS = ("goal_weights", "balance_bands", "custom_goals", "max_moves", "max_bytes", "max_leader_moves", "drain_brokers",
                   "excluded_topics", "capacity_threshold", "time_limit", "seed", "frontier")


def read_model(kafka):
    params = kafka.params
    if params["cluster_model"] is not None:
        return params["cluster_model"]
    if params["cluster_model_file"]:
        return load_model_file(params["cluster_model_file"])
    if not params["bootstrap_servers"]:
        raise ModelError("Give cluster_model, cluster_model_file, or bootstrap_servers to read the model live from the brokers.")
    if params["sample_seconds"] < 0:
        raise ModelError("sample_seconds must be >= 0, got %g." % params["sample_seconds"])
    if KAFKA_PYTHON_IMPORT_ERROR:
        kafka.fail_json(msg=missing_required_lib("kafka-python", reason="to read replica sizes (DescribeLogDirs) for a live model"),
                        exception=KAFKA_PYTHON_IMPORT_ERROR)
    reader = LiveModelReader(kafka, params["sample_seconds"], params["broker_capacity"], params["drain_brokers"])
    model = reader.read()
    for warning in reader.warnings:
        kafka.warn(warning)
    return model


def planner_options(params):
    options = {name: params[name] for name in PLANNER_OPTIONS if params[name] is not None}
    if params["custom_goals"]:
        options["custom_goals"] = [{k: v for k, v in goal.items() if v is not None} for goal in params["custom_goals"]]
    return options


def write_plan(kafka, dest, text):
    """Write text to dest atomically unless it already holds it; returns (changed, old text)."""
    try:
        with open(dest, "r") as handle:
            old = handle.read()
    except FileNotFoundError:
        old = None
    except OSError as e:
        raise KafkaError("Cannot read %s to compare the plan: %s." % (dest, e.strerror))
    if old == text:
        return False, old
    if not kafka.check_mode:
        directory = os.path.dirname(os.path.abspath(dest))
        try:
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".rebalance-plan.")
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
        except OSError as e:
            raise KafkaError("Cannot write the plan to %s: %s." % (dest, e.strerror))
        kafka.atomic_move(tmp, dest)
    return True, old


def run(kafka):
    params = kafka.params
    try:
        model = read_model(kafka)
        result = plan_rebalance(model, **planner_options(params))
    except ModelError as e:
        raise KafkaError(str(e))
    for warning in result.pop("warnings"):
        kafka.warn(warning)
    result["changed"] = False
    if params["return_model"]:
        result["model"] = model
    if params["dest"]:
        text = json.dumps(result["plan"], indent=2) + "\n"
        result["changed"], old = write_plan(kafka, params["dest"], text)
        result["dest"] = params["dest"]
        if kafka._diff:
            result["diff"] = dict(before=old or "", after=text, before_header=params["dest"], after_header=params["dest"])
    return result


def main():
    kafka = KafkaModule(
        argument_spec=dict(
            # Overrides the shared option: not needed when the model is given.
            bootstrap_servers=dict(type="list", elements="str", fallback=(env_fallback, ["KAFKA_BOOTSTRAP_SERVERS"])),
            cluster_model=dict(type="dict"),
            cluster_model_file=dict(type="path"),
            sample_seconds=dict(type="float", default=10.0),
            broker_capacity=dict(type="dict"),
            capacity_threshold=dict(type="float", default=0.8),
            goal_weights=dict(type="dict"),
            balance_bands=dict(type="dict"),
            custom_goals=dict(type="list", elements="dict", options=dict(
                **{"class": dict(type="str", required=True)},
                weight=dict(type="float"),
                options=dict(type="dict"),
            )),
            max_moves=dict(type="int"),
            max_bytes=dict(type="int"),
            max_leader_moves=dict(type="int"),
            drain_brokers=dict(type="list", elements="int", default=[]),
            excluded_topics=dict(type="list", elements="str", default=[]),
            time_limit=dict(type="float"),
            frontier=dict(type="list", elements="float"),
            seed=dict(type="int", default=0),
            dest=dict(type="path"),
            return_model=dict(type="bool", default=False),
        ),
        mutually_exclusive=[("cluster_model", "cluster_model_file")],
        supports_check_mode=True,
    )
    kafka.run(run)


if __name__ == "__main__":
    main()
