"""The swap sweep of brokers above a peak ceiling: heavy replicas traded for light ones, replica counts kept."""

from __future__ import annotations

import time

from ansible_collections.streamops.day2.plugins.module_utils.rebalance.plan import Planner


def _model():
    # Broker 1 holds one hot partition and ten medium ones; brokers 2-4 hold twelve light ones each.
    parts = [{"topic": "hot", "partition": 0, "replicas": [1], "leader": 1, "size": 100000, "nw_in": 100.0, "nw_out": 100.0}]
    parts += [{"topic": "medium", "partition": i, "replicas": [1], "leader": 1, "size": 10000, "nw_in": 10.0, "nw_out": 10.0}
              for i in range(10)]
    parts += [{"topic": "light", "partition": i, "replicas": [2 + i % 3], "leader": 2 + i % 3, "size": 1000, "nw_in": 1.0,
               "nw_out": 1.0} for i in range(36)]
    return {"brokers": [{"id": b} for b in range(1, 5)], "partitions": parts}


def test_a_broker_above_its_ceiling_trades_heavy_replicas_for_light_ones():
    planner = Planner(_model(), seed=0)
    search, state = planner.search, planner.state
    search.verify = True                     # every swap's fused delta checked against the goals' own
    search.deadline = time.perf_counter() + 60
    hot = planner.model.broker_index[1]
    counts = [len(h) for h in state.hosted]
    load, cost = state.load[0][hot], search.cost()
    gained = search._sweep()
    assert search.swaps > 0 and gained > 0
    assert [len(h) for h in state.hosted] == counts
    assert state.load[0][hot] < load and search.cost() < cost
    assert abs((cost - search.cost()) - gained) < 1e-9 * max(1.0, cost)


def test_no_broker_above_a_ceiling_no_sweep():
    model = _model()
    for part in model["partitions"]:
        part.update(size=1000, nw_in=1.0, nw_out=1.0)
    model["partitions"] = model["partitions"][:44]  # eleven equal partitions on each broker
    planner = Planner(model, seed=0)
    search = planner.search
    search.deadline = time.perf_counter() + 60
    assert all(over == float("inf") for row in search.cross_off for over in row)
    assert search._sweep() == 0.0 and search.swaps == 0
