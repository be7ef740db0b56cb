"""The frontier of plans along the balance/movement trade-off, and the floors the peak goal aims at."""

import pytest

from ansible_collections.streamops.day2.plugins.module_utils.rebalance.goals import balance_floors
from ansible_collections.streamops.day2.plugins.module_utils.rebalance.model import ModelError
from ansible_collections.streamops.day2.plugins.module_utils.rebalance.plan import plan_rebalance

from rebalance_helpers import random_model, state_of


def test_frontier_points_stay_within_their_budget_and_the_full_plan_wins():
    model = random_model(5, brokers=8, partitions=200, topics=10, empty_brokers=2, racks=0)
    result = plan_rebalance(model, seed=1, frontier=[0.5, 0.25])
    points = result["frontier"]
    assert [p["fraction"] for p in points] == [0.25, 0.5, 1.0]
    full = points[-1]
    assert full["plan"] == result["plan"] and full["summary"] == result["summary"]
    moved = full["bytes_to_move"]
    for point in points[:-1]:
        assert 0 < point["bytes_to_move"] <= point["max_bytes"] <= moved * point["fraction"]
        assert set(point["max_to_mean"]) == {"nw_in", "nw_out", "disk", "replicas", "leaders"}
    # Less movement buys less balance: the disk peak of a cheaper point is never lower than the full plan's.
    assert points[0]["max_to_mean"]["disk"] >= full["max_to_mean"]["disk"] - 1e-9
    assert points[0]["bytes_to_move"] <= points[1]["bytes_to_move"] <= moved


def test_frontier_is_deterministic_and_absent_unless_asked():
    model = random_model(6, brokers=6, partitions=90, topics=6, racks=0)
    assert "frontier" not in plan_rebalance(model, seed=2)
    one, two = (plan_rebalance(model, seed=2, frontier=[0.5]) for dummy in range(2))
    assert [p["plan"] for p in one["frontier"]] == [p["plan"] for p in two["frontier"]]


@pytest.mark.parametrize("value", [0.5, [0], [1], [1.5], ["half"], [True]])
def test_bad_frontier_is_a_model_error(value):
    with pytest.raises(ModelError, match="frontier"):
        plan_rebalance(random_model(1), frontier=value)


def test_floors_are_the_busiest_partition_whole_counts_and_small_racks():
    model = {
        "brokers": [{"id": 1, "rack": "a"}, {"id": 2, "rack": "a"}, {"id": 3, "rack": "b"}],
        "partitions": [
            {"topic": "t", "partition": 0, "replicas": [1, 3], "size": 600, "nw_in": 10, "nw_out": 0},
            {"topic": "t", "partition": 1, "replicas": [2, 3], "size": 100, "nw_in": 10, "nw_out": 0},
            {"topic": "t", "partition": 2, "replicas": [1, 3], "size": 100, "nw_in": 10, "nw_out": 0},
        ],
    }
    floors = dict(zip(("nw_in", "nw_out", "disk", "replicas", "leaders"), balance_floors(state_of(model))))
    # One replica per rack: rack b's single broker carries half of everything.
    assert floors["nw_in"] == pytest.approx(30 / 20.0)
    assert floors["disk"] == pytest.approx(800 / (1600 / 3.0))
    assert floors["replicas"] == pytest.approx(3 / 2.0)
    # Three leaders over three brokers: a whole leader each is reachable.
    assert floors["leaders"] == pytest.approx(1.0)
    # The busiest leader's nw_out (10 bytes/s to its follower) over the mean (10): a single partition's share.
    assert floors["nw_out"] == pytest.approx(1.0)
