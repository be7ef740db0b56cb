# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replication throttle maths: what Kafka's tool sets, rates, a duration estimate (pure)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ansible_collections.streamops.day2.plugins.module_utils._reassignment.plan import PlanError

LEADER_RATE = "leader.replication.throttled.rate"
FOLLOWER_RATE = "follower.replication.throttled.rate"
BROKER_THROTTLE_KEYS = (LEADER_RATE, FOLLOWER_RATE)
LEADER_REPLICAS = "leader.replication.throttled.replicas"
FOLLOWER_REPLICAS = "follower.replication.throttled.replicas"
TOPIC_THROTTLE_KEYS = (LEADER_REPLICAS, FOLLOWER_REPLICAS)


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
