"""A planner's plan, executed batch after batch in its own order (``order: [plan]``), leaves the
cluster better balanced after every batch and never makes a broker hotter than it was (or will be)."""

import copy

import pytest

from ansible_collections.streamops.day2.plugins.module_utils._reassignment.plan import Move
from ansible_collections.streamops.day2.plugins.module_utils._reassignment.schedule import Caps, keeps_plan_order, order_moves, simulate_batches
from ansible_collections.streamops.day2.plugins.module_utils.rebalance.plan import plan_rebalance

from tests.bench.planner.metrics import RESOURCES, loads   # the benchmark's own load sums, independent of the planner
from tests.unit.rebalance.rebalance_helpers import random_model


def peak(load, brokers):
    values = [load[b] for b in brokers]
    mean = sum(values) / len(values)
    return max(values) / mean if mean else 0.0


def spread(load, kept):
    """Sum of squared deviations from the mean of the brokers kept, over the mean squared (a drained broker's target is 0)."""
    mean = sum(load.values()) / len(kept)
    return sum((v - (mean if b in kept else 0.0)) ** 2 for b, v in load.items()) / (mean * mean) if mean else 0.0


@pytest.mark.parametrize("seed, drain, caps", [(3, (), None), (8, (2,), None), (3, (), Caps(cluster=4, per_broker=2)), (8, (), Caps(cluster=10, per_broker=3)),
                                               (21, (2,), Caps(cluster=6, per_broker=2))])
def test_balance_improves_after_every_batch_and_no_broker_gets_hotter(seed, drain, caps):
    model = random_model(seed, brokers=9, partitions=240, topics=8, empty_brokers=2, drain=drain, racks=3)
    plan = plan_rebalance(copy.deepcopy(model), seed=seed)["plan"]["partitions"]
    assignment = {(p["topic"], p["partition"]): (list(p["replicas"]), p["leader"]) for p in model["partitions"]}
    sizes = {(p["topic"], p["partition"]): p["size"] for p in model["partitions"]}
    moves = [Move(e["topic"], e["partition"], tuple(assignment[(e["topic"], e["partition"])][0]), tuple(e["replicas"]),
                  leader=assignment[(e["topic"], e["partition"])][1], size=sizes[(e["topic"], e["partition"])], index=i)
             for i, e in enumerate(plan)]
    # caps None: one move at a time, the finest batches there are.
    waves = simulate_batches(order_moves(moves, ["plan"]), caps, keeps_plan_order(["plan"])) if caps else [[m] for m in moves]
    assert len(waves) > 3
    final = dict(assignment)
    for m in moves:
        final[(m.topic, m.partition)] = (list(m.target), m.target[0])
    start_load, final_load = loads(model, assignment), loads(model, final)
    kept = [b["id"] for b in model["brokers"] if b["id"] not in drain]
    previous = start = sum(spread(start_load[r], kept) for r in RESOURCES)
    end = sum(spread(final_load[r], kept) for r in RESOURCES)
    for wave in waves:
        for m in wave:
            assignment[(m.topic, m.partition)] = (list(m.target), m.target[0])
        now = loads(model, assignment)
        for r in RESOURCES:
            for b in now[r]:
                # Never hotter than it was before the plan, nor than the plan takes it.
                assert now[r][b] <= max(start_load[r][b], final_load[r][b]) * (1 + 1e-9) + 1e-6, (r, b)
            assert peak(now[r], kept) <= peak(start_load[r], kept) + 1e-9, r
        # Balance (squared coefficient of variation, summed over resources) improves batch after batch; near the
        # end two changes may only help together, so the first of them may cost a little (at most 1% of the whole gain).
        total = sum(spread(now[r], kept) for r in RESOURCES)
        assert total <= previous + 1e-2 * (start - end)
        previous = total
    assert assignment == final
