# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of kafka_topic: what must change to go from the current topic to the asked one.

Kept free of any Kafka client so it is unit-tested without brokers.
"""

from __future__ import annotations

import json

from dataclasses import dataclass, field


@dataclass
class TopicChange:
    after: dict | None
    create: bool = False
    delete: bool = False
    add_partitions: bool = False
    new_partition_replicas: list = field(default_factory=list)
    config_updates: dict = field(default_factory=dict)
    actions: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    @property
    def changed(self):
        return bool(self.create or self.delete or self.add_partitions or self.config_updates)


def normalize_config(config):
    """Config values as the strings Kafka stores; None stays None (= no topic-level override)."""
    return {str(key): _kafka_string(value) for key, value in (config or {}).items()}


def _kafka_string(value):
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return ",".join(_kafka_string(v) for v in value)
    return str(value)


def parse_assignment(name, assignment):
    """replica_assignment as a list of lists: given as such, or as JSON text (an ad-hoc -a 'replica_assignment=[[1,2]]')."""
    if isinstance(assignment, str):
        text = assignment.strip()
        if not text:
            return []
        try:
            assignment = json.loads(text)
        except ValueError:
            raise ValueError("replica_assignment of topic %s is neither a list of lists of broker ids nor their JSON text "
                             "(for example [[1, 2], [2, 3]]): %r." % (name, assignment))
    if assignment is None:
        return []
    if not isinstance(assignment, (list, tuple)) or not all(isinstance(row, (list, tuple)) for row in assignment):
        raise ValueError("replica_assignment of topic %s must be a list with one list of broker ids per partition "
                         "(for example [[1, 2], [2, 3]]), got %r." % (name, assignment))
    return assignment


def validate_assignment(name, assignment, replication_factor):
    """Every partition gets the same number of distinct integer broker ids."""
    assignment = parse_assignment(name, assignment)
    if not assignment:
        return []
    rows = []
    for index, replicas in enumerate(assignment):
        try:
            if any(isinstance(b, bool) or isinstance(b, float) and not b.is_integer() for b in replicas):
                raise ValueError("not an integer")
            row = [int(b) for b in replicas]
        except (TypeError, ValueError):
            raise ValueError("replica_assignment of topic %s: partition %d has a broker id that is not an integer: %r."
                             % (name, index, replicas))
        if not row:
            raise ValueError("replica_assignment of topic %s: partition %d has no replicas." % (name, index))
        if len(set(row)) != len(row):
            raise ValueError("replica_assignment of topic %s: partition %d names a broker twice: %r." % (name, index, row))
        rows.append(row)
    sizes = {len(r) for r in rows}
    if len(sizes) != 1:
        raise ValueError("replica_assignment of topic %s gives partitions different replica counts (%s); give every partition %s replicas."
                         % (name, ", ".join(str(s) for s in sorted(sizes)), replication_factor or "the same number of"))
    if replication_factor and sizes != {replication_factor}:
        raise ValueError("replica_assignment of topic %s has %d replicas per partition but replication_factor is %d; make them agree."
                         % (name, sizes.pop(), replication_factor))
    return rows


def plan_topic_change(before, params, desired_config):
    """The change from `before` (None if the topic is absent) to what `params` ask for.

    Raises ValueError with one sentence for a request Kafka cannot honour.
    """
    name = params["name"]
    if params["state"] == "absent":
        if before is None:
            return TopicChange(after=None)
        return TopicChange(after=None, delete=True, actions=["delete topic %s" % name])

    for key in ("partitions", "replication_factor"):
        if params.get(key) is not None and params[key] < 1:
            raise ValueError("%s of topic %s must be at least 1, not %d." % (key, name, params[key]))
    assignment = validate_assignment(name, params.get("replica_assignment"), params.get("replication_factor"))
    partitions = params.get("partitions")
    if assignment and partitions is not None and partitions != len(assignment):
        raise ValueError("Topic %s: partitions is %d but replica_assignment lists %d partitions; make them agree."
                         % (name, partitions, len(assignment)))
    partitions = partitions or len(assignment) or None

    if before is None:
        return _creation(name, partitions, params.get("replication_factor"), assignment, desired_config)
    return _update(before, name, partitions, params.get("replication_factor"), assignment, desired_config)


def _creation(name, partitions, replication_factor, assignment, desired_config):
    if partitions is None:
        raise ValueError("Topic %s does not exist; give partitions (or replica_assignment) to create it." % name)
    replication_factor = replication_factor or (len(assignment[0]) if assignment else None)
    # Without an assignment the brokers place the replicas when they create the partitions: [] until then.
    after = dict(name=name, partitions=partitions, replication_factor=replication_factor,
                 replicas=assignment or [[] for unused in range(partitions)], config=dict(desired_config))
    actions = ["create topic %s with %d partitions%s" % (
        name, partitions, ", replication factor %d" % replication_factor if replication_factor else "")]
    actions += ["set %s=%s" % (k, v) for k, v in sorted(desired_config.items()) if v is not None]
    return TopicChange(after=after, create=True, new_partition_replicas=assignment, actions=actions)


def _update(before, name, partitions, replication_factor, assignment, desired_config):
    change = TopicChange(after=dict(before, config=dict(before["config"])))
    if replication_factor is not None and replication_factor != before["replication_factor"]:
        raise ValueError("Topic %s has replication factor %d; it cannot become %d here. Add or remove replicas with "
                         "streamops.day2.kafka_reassignment." % (name, before["replication_factor"], replication_factor))
    if assignment and len(assignment[0]) != before["replication_factor"]:
        raise ValueError("replica_assignment of topic %s gives %d replicas per partition but the topic has replication factor %d."
                         % (name, len(assignment[0]), before["replication_factor"]))

    if partitions is not None and partitions < before["partitions"]:
        raise ValueError("Topic %s has %d partitions and Kafka cannot remove partitions, so partitions=%d is refused; "
                         "recreate the topic to shrink it." % (name, before["partitions"], partitions))
    if partitions is not None and partitions > before["partitions"]:
        change.add_partitions = True
        change.new_partition_replicas = assignment[before["partitions"]:]
        change.after["partitions"] = partitions
        change.after["replicas"] = before["replicas"] + (change.new_partition_replicas
                                                         or [[] for unused in range(partitions - before["partitions"])])
        change.actions.append("add %d partitions to topic %s (%d -> %d)"
                              % (partitions - before["partitions"], name, before["partitions"], partitions))

    moved = [i for i, row in enumerate(assignment[:before["partitions"]]) if row != before["replicas"][i]]
    if moved:
        change.warnings.append("Topic %s: replica_assignment differs from the current placement of partitions %s; existing "
                               "replicas are never moved by kafka_topic (use streamops.day2.kafka_reassignment)."
                               % (name, ", ".join(str(i) for i in moved)))

    for key, value in sorted(desired_config.items()):
        if before["config"].get(key) != value:
            change.config_updates[key] = value
            change.after["config"][key] = value
            change.actions.append("reset %s to its default" % key if value is None else "set %s=%s" % (key, value))
    return change
