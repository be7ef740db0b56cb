# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster model (docs/rebalance.md): brokers, partitions and their loads, validated.

Everything is turned into flat lists indexed by broker position and partition position, because
the optimiser's hot loop reads them millions of times and list indexing is the cheapest access
Python has.  Broker ids and topic names appear again only in messages and in the plan.
"""

from __future__ import annotations

import json
import math

RESOURCES = ("nw_in", "nw_out", "disk", "replicas", "leaders")
NW_IN, NW_OUT, DISK, REPLICAS, LEADERS = range(5)
# Resources a broker can declare a capacity for (counts have no capacity).
CAPACITY_RESOURCES = ("nw_in", "nw_out", "disk")
PARTITION_LOADS = ("size", "nw_in", "nw_out")
_PARTITION_KEYS = frozenset(("topic", "partition", "replicas", "leader") + PARTITION_LOADS)


class ModelError(ValueError):
    """Bad input to the planner, described in one sentence that names the culprit."""


def _number(value, what):
    # bool is an int in Python, but true/false for a load is a mistake worth reporting.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ModelError("%s must be a number, got %r." % (what, value))
    if not math.isfinite(value) or value < 0:
        raise ModelError("%s must be a finite number >= 0, got %r." % (what, value))
    return value


def _broker_id(value, what):
    if isinstance(value, bool):
        raise ModelError("%s must be a broker id (an integer), got %r." % (what, value))
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise ModelError("%s must be a broker id (an integer), got %r." % (what, value))


def broker_id_list(value, what):
    """A list of broker ids (None is an empty list); anything else is a ModelError naming `what`."""
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise ModelError("%s must be a list of broker ids, got %r." % (what, value))
    return [_broker_id(item, "%s entry" % what) for item in value]


def partition_name(topic, partition):
    return "%s-%d" % (topic, partition)


class ClusterModel:
    """A validated cluster model.  Brokers and partitions are addressed by position.

    Attributes (lists are indexed by broker position b or partition position p):
      broker_ids[b], racks[b] (None when the cluster has no racks), capacity[resource][b]
      (None when not given), drained (set of b), topics[t], p_topic[p], p_number[p],
      replicas[p] (list of b, current order), leader[p] (b), size[p], nw_in[p], nw_out[p].
    """

    def __init__(self):
        self.broker_ids = []
        self.broker_index = {}
        self.racks = []
        self.capacity = {r: [] for r in CAPACITY_RESOURCES}
        self.drained = set()
        self.topics = []
        self.topic_index = {}
        self.p_topic = []
        self.p_number = []
        self.replicas = []
        self.leader = []
        self.size = []
        self.nw_in = []
        self.nw_out = []

    @property
    def n_brokers(self):
        return len(self.broker_ids)

    @property
    def n_partitions(self):
        return len(self.p_topic)

    def name(self, p):
        """Human name of partition p, as Kafka tools print it (topic-partition)."""
        return partition_name(self.topics[self.p_topic[p]], self.p_number[p])

    def broker_ref(self, b):
        return "broker %d" % self.broker_ids[b]

    def has_racks(self):
        return bool(self.racks) and self.racks[0] is not None

    @classmethod
    def from_dict(cls, data, drain_brokers=None):
        """Validate a model dict (docs/rebalance.md) and build the indexed model.

        drain_brokers adds brokers to drain to those the model itself names (``drain_brokers``).
        """
        if not isinstance(data, dict):
            raise ModelError("The cluster model must be a mapping with 'brokers' and 'partitions', got %s." % type(data).__name__)
        unknown = sorted(set(data) - {"brokers", "partitions", "drain_brokers"})
        if unknown:
            raise ModelError("The cluster model has unknown key %r (known: brokers, partitions, drain_brokers)." % unknown[0])
        brokers = data.get("brokers")
        partitions = data.get("partitions")
        if not isinstance(brokers, list) or not brokers:
            raise ModelError("The cluster model needs a non-empty list 'brokers'.")
        if not isinstance(partitions, list):
            raise ModelError("The cluster model needs a list 'partitions'.")
        model = cls()
        model._add_brokers(brokers)
        model._add_partitions(partitions)
        for bid in broker_id_list(data.get("drain_brokers"), "drain_brokers") + broker_id_list(drain_brokers, "drain_brokers"):
            if bid not in model.broker_index:
                raise ModelError("drain_brokers names broker %d, which is not in the cluster model." % bid)
            model.drained.add(model.broker_index[bid])
        return model

    def _add_brokers(self, brokers):
        with_rack = []
        for i, broker in enumerate(brokers):
            if not isinstance(broker, dict) or "id" not in broker:
                raise ModelError("brokers[%d] must be a mapping with an 'id'." % i)
            bid = _broker_id(broker["id"], "brokers[%d].id" % i)
            if bid in self.broker_index:
                raise ModelError("Broker %d is listed twice in the cluster model." % bid)
            unknown = sorted(set(broker) - {"id", "rack", "capacity", "host"})
            if unknown:
                raise ModelError("Broker %d has unknown key %r (known: id, rack, capacity)." % (bid, unknown[0]))
            rack = broker.get("rack")
            if rack is not None and (not isinstance(rack, (str, int)) or isinstance(rack, bool) or str(rack) == ""):
                raise ModelError("Broker %d has rack %r; a rack must be a non-empty string." % (bid, rack))
            capacity = broker.get("capacity") or {}
            if not isinstance(capacity, dict):
                raise ModelError("Broker %d capacity must be a mapping of resource to a number." % bid)
            for resource in capacity:
                if resource not in CAPACITY_RESOURCES:
                    raise ModelError("Broker %d capacity has unknown resource %r (known: %s)." % (bid, resource, ", ".join(CAPACITY_RESOURCES)))
            self.broker_index[bid] = len(self.broker_ids)
            self.broker_ids.append(bid)
            self.racks.append(None if rack is None else str(rack))
            with_rack.append(rack is not None)
            for resource in CAPACITY_RESOURCES:
                value = capacity.get(resource)
                if value is not None:
                    value = _number(value, "Broker %d capacity %s" % (bid, resource))
                    if value == 0:
                        raise ModelError("Broker %d capacity %s must be > 0." % (bid, resource))
                self.capacity[resource].append(value)
        if any(with_rack) and not all(with_rack):
            missing = self.broker_ids[with_rack.index(False)]
            raise ModelError("Broker %d has no rack while other brokers have one; give every broker a rack, or none." % missing)

    def _add_partitions(self, partitions):
        # Millions of partitions at the largest: the common case is checked inline, and a partition's
        # name (for the messages) is formatted only when something is wrong with it.
        seen = set()
        index = self.broker_index
        n_brokers = len(self.broker_ids)
        for i, part in enumerate(partitions):
            if not isinstance(part, dict):
                raise ModelError("partitions[%d] must be a mapping." % i)
            topic = part.get("topic")
            if not isinstance(topic, str) or not topic:
                raise ModelError("partitions[%d] needs a 'topic' name." % i)
            number = part.get("partition")
            if isinstance(number, bool) or not isinstance(number, int) or number < 0:
                raise ModelError("partitions[%d] (topic %s) needs a 'partition' number >= 0, got %r." % (i, topic, number))
            key = (topic, number)
            if key in seen:
                raise ModelError("Partition %s is listed twice in the cluster model." % partition_name(topic, number))
            seen.add(key)
            if not _PARTITION_KEYS.issuperset(part):
                unknown = sorted(set(part) - _PARTITION_KEYS)
                raise ModelError("Partition %s has unknown key %r (known: replicas, leader, size, nw_in, nw_out)." % (
                    partition_name(topic, number), unknown[0]))
            replicas = part.get("replicas")
            if not isinstance(replicas, list) or not replicas:
                raise ModelError("Partition %s needs a non-empty list 'replicas'." % partition_name(topic, number))
            indexed = []
            for value in replicas:
                # type() is int, not isinstance: True is an int too, and must fall through to the full check below.
                b = index.get(value) if type(value) is int else None  # pylint: disable=unidiomatic-typecheck
                if b is None:
                    name = partition_name(topic, number)
                    bid = _broker_id(value, "Partition %s replica" % name)
                    if bid not in index:
                        raise ModelError("Partition %s has a replica on broker %d, which is not in the cluster model." % (name, bid))
                    b = index[bid]
                if b in indexed:
                    raise ModelError("Partition %s lists broker %d twice in its replicas." % (partition_name(topic, number), self.broker_ids[b]))
                indexed.append(b)
            if len(indexed) > n_brokers:
                raise ModelError("Partition %s has %d replicas but the cluster has only %d brokers." % (
                    partition_name(topic, number), len(indexed), n_brokers))
            leader = part.get("leader")
            if leader is None:
                lead = indexed[0]
            else:
                lead = index.get(leader) if type(leader) is int else None  # pylint: disable=unidiomatic-typecheck
                if lead is None or lead not in indexed:
                    bid = _broker_id(leader, "Partition %s leader" % partition_name(topic, number))
                    if bid not in index or index[bid] not in indexed:
                        raise ModelError("Partition %s has leader %d, which is not one of its replicas %s." % (
                            partition_name(topic, number), bid, replicas))
                    lead = index[bid]
            size, nw_in, nw_out = part.get("size"), part.get("nw_in"), part.get("nw_out")
            loads = (size, nw_in, nw_out)
            for value in loads:
                # Exact types (a bool is no load): the fast path; anything else gets _partition_loads' checks and sentence.
                if not ((type(value) is float or type(value) is int) and 0 <= value < math.inf):  # pylint: disable=unidiomatic-typecheck
                    loads = self._partition_loads(part, partition_name(topic, number))
                    break
            t = self.topic_index.get(topic)
            if t is None:
                t = self.topic_index[topic] = len(self.topics)
                self.topics.append(topic)
            self.p_topic.append(t)
            self.p_number.append(number)
            self.replicas.append(indexed)
            self.leader.append(lead)
            self.size.append(float(loads[0]))
            self.nw_in.append(float(loads[1]))
            self.nw_out.append(float(loads[2]))

    @staticmethod
    def _partition_loads(part, name):
        """(size, nw_in, nw_out) of a partition the fast check did not pass: checked one by one."""
        loads = []
        for key in PARTITION_LOADS:
            if key not in part or part[key] is None:
                raise ModelError("Partition %s has no '%s' (bytes%s); every partition needs size, nw_in and nw_out." % (
                    name, key, "" if key == "size" else "/s"))
            loads.append(float(_number(part[key], "Partition %s %s" % (name, key))))
        return loads

    def to_dict(self, replicas=None, leader=None):
        """The model as a dict again (docs/rebalance.md), optionally with another assignment."""
        replicas = self.replicas if replicas is None else replicas
        leader = self.leader if leader is None else leader
        ids = self.broker_ids
        brokers = []
        for b, bid in enumerate(ids):
            broker = {"id": bid}
            if self.racks[b] is not None:
                broker["rack"] = self.racks[b]
            capacity = {r: self.capacity[r][b] for r in CAPACITY_RESOURCES if self.capacity[r][b] is not None}
            if capacity:
                broker["capacity"] = capacity
            brokers.append(broker)
        partitions = []
        for p in range(self.n_partitions):
            partitions.append({
                "topic": self.topics[self.p_topic[p]], "partition": self.p_number[p],
                "replicas": [ids[b] for b in replicas[p]], "leader": ids[leader[p]],
                "size": self.size[p], "nw_in": self.nw_in[p], "nw_out": self.nw_out[p],
            })
        data = {"brokers": brokers, "partitions": partitions}
        if self.drained:
            data["drain_brokers"] = sorted(ids[b] for b in self.drained)
        return data


def load_model_file(path):
    """Read a cluster model from a JSON or YAML file (YAML is a superset, but JSON is much faster)."""
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ModelError("Cannot read the cluster model file %s: %s." % (path, getattr(e, "strerror", None) or e))
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        import yaml  # PyYAML ships with ansible-core, so it is there wherever the module runs.
    except ImportError:
        raise ModelError("The cluster model file %s is not JSON, and PyYAML is not installed to read it as YAML." % path)
    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as e:
        raise ModelError("The cluster model file %s is neither valid JSON nor valid YAML: %s." % (path, str(e).replace("\n", " ")))
