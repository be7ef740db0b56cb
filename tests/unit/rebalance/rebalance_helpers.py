"""Small random cluster models and action drawing for the planner's unit tests."""

from __future__ import annotations

import random

from ansible_collections.streamops.day2.plugins.module_utils.rebalance.loads import ClusterState
from ansible_collections.streamops.day2.plugins.module_utils.rebalance.model import ClusterModel


def random_model(seed, brokers=6, partitions=40, racks=3, rf=3, topics=5, drain=(), empty_brokers=1, zero_loads=False):
    """A model dict: random replicas (distinct brokers, racks ignored: the planner must repair),
    log-normal loads, some empty brokers, optional drained brokers."""
    rng = random.Random(seed)
    ids = list(range(1, brokers + 1))
    placeable = ids[:max(rf, brokers - empty_brokers)]
    parts = []
    for i in range(partitions):
        reps = rng.sample(placeable, min(rf, len(placeable)))
        rate = 0.0 if zero_loads and rng.random() < 0.3 else rng.lognormvariate(0, 1) * 1e6
        parts.append({
            "topic": "t%d" % (i % topics), "partition": i // topics, "replicas": reps,
            "leader": rng.choice(reps),
            "size": int(rate * rng.uniform(100, 1000)), "nw_in": round(rate, 3), "nw_out": round(rate * rng.choice((0, 1, 2)), 3),
        })
    model = {"brokers": [{"id": b} for b in ids], "partitions": parts}
    if racks:
        for broker in model["brokers"]:
            broker["rack"] = "r%d" % (broker["id"] % racks)
    if drain:
        model["drain_brokers"] = list(drain)
    return model


def state_of(model_dict, movable=None):
    model = ClusterModel.from_dict(model_dict)
    return ClusterState(model, movable)


def random_actions(state, rng, count):
    """Valid-by-construction actions (distinct brokers kept) of every kind, each drawn on the state
    as it is when the caller asks for it (apply one before asking for the next)."""
    model = state.model
    n = model.n_brokers
    made = 0
    for attempt in range(count * 20):  # pylint: disable=unused-variable
        if made == count:
            return
        kind = rng.choice(("move", "leader", "swap"))
        p = rng.randrange(model.n_partitions)
        reps = state.replicas[p]
        if kind == "leader":
            followers = [b for b in reps if b != state.leader[p]]
            if followers:
                made += 1
                yield state.leader_move(p, rng.choice(followers))
            continue
        src = rng.choice(reps)
        others = [b for b in range(n) if b not in reps]
        if not others:
            continue
        dst = rng.choice(others)
        if kind == "move":
            made += 1
            yield state.move(p, src, dst)
            continue
        qs = [q for q in state.hosted[dst] if src not in state.replicas[q] and q != p]
        if qs:
            made += 1
            yield state.swap(p, src, rng.choice(qs), dst)
