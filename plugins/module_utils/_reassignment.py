# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of kafka_reassignment (private: may change without notice).

Everything here works on plain values so it is unit-tested without brokers:

* the plan: parsing and validation of the JSON ``kafka-reassign-partitions.sh`` reads, its
  fingerprint, and its check against a snapshot of the cluster;
* triage: which partitions are already at their target, which are moving, which must move;
* ordering and batching: strategies as Cruise Control names them, and a sliding window that keeps
  at most N moves in flight per broker and in the cluster;
* throttle maths: the broker rates and topic ``*.replication.throttled.replicas`` lists exactly as
  Kafka's own tool computes them, rate parsing, and a duration estimate.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field

PLAN_VERSION = 1

LEADER_RATE = "leader.replication.throttled.rate"
FOLLOWER_RATE = "follower.replication.throttled.rate"
BROKER_THROTTLE_KEYS = (LEADER_RATE, FOLLOWER_RATE)
LEADER_REPLICAS = "leader.replication.throttled.replicas"
FOLLOWER_REPLICAS = "follower.replication.throttled.replicas"
TOPIC_THROTTLE_KEYS = (LEADER_REPLICAS, FOLLOWER_REPLICAS)

ORDERS = ("small_first", "large_first", "under_replicated_last", "plan")
DEFAULT_ORDER = ("under_replicated_last", "small_first")

_MAX_LISTED = 5  # problems quoted in one error message before "and N more"


class PlanError(ValueError):
    """A plan that cannot run, explained in one sentence (or a short list)."""


# ---------------------------------------------------------------------------------------------
# The plan


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def load_plan(source):
    """The plan as a normalised dict: ``{"version": 1, "partitions": [{topic, partition, replicas}]}``.

    ``source`` is the dict Kafka's tool reads, or its JSON text. Entries keep their order; a
    ``log_dirs`` list is accepted when every entry is ``"any"`` (intra-broker moves are not supported).
    """
    if isinstance(source, (str, bytes)):
        try:
            source = json.loads(source)
        except ValueError as e:
            raise PlanError("The plan is not valid JSON: %s." % e)
    if not isinstance(source, dict):
        raise PlanError("The plan must be a mapping with 'version' and 'partitions', got %s." % type(source).__name__)
    unknown = sorted(set(source) - {"version", "partitions"})
    if unknown:
        raise PlanError("The plan has unknown keys %s; it holds only 'version' and 'partitions'." % ", ".join(unknown))
    version = source.get("version", PLAN_VERSION)
    if version != PLAN_VERSION:
        raise PlanError("The plan has version %r; only version 1 (Kafka's reassignment JSON) is supported." % (version,))
    entries = source.get("partitions")
    if not isinstance(entries, list):
        raise PlanError("The plan's 'partitions' must be a list of {topic, partition, replicas}.")
    seen = set()
    partitions = []
    for index, entry in enumerate(entries):
        partitions.append(_load_entry(index, entry, seen))
    return {"version": PLAN_VERSION, "partitions": partitions}


def _load_entry(index, entry, seen):
    where = "plan entry %d" % index
    if not isinstance(entry, dict):
        raise PlanError("%s is not a mapping of topic, partition and replicas." % where)
    unknown = sorted(set(entry) - {"topic", "partition", "replicas", "log_dirs"})
    if unknown:
        raise PlanError("%s has unknown keys %s." % (where, ", ".join(unknown)))
    topic, partition, replicas = entry.get("topic"), entry.get("partition"), entry.get("replicas")
    if not isinstance(topic, str) or not topic:
        raise PlanError("%s has no topic name." % where)
    if not _is_int(partition) or partition < 0:
        raise PlanError("%s (%s) needs a partition number >= 0, got %r." % (where, topic, partition))
    where = "plan entry %s-%d" % (topic, partition)
    if not isinstance(replicas, list) or not replicas:
        raise PlanError("%s needs a non-empty list of replica broker ids." % where)
    if not all(_is_int(b) and b >= 0 for b in replicas):
        raise PlanError("%s has a replica that is not a broker id: %r." % (where, replicas))
    if len(set(replicas)) != len(replicas):
        raise PlanError("%s names a broker twice: %r." % (where, replicas))
    log_dirs = entry.get("log_dirs")
    if log_dirs is not None:
        if not isinstance(log_dirs, list) or len(log_dirs) != len(replicas):
            raise PlanError("%s: log_dirs must list one directory per replica." % where)
        if any(d != "any" for d in log_dirs):
            raise PlanError("%s asks for specific log directories; moves between log directories are not supported, use \"any\"." % where)
    if (topic, partition) in seen:
        raise PlanError("The plan lists %s-%d twice." % (topic, partition))
    seen.add((topic, partition))
    return {"topic": topic, "partition": partition, "replicas": list(replicas)}


def plan_fingerprint(plan):
    """``sha256:<hex>`` of the plan's content: entry order and JSON layout do not matter, replica order does."""
    entries = sorted((p["topic"], p["partition"], list(p["replicas"])) for p in plan["partitions"])
    canonical = json.dumps({"version": PLAN_VERSION, "partitions": [
        {"topic": t, "partition": n, "replicas": r} for t, n, r in entries]}, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def check_fingerprint(plan, expected):
    """Refuse a plan whose fingerprint is not the approved one."""
    actual = plan_fingerprint(plan)
    expected = (expected or "").strip()
    if expected and not expected.startswith("sha256:"):
        expected = "sha256:" + expected
    if actual != expected:
        raise PlanError("The plan's fingerprint is %s but the approved fingerprint is %s: this is not the plan that was approved, "
                        "nothing was moved. Review the plan again and approve its fingerprint." % (actual, expected))
    return actual


# ---------------------------------------------------------------------------------------------
# The cluster as one snapshot


@dataclass(frozen=True)
class PartitionState:
    replicas: tuple
    leader: int | None = None
    isr: tuple = ()

    @property
    def under_replicated(self):
        return len(set(self.isr)) < len(self.replicas)


@dataclass
class ClusterView:
    """What the brokers report: broker id -> alive, and (topic, partition) -> PartitionState."""
    brokers: dict
    partitions: dict
    topics: set = field(default_factory=set)

    def __post_init__(self):
        self.topics = set(self.topics) | {t for t, unused in self.partitions}


def check_plan(plan, cluster):
    """Refuse, before anything moves, a plan that does not fit the cluster.

    Unknown topics, partitions and brokers, brokers that are registered but offline, and a
    changed replication factor are all reported in one message.
    """
    problems = []
    unknown_topics, unknown_brokers, offline_brokers = [], set(), set()
    for entry in plan["partitions"]:
        topic, number, target = entry["topic"], entry["partition"], entry["replicas"]
        name = "%s-%d" % (topic, number)
        if topic not in cluster.topics:
            if topic not in unknown_topics:
                unknown_topics.append(topic)
            continue
        state = cluster.partitions.get((topic, number))
        if state is None:
            problems.append("partition %s does not exist" % name)
            continue
        for broker in target:
            if broker not in cluster.brokers:
                unknown_brokers.add(broker)
            elif not cluster.brokers[broker]:
                offline_brokers.add(broker)
        if len(target) != len(state.replicas):
            problems.append("%s would change replication factor from %d to %d" % (name, len(state.replicas), len(target)))
    problems[:0] = ["topic %s does not exist" % t for t in unknown_topics]
    if unknown_brokers:
        problems.append("broker%s %s %s not in the cluster (brokers: %s)" % (
            "s" if len(unknown_brokers) > 1 else "", _ids(unknown_brokers), "are" if len(unknown_brokers) > 1 else "is",
            _ids(cluster.brokers)))
    if offline_brokers:
        problems.append("broker%s %s %s registered but offline" % (
            "s" if len(offline_brokers) > 1 else "", _ids(offline_brokers), "are" if len(offline_brokers) > 1 else "is"))
    if problems:
        raise PlanError("The plan does not match the cluster, nothing was moved: %s." % _listing(problems))


def _ids(ids):
    return ",".join(str(i) for i in sorted(ids))


def _listing(items):
    shown = "; ".join(items[:_MAX_LISTED])
    if len(items) > _MAX_LISTED:
        shown += "; and %d more" % (len(items) - _MAX_LISTED)
    return shown


# ---------------------------------------------------------------------------------------------
# Moves


@dataclass
class Move:
    """One partition going from its current replicas to the plan's target replicas."""
    topic: str
    partition: int
    current: tuple
    target: tuple
    leader: int | None = None
    under_replicated: bool = False
    size: int = 0          # bytes of one replica
    index: int = 0         # position in the plan, for a stable order

    @property
    def key(self):
        return (self.topic, self.partition)

    @property
    def name(self):
        return "%s-%d" % (self.topic, self.partition)

    @property
    def adding(self):
        return tuple(b for b in self.target if b not in self.current)

    @property
    def removing(self):
        return tuple(b for b in self.current if b not in self.target)

    @property
    def copies_data(self):
        return bool(self.adding)

    @property
    def brokers(self):
        """Brokers that send or receive data for this move: the current leader and the new replicas.

        A move that only reorders replicas (a new preferred leader) copies nothing and uses no slot.
        """
        if not self.adding:
            return frozenset()
        source = {self.leader} if self.leader is not None and self.leader >= 0 else set(self.current[:1])
        return frozenset(source | set(self.adding))

    @property
    def bytes(self):
        return self.size * len(self.adding)

    def as_dict(self, status):
        return {"topic": self.topic, "partition": self.partition, "before": list(self.current),
                "after": list(self.target), "bytes": self.bytes, "status": status}


@dataclass
class Triage:
    done: list = field(default_factory=list)       # already at target: skipped
    pending: list = field(default_factory=list)    # must be submitted
    running: list = field(default_factory=list)    # already moving to the plan's target (an earlier run): adopted
    conflicts: list = field(default_factory=list)  # moving somewhere else

    @property
    def all_moves(self):
        return self.running + self.pending


def triage(plan, cluster, in_flight, sizes=None):
    """Sort the plan's partitions by what remains to do.

    ``in_flight`` maps (topic, partition) to an ongoing reassignment as ListPartitionReassignments
    reports it (``replicas``, ``adding_replicas``, ``removing_replicas``); ``sizes`` maps (topic,
    partition) to bytes of one replica. A partition moving to the plan's target is adopted (a resumed
    run); one moving elsewhere is a conflict the caller must refuse.
    """
    sizes = sizes or {}
    result = Triage()
    for index, entry in enumerate(plan["partitions"]):
        key = (entry["topic"], entry["partition"])
        state = cluster.partitions[key]
        target = tuple(entry["replicas"])
        ongoing = in_flight.get(key)
        current = tuple(state.replicas)
        if ongoing is not None:
            current, moving_to = ongoing_endpoints(ongoing)
        move = Move(entry["topic"], entry["partition"], current, target, leader=state.leader,
                    under_replicated=state.under_replicated, size=int(sizes.get(key) or 0), index=index)
        if ongoing is not None:
            if set(moving_to) == set(target):
                result.running.append(move)
            else:
                result.conflicts.append((move, moving_to))
        elif current == target:
            result.done.append(move)
        else:
            result.pending.append(move)
    return result


def ongoing_endpoints(reassignment):
    """(original replicas, target replicas) of an ongoing reassignment.

    While a partition moves Kafka reports the union of both sets as its replicas; the adding ones
    are not part of the original set (a cancel returns to it), the removing ones not of the target.
    """
    replicas = list(reassignment.get("replicas") or [])
    adding = set(reassignment.get("adding_replicas") or [])
    removing = set(reassignment.get("removing_replicas") or [])
    return tuple(b for b in replicas if b not in adding), tuple(b for b in replicas if b not in removing)


def conflict_error(conflicts):
    items = ["%s is moving to [%s], the plan says [%s]" % (m.name, _ids_in_order(to), _ids_in_order(m.target)) for m, to in conflicts]
    return PlanError("Another reassignment is in progress on partitions of this plan, nothing was moved: %s. "
                     "Wait for it, or cancel it with state=absent, then run the plan again." % _listing(items))


def _ids_in_order(ids):
    return ",".join(str(i) for i in ids)


def order_moves(moves, strategies=DEFAULT_ORDER):
    """Moves in execution order. Strategies chain: the first decides, the next break its ties.

    ``small_first`` / ``large_first`` order by bytes to copy, ``under_replicated_last`` postpones
    partitions that already miss an in-sync replica, ``plan`` keeps the plan's order (always the
    last tie-breaker).
    """
    strategies = list(strategies or [])
    for name in strategies:
        if name not in ORDERS:
            raise PlanError("Unknown order %r; choose from %s." % (name, ", ".join(ORDERS)))
    if "small_first" in strategies and "large_first" in strategies:
        raise PlanError("Give small_first or large_first, not both.")

    def sort_key(move):
        key = []
        for name in strategies:
            if name == "small_first":
                key.append(move.bytes)
            elif name == "large_first":
                key.append(-move.bytes)
            elif name == "under_replicated_last":
                key.append(1 if move.under_replicated else 0)
        key.append(move.index)
        return tuple(key)

    return sorted(moves, key=sort_key)


@dataclass(frozen=True)
class Caps:
    """Concurrency caps: moves in flight in the whole cluster, and per broker (sending or receiving)."""
    cluster: int = 50
    per_broker: int = 5

    def __post_init__(self):
        if not _is_int(self.cluster) or self.cluster < 1:
            raise PlanError("max_concurrent_moves must be at least 1, got %r." % (self.cluster,))
        if not _is_int(self.per_broker) or self.per_broker < 1:
            raise PlanError("max_concurrent_moves_per_broker must be at least 1, got %r." % (self.per_broker,))


def broker_load(moves):
    """Moves in flight per broker."""
    load = {}
    for move in moves:
        for broker in move.brokers:
            load[broker] = load.get(broker, 0) + 1
    return load


def next_batch(queue, running, caps):
    """The moves of ``queue`` (in its order) that may start now without breaking ``caps``.

    A move that does not fit is skipped, not waited for, so a busy broker does not hold back moves
    between idle ones (the order is a priority, not a barrier). Moves that copy nothing (a new
    preferred leader only) take a cluster slot but no broker slot.
    """
    in_flight = len(running)
    load = broker_load(running)
    batch = []
    for move in queue:
        if in_flight >= caps.cluster:
            break
        if any(load.get(b, 0) >= caps.per_broker for b in move.brokers):
            continue
        batch.append(move)
        in_flight += 1
        for broker in move.brokers:
            load[broker] = load.get(broker, 0) + 1
    return batch


def simulate_batches(moves, caps):
    """Waves the moves would run in if each wave finished before the next started (for check mode)."""
    queue = list(moves)
    waves = []
    while queue:
        wave = next_batch(queue, [], caps)
        if not wave:  # cannot happen with caps >= 1, kept as a guard against an endless loop
            wave = queue[:1]
        waves.append(wave)
        taken = {m.key for m in wave}
        queue = [m for m in queue if m.key not in taken]
    return waves


# ---------------------------------------------------------------------------------------------
# Throttle


@dataclass
class Throttle:
    """What Kafka's tool would set: per topic the leader/follower throttled-replica lists, and the brokers
    that get the leader/follower rates."""
    leader: dict
    follower: dict
    brokers: list

    @property
    def topics(self):
        return sorted(set(self.leader) | set(self.follower))


def throttle_for(ongoing, proposed):
    """The throttle for ``proposed`` moves while ``ongoing`` reassignments run, as ReassignPartitionsCommand computes it.

    ``ongoing`` maps (topic, partition) to ``{"replicas": [...], "adding_replicas": [...]}`` (every
    reassignment in the cluster, so resubmitting keeps their throttles); ``proposed`` is a list of
    ``(topic, partition, current_replicas, target_replicas)``. Sources of a move are the replicas it
    starts from (for a move already running: its replicas less the adding ones); destinations are the
    target replicas that are not sources. Leader lists name ``partition:source``, follower lists
    ``partition:destination``, each sorted as strings like Kafka's TreeSet; the rates go to every
    source and destination broker.
    """
    moves = {}
    for (topic, number), reassignment in ongoing.items():
        adding = set(reassignment.get("adding_replicas") or [])
        sources = set(reassignment.get("replicas") or []) - adding
        moves.setdefault(topic, {})[number] = (sources, adding)
    for topic, number, current, target in proposed:
        parts = moves.setdefault(topic, {})
        sources = set(parts[number][0]) if number in parts else set(current)
        parts[number] = (sources, set(target) - sources)
    leader, follower, brokers = {}, {}, set()
    for topic, parts in moves.items():
        leader[topic] = ",".join(sorted({"%d:%d" % (n, s) for n, (srcs, dsts) in parts.items() for s in srcs}))
        follower[topic] = ",".join(sorted({"%d:%d" % (n, d) for n, (srcs, dsts) in parts.items() for d in dsts if d not in srcs}))
        for srcs, dsts in parts.values():
            brokers |= srcs | dsts
    return Throttle(leader=leader, follower=follower, brokers=sorted(brokers))


_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000 ** 2, "mb": 1000 ** 2, "g": 1000 ** 3, "gb": 1000 ** 3,
    "kib": 1024, "mib": 1024 ** 2, "gib": 1024 ** 3,
}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*(?:/\s*s(?:ec)?)?\s*$", re.IGNORECASE)


def parse_rate(value):
    """Bytes per second from an int or a string such as ``"50MB"``, ``"50 MiB/s"``, ``"1.5GB/s"``; None stays None.

    Decimal units (kB, MB, GB) are powers of 1000, binary ones (KiB, MiB, GiB) powers of 1024.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise PlanError("throttle must be a rate in bytes per second, got %r." % (value,))
    if isinstance(value, (int, float)):
        number, unit = float(value), ""
    else:
        match = _RATE.match(str(value))
        if not match or match.group(2).lower() not in _UNITS:
            raise PlanError("throttle %r is not a rate; give bytes per second (52428800) or a size per second such as 50MB or 50MiB/s." % (value,))
        number, unit = float(match.group(1)), match.group(2).lower()
    rate = int(number * _UNITS[unit])
    if rate < 1:
        raise PlanError("throttle must be at least 1 byte per second, got %r." % (value,))
    return rate


def estimate_seconds(moves, rate):
    """Lower bound of the time the moves take under a throttle of ``rate`` bytes/s per broker.

    Each destination receives and each leader sends at most ``rate`` bytes/s, so the busiest broker
    sets the pace. None without a throttle (the disks and network set it then).
    """
    if not rate:
        return None
    inbound, outbound = {}, {}
    for move in moves:
        if not move.adding:
            continue
        for broker in move.adding:
            inbound[broker] = inbound.get(broker, 0) + move.size
        source = move.leader if move.leader is not None and move.leader >= 0 else move.current[0]
        outbound[source] = outbound.get(source, 0) + move.bytes
    busiest = max(list(inbound.values()) + list(outbound.values()) + [0])
    return math.ceil(busiest / rate * 10) / 10


# ---------------------------------------------------------------------------------------------
# Views for the result


def as_plan(entries):
    """A Kafka reassignment JSON of (topic, partition, replicas) entries, sorted."""
    return {"version": PLAN_VERSION, "partitions": [
        {"topic": t, "partition": p, "replicas": list(r)} for t, p, r in sorted(entries)]}


def rollback_plan(moves):
    """The plan that puts the moved partitions back where they were (what Kafka's tool tells you to save)."""
    return as_plan((m.topic, m.partition, m.current) for m in moves)


def human_bytes(count):
    value = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return ("%d %s" % (value, unit)) if unit == "B" else ("%.1f %s" % (value, unit))
        value /= 1000
    return "%d B" % count  # pragma: no cover
