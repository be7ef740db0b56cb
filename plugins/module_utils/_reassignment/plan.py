# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan: parsing, fingerprint, the check against the cluster, and triage into moves (pure)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

PLAN_VERSION = 1
_MAX_LISTED = 5  # problems quoted in one error message before "and N more"


class PlanError(ValueError):
    """A plan that cannot run, explained in one sentence (or a short list)."""


def is_int(value):
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
    if not is_int(partition) or partition < 0:
        raise PlanError("%s (%s) needs a partition number >= 0, got %r." % (where, topic, partition))
    where = "plan entry %s-%d" % (topic, partition)
    if not isinstance(replicas, list) or not replicas:
        raise PlanError("%s needs a non-empty list of replica broker ids." % where)
    if not all(is_int(b) and b >= 0 for b in replicas):
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


def check_plan(plan, cluster, in_flight=None):
    """Refuse, before anything moves, a plan that does not fit the cluster.

    Unknown topics, partitions and brokers, brokers that are registered but offline, and a
    changed replication factor are all reported in one message. ``in_flight`` (as for
    :func:`triage`) gives the partitions that are moving: their replication factor is that of the
    replicas they move from, not of the union Kafka reports while they move.
    """
    in_flight = in_flight or {}
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
        current = ongoing_endpoints(in_flight[(topic, number)])[0] if (topic, number) in in_flight else state.replicas
        if len(target) != len(current):
            problems.append("%s would change replication factor from %d to %d" % (name, len(current), len(target)))
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


def looks_mid_move(plan, cluster, in_flight):
    """Plan partitions that no reassignment lists but whose metadata shows more replicas than the target, all of
    the target among them: the union Kafka reports while a partition moves.

    A move that has just ended drops off the list a moment before every broker's metadata shows its final replicas
    (about 60 ms seen in the lab), and a move can end between two reads. Taken as they are, such a partition looks
    like a change of replication factor; the caller reads it again instead.
    """
    found = []
    for entry in plan["partitions"]:
        key = (entry["topic"], entry["partition"])
        state = cluster.partitions.get(key)
        if state is None or key in in_flight:
            continue
        if len(state.replicas) > len(entry["replicas"]) and set(entry["replicas"]) <= set(state.replicas):
            found.append(key)
    return found


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
