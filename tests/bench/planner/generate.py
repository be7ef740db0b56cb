# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Skewed cluster models for the planner benchmarks (the cluster-model format of docs/rebalance.md).

What makes them hard, and realistic:
- Zipf-like topic traffic (a few topics carry most bytes) and log-normal skew between the
  partitions of a topic, plus a few hot partitions (10x their topic's rate);
- retention differs per topic, so disk and network are correlated but not proportional;
- consumers per topic differ (0-4 groups), so nw_out is not proportional to nw_in;
- the cluster grew: older topics sit only on the first brokers, and the newest brokers are empty;
- leadership has drifted off the preferred replica for some partitions (restarts);
- a decommission case names brokers to drain.

Placement of the existing partitions follows Kafka's own rack-aware round robin
(AdminUtils.assignReplicasToBrokers), so the starting point is what a real cluster looks like.
"""

from __future__ import annotations

import math
import random

MB = 1000 * 1000


def rack_alternating(brokers, racks):
    """Kafka's rack-alternated broker list: one broker of each rack in turn."""
    by_rack = {}
    for b in brokers:
        by_rack.setdefault(racks[b], []).append(b)
    names = sorted(by_rack)
    out = []
    i = 0
    while len(out) < len(brokers):
        for name in names:
            if i < len(by_rack[name]):
                out.append(by_rack[name][i])
        i += 1
    return out


def kafka_assign(brokers, racks, n_partitions, rf, rng):
    """AdminUtils.assignReplicasToBrokers, rack-aware variant (start index and shift at random)."""
    ordered = rack_alternating(brokers, racks) if racks else list(brokers)
    n = len(ordered)
    start = rng.randrange(n)
    shift = rng.randrange(n)
    rack_of = racks or {}
    out = []
    for p in range(n_partitions):
        if p > 0 and p % n == 0:
            shift += 1
        first = (p + start) % n
        reps = [ordered[first]]
        used_racks = {rack_of.get(ordered[first])}
        k = 0
        while len(reps) < rf:
            candidate = ordered[(first + 1 + (shift + k) % (n - 1)) % n] if n > 1 else ordered[0]
            k += 1
            rack = rack_of.get(candidate)
            if candidate in reps:
                continue
            # Skip a broker on a used rack unless every rack is used (then any new broker will do).
            if racks and rack in used_racks and len(used_racks) < len(set(rack_of[b] for b in brokers)) and k < 4 * n:
                continue
            reps.append(candidate)
            used_racks.add(rack)
        out.append(reps)
    return out


def generate(brokers=12, partitions=700, rf=3, racks=3, new_brokers=1, drain=0, seed=1,
             topic_sizes=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 200, 256),
             nw_in_per_broker=20 * MB, hot_fraction=0.002, with_capacity=False):
    """A skewed model dict.  ``drain`` brokers (the last old ones) are named in drain_brokers."""
    rng = random.Random(seed)
    ids = list(range(1, brokers + 1))
    rack_of = {b: "rack-%s" % "abcdefgh"[(b - 1) % racks] for b in ids} if racks else {}
    old = ids[:brokers - new_brokers]
    first_gen = old[:max(rf, int(len(old) * 0.7))]

    # Topics: sizes weighted towards small ones, until the partition count is reached.
    weights = [1.0 / math.sqrt(s) for s in topic_sizes]
    topics = []
    total = 0
    while total < partitions:
        n = rng.choices(topic_sizes, weights)[0]
        n = min(n, partitions - total) if partitions - total < n else n
        topics.append(n)
        total += n
    # Zipf traffic by rank; busy topics tend to be the ones with many partitions (operators size
    # partition counts to traffic), with noise so that some small topics are busy too.
    order = sorted(range(len(topics)), key=lambda t: -topics[t] * rng.lognormvariate(0, 1.0))
    rank = {t: i + 1 for i, t in enumerate(order)}
    topic_rate = [1.0 / rank[t] ** 1.1 for t in range(len(topics))]
    scale_rate = sum(topic_rate)

    parts = []
    for t, n in enumerate(topics):
        name = "topic-%04d" % t
        # Older topics (the first 60%) live on the first generation of brokers only.
        pool = first_gen if t < 0.6 * len(topics) else old
        placement = kafka_assign(pool, rack_of, n, min(rf, len(pool)), rng)
        retention = rng.choice((3600, 6 * 3600, 24 * 3600, 3 * 24 * 3600, 7 * 24 * 3600)) / 1000.0
        fanout = rng.choice((0, 1, 1, 2, 3, 4))
        skews = [rng.lognormvariate(0, 0.8) for p in range(n)]
        mean_skew = sum(skews) / n
        for p in range(n):
            share = topic_rate[t] / scale_rate * skews[p] / mean_skew / n
            rate = share * nw_in_per_broker * len(old) / rf
            if rng.random() < hot_fraction:
                rate *= 10
            size = rate * retention * rng.lognormvariate(0, 0.3)
            reps = placement[p]
            leader = reps[0] if rng.random() > 0.1 else rng.choice(reps)
            parts.append({"topic": name, "partition": p, "replicas": reps, "leader": leader,
                          "size": int(size), "nw_in": round(rate, 1), "nw_out": round(rate * fanout, 1)})
    model = {"brokers": [], "partitions": parts}
    for b in ids:
        broker = {"id": b}
        if racks:
            broker["rack"] = rack_of[b]
        model["brokers"].append(broker)
    if with_capacity:
        disk_total = sum(p["size"] * len(p["replicas"]) for p in parts)
        for broker in model["brokers"]:
            broker["capacity"] = {"disk": int(disk_total / brokers * 2.0), "nw_in": nw_in_per_broker * 4,
                                  "nw_out": nw_in_per_broker * 12}
    if drain:
        model["drain_brokers"] = old[-drain:]
    return model


# The benchmark's cases: name -> generate() arguments.
CASES = {
    "small": dict(brokers=12, partitions=700, new_brokers=2, seed=11),
    "medium": dict(brokers=51, partitions=10000, new_brokers=4, seed=12),
    "decommission": dict(brokers=24, partitions=3000, new_brokers=1, drain=3, seed=13),
    "large": dict(brokers=200, partitions=100000, new_brokers=10, seed=14),
}
