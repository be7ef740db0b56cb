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


def _weighted_pick(candidates, weights, rng):
    """One of candidates, drawn with probability proportional to weights (positive)."""
    total = sum(weights)
    x = rng.random() * total
    for candidate, weight in zip(candidates, weights):
        x -= weight
        if x <= 0:
            return candidate
    return candidates[-1]


def generate_hard(brokers=50, partitions=10000, rf=3, racks=3, new_fraction=0.05, zipf=1.4, bias=10.0,
                  seed=1, nw_in_per_broker=10 * MB, drain=0):
    """The hard family of issue 13: a badly skewed cluster as a user would bring it.

    - topic traffic Zipf-distributed by rank (``zipf`` 1.2-1.6: a few very hot topics), each
      topic's partitions log-normally skewed (sigma 0.8);
    - replica size = rate x a retention of 1-24 h per topic (disk and network correlated, far
      from proportional); consumer fan-out 0.5-3x per topic;
    - existing placement strongly biased: each old broker has a weight between 1 and ``bias``
      (log-uniform) and replicas land on brokers in proportion to it (racks respected: one replica
      per rack while there are enough racks), so some brokers carry ``bias`` times the load of
      others; ``new_fraction`` of the brokers are new and empty.
    Brokers sit on racks in turn, so with a broker count not divisible by ``racks`` the racks
    differ in size and the per-rack floor matters.
    """
    rng = random.Random(seed)
    ids = list(range(1, brokers + 1))
    rack_of = {b: "rack-%d" % ((b - 1) % racks) for b in ids} if racks else {}
    n_new = int(round(brokers * new_fraction))
    old = ids[:brokers - n_new]
    weight = {b: bias ** rng.random() for b in old}
    by_rack = {}
    for b in old:
        by_rack.setdefault(rack_of.get(b), []).append(b)
    rack_names = sorted(by_rack, key=str)

    sizes = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 200, 256)
    size_weights = [1.0 / math.sqrt(s) for s in sizes]
    topics = []
    total = 0
    while total < partitions:
        n = min(rng.choices(sizes, size_weights)[0], partitions - total)
        topics.append(n)
        total += n
    order = sorted(range(len(topics)), key=lambda t: -topics[t] * rng.lognormvariate(0, 1.0))
    rank = {t: i + 1 for i, t in enumerate(order)}
    topic_rate = [1.0 / rank[t] ** zipf for t in range(len(topics))]
    cluster_rate = nw_in_per_broker * brokers / rf
    scale_rate = cluster_rate / sum(topic_rate)

    parts = []
    for t, n in enumerate(topics):
        name = "t%05d" % t
        retention = rng.uniform(3600, 24 * 3600)
        fanout = rng.uniform(0.5, 3.0)
        skews = [rng.lognormvariate(0, 0.8) for p in range(n)]
        mean_skew = sum(skews) / n
        for p in range(n):
            rate = topic_rate[t] * scale_rate * skews[p] / mean_skew / n
            if racks and len(rack_names) >= rf:
                chosen_racks = rng.sample(rack_names, rf)
                reps = [_weighted_pick(by_rack[r], [weight[b] for b in by_rack[r]], rng) for r in chosen_racks]
            else:
                reps = []
                while len(reps) < rf:
                    if racks:
                        pool = [b for b in by_rack[rack_names[len(reps) % len(rack_names)]] if b not in reps]
                    else:
                        pool = [b for b in old if b not in reps]
                    reps.append(_weighted_pick(pool, [weight[b] for b in pool], rng))
            leader = reps[0] if rng.random() > 0.1 else rng.choice(reps)
            parts.append({"topic": name, "partition": p, "replicas": reps, "leader": leader,
                          "size": int(rate * retention), "nw_in": round(rate, 1), "nw_out": round(rate * fanout, 1)})
    model = {"brokers": [dict({"id": b}, rack=rack_of[b]) if racks else {"id": b} for b in ids], "partitions": parts}
    if drain:
        model["drain_brokers"] = old[-drain:]
    return model


def _hard_cases():
    cases = {}
    families = (
        # name, brokers, partitions, rf, racks, new fraction, zipf exponent
        ("hard10-rf3r3", 10, 1000, 3, 3, 0.1, 1.6),
        ("hard50-rf3r3", 50, 10000, 3, 3, 0.04, 1.4),
        ("hard50-rf2r2", 50, 10000, 2, 2, 0.06, 1.2),
        ("hard100-rf3r8", 100, 30000, 3, 8, 0.0, 1.6),
        ("hard200-rf3r5", 200, 100000, 3, 5, 0.05, 1.4),
    )
    for name, brokers, partitions, rf, racks, new, zipf in families:
        for seed in (1, 2, 3):
            cases["%s-s%d" % (name, seed)] = dict(family="hard", brokers=brokers, partitions=partitions, rf=rf, racks=racks,
                                                  new_fraction=new, zipf=zipf, seed=seed)
    return cases


CASES.update(_hard_cases())
# The extra-large case: run on its own (``--cases xl --anchors none``), never by default.
EXTRA_CASES = {
    "xl": dict(family="hard", brokers=1000, partitions=1000000, rf=3, racks=8, new_fraction=0.05, zipf=1.4, seed=1),
}


def build(case):
    """The model dict of a named case (CASES or EXTRA_CASES)."""
    args = dict(CASES.get(case) or EXTRA_CASES[case])
    family = args.pop("family", "classic")
    return generate_hard(**args) if family == "hard" else generate(**args)
