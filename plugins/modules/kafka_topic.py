#!/usr/bin/python
# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: kafka_topic
short_description: Manage Kafka topics
version_added: 0.1.0
description:
  - Creates, grows and deletes a Kafka topic, and sets its configuration incrementally.
  - Only the configuration keys given in O(config) are compared and changed; every other key keeps its current value.
  - Partitions can only be added. Replication factor and replica placement are set at creation;
    to move replicas of an existing topic use M(streamops.day2.kafka_reassignment).
author:
  - streamops.day2 engineers (@streamops)
extends_documentation_fragment:
  - streamops.day2._kafka
  - streamops.day2._attributes
  - streamops.day2._attributes.ACTIONGROUP_KAFKA
attributes:
  check_mode:
    support: full
    details: A topic that would be created is validated by the brokers (C(validate_only)) without being created.
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  name:
    description: Name of the topic.
    type: str
    required: true
    aliases: [topic]
  state:
    description: Whether the topic should exist.
    type: str
    choices: [present, absent]
    default: present
  partitions:
    description:
      - Number of partitions.
      - Required to create a topic unless O(replica_assignment) is given.
      - On an existing topic it may only grow; a smaller number is an error.
    type: int
  replication_factor:
    description:
      - Replication factor at creation. Defaults to the brokers' C(default.replication.factor).
      - On an existing topic a different value is an error (it changes only by reassignment).
    type: int
  replica_assignment:
    description:
      - Broker ids of each partition's replicas, first one the preferred leader, for example V([[1, 2], [2, 3], [3, 1]]).
      - Used at creation, and for the new partitions when the topic grows. Its length sets the partition count
        when O(partitions) is not given.
      - A difference on existing partitions is reported as a warning, never moved.
      - A list of lists, or the same as JSON text (as an ad-hoc command gives it, C(-a 'replica_assignment=[[1,2],[2,3]]')).
    type: raw
  config:
    description:
      - 'Topic configuration entries to set, for example V({"retention.ms": 86400000, "cleanup.policy": "compact"}).'
      - Values are compared as the strings Kafka stores for the topic (its topic-level overrides).
      - A value of V(null) removes the topic-level override, so the key follows the broker's setting again.
      - Keys not listed are left alone.
    type: dict
    default: {}
  wait_timeout:
    description: Seconds to wait for a created, grown or deleted topic to show in the metadata of the brokers.
    type: float
    default: 30
notes:
  - Uses the Kafka Admin API through confluent-kafka (librdkafka).
requirements:
  - confluent-kafka >= 2.3
seealso:
  - module: streamops.day2.kafka_reassignment
"""

EXAMPLES = r"""
- name: Orders topic with six partitions, replicated three times, kept a day
  streamops.day2.kafka_topic:
    name: orders
    partitions: 6
    replication_factor: 3
    config:
      retention.ms: 86400000
      min.insync.replicas: 2
    bootstrap_servers: [kafka-1:9092, kafka-2:9092]

- name: Place the replicas of a new topic explicitly
  streamops.day2.kafka_topic:
    name: audit
    replica_assignment: [[1, 2, 3], [2, 3, 1], [3, 1, 2]]

- name: Put retention.ms back to the broker default, leave the rest alone
  streamops.day2.kafka_topic:
    name: orders
    config:
      retention.ms: null

- name: Remove a topic
  streamops.day2.kafka_topic:
    name: scratch
    state: absent
"""

RETURN = r"""
topic:
  description: The topic after the task (as it would be, in check mode). Empty when it is absent.
  returned: always
  type: dict
  contains:
    name:
      description: Topic name.
      type: str
      sample: orders
    partitions:
      description: Number of partitions.
      type: int
      sample: 6
    replication_factor:
      description: Replicas per partition.
      type: int
      sample: 3
    replicas:
      description:
        - Replica broker ids per partition, indexed by partition number.
        - In check mode, a partition the brokers will place (created without O(replica_assignment)) is V([]), since Kafka
          picks its brokers when it creates it.
      type: list
      elements: list
      sample: [[1, 2, 3], [2, 3, 1]]
    config:
      description: The topic-level values of the configuration keys given in O(config); V(null) where the topic inherits the broker's setting.
      type: dict
      sample: {retention.ms: "86400000"}
actions:
  description: What was done (or would be done in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: ["create topic orders with 6 partitions", "set retention.ms=86400000"]
diff:
  description: The topic before and after, with only the configuration keys given in O(config).
  returned: when run with C(--diff)
  type: dict
"""

import time

from ansible_collections.streamops.day2.plugins.module_utils._kafka import KafkaError, KafkaModule
from ansible_collections.streamops.day2.plugins.module_utils._topics import normalize_config, plan_topic_change

try:
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource, NewPartitions, NewTopic
except ImportError:
    pass  # reported by KafkaModule through missing_required_lib


def current_topic(kafka, name, config_keys):
    """The topic as the brokers see it, or None: partitions, replicas and the asked-for config values."""
    topic = kafka.metadata(topic=name).topics.get(name)
    if topic is None or topic.error is not None:
        return None
    partitions = sorted(topic.partitions.values(), key=lambda p: p.id)
    current = dict(
        name=name,
        partitions=len(partitions),
        replication_factor=len(partitions[0].replicas) if partitions else 0,
        replicas=[list(p.replicas) for p in partitions],
        config={},
    )
    if config_keys:
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        entries = kafka.wait_for(kafka.admin.describe_configs([resource])[resource])
        current["config"] = {key: _topic_override(entries.get(key)) for key in config_keys}
    return current


def default_replication_factor(kafka):
    """The brokers' default.replication.factor (what a topic created without one gets), or None when unknown."""
    brokers = sorted(kafka.metadata().brokers)
    if not brokers:
        return None
    resource = ConfigResource(ConfigResource.Type.BROKER, str(brokers[0]))
    entry = kafka.wait_for(kafka.admin.describe_configs([resource])[resource]).get("default.replication.factor")
    try:
        return int(entry.value) if entry is not None else None
    except (TypeError, ValueError):
        return None


def _topic_override(entry):
    """The topic-level value of a key, or None when the topic inherits it (so `key: null` matches)."""
    if entry is None or ConfigSource(entry.source) != ConfigSource.DYNAMIC_TOPIC_CONFIG:
        return None
    return entry.value


def apply_change(kafka, change, params):
    name = params["name"]
    if change.delete:
        kafka.wait_for(kafka.admin.delete_topics([name], operation_timeout=kafka.timeout)[name])
        wait_until(kafka, params, lambda t: t is None)
        return
    if change.create:
        kafka.wait_for(kafka.admin.create_topics([new_topic(change)], operation_timeout=kafka.timeout)[name])
        wait_until(kafka, params, lambda t: t is not None and t["partitions"] == change.after["partitions"])
        return
    if change.add_partitions:
        placement = dict(replica_assignment=change.new_partition_replicas) if change.new_partition_replicas else {}
        grow = NewPartitions(name, change.after["partitions"], **placement)
        kafka.wait_for(kafka.admin.create_partitions([grow], operation_timeout=kafka.timeout)[name])
        wait_until(kafka, params, lambda t: t is not None and t["partitions"] == change.after["partitions"])
    if change.config_updates:
        resource = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=config_entries(change))
        kafka.wait_for(kafka.admin.incremental_alter_configs([resource])[resource])


def new_topic(change):
    after = change.after
    config = {k: v for k, v in after["config"].items() if v is not None}
    if change.new_partition_replicas:
        # librdkafka wants the partition count to match the assignment (and no replication factor).
        return NewTopic(after["name"], num_partitions=len(change.new_partition_replicas),
                        replica_assignment=change.new_partition_replicas, config=config)
    return NewTopic(after["name"], num_partitions=after["partitions"],
                    replication_factor=after["replication_factor"] or -1, config=config)


def config_entries(change):
    return [
        ConfigEntry(key, value, incremental_operation=AlterConfigOpType.DELETE if value is None else AlterConfigOpType.SET)
        for key, value in change.config_updates.items()
    ]


def validate_creation(kafka, change):
    """Check mode: let the brokers validate the topic without creating it."""
    name = change.after["name"]
    kafka.wait_for(kafka.admin.create_topics([new_topic(change)], validate_only=True)[name])


def wait_until(kafka, params, done):
    deadline = time.monotonic() + params["wait_timeout"]
    while True:
        topic = current_topic(kafka, params["name"], ())
        if done(topic):
            return topic
        if time.monotonic() > deadline:
            raise KafkaError("Topic %s did not reach the requested state within %gs; raise wait_timeout or check the brokers."
                             % (params["name"], params["wait_timeout"]))
        time.sleep(0.2)


def run(kafka):
    params = kafka.params
    desired_config = normalize_config(params["config"])
    before = current_topic(kafka, params["name"], sorted(desired_config))
    try:
        change = plan_topic_change(before, params, desired_config)
    except ValueError as e:
        raise KafkaError(str(e))
    for warning in change.warnings:
        kafka.warn(warning)
    if change.create and not change.after["replication_factor"]:
        factor = default_replication_factor(kafka)
        if factor:
            change.after["replication_factor"] = factor
            change.actions[0] += ", replication factor %d (the brokers' default.replication.factor)" % factor
    if change.changed:
        if kafka.check_mode:
            if change.create:
                validate_creation(kafka, change)
        else:
            apply_change(kafka, change, params)
            if not change.delete:
                # Partitions and replicas as the brokers now hold them; the config as set (a read-back
                # right after a change may still see the old values while brokers catch up).
                # Read through wait_until: the broker asked may not know of a topic created a moment ago on another one.
                placed = wait_until(kafka, params, lambda t: t is not None and t["partitions"] == change.after["partitions"])
                change.after = dict(placed, config=change.after["config"])
    result = dict(changed=change.changed, topic=change.after or {}, actions=change.actions)
    if kafka._diff:
        result["diff"] = dict(before=_diff_view(before), after=_diff_view(change.after))
    return result


def _diff_view(topic):
    if not topic:
        return {}
    return {k: v for k, v in topic.items() if k != "replicas"}


def main():
    kafka = KafkaModule(
        argument_spec=dict(
            name=dict(type="str", required=True, aliases=["topic"]),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            partitions=dict(type="int"),
            replication_factor=dict(type="int"),
            replica_assignment=dict(type="raw"),
            config=dict(type="dict", default={}),
            wait_timeout=dict(type="float", default=30.0),
        ),
        supports_check_mode=True,
    )
    kafka.run(run)


if __name__ == "__main__":
    main()
