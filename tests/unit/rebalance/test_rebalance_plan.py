"""The planner end to end: hard constraints, budgets, reproducibility, stability, plan format,
quality on a skewed model, and one clear sentence for every infeasible request."""

from __future__ import annotations

import copy
import math

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.streamops.day2.plugins.module_utils.rebalance.loads import broker_loads
from ansible_collections.streamops.day2.plugins.module_utils.rebalance.model import ModelError
from ansible_collections.streamops.day2.plugins.module_utils.rebalance.plan import Planner, default_time_limit, plan_rebalance

from rebalance_helpers import random_model


def apply_plan(model, plan):
    """The model as it is once the plan is executed and preferred leaders elected."""
    after = copy.deepcopy(model)
    changes = {(e["topic"], e["partition"]): e["replicas"] for e in plan["partitions"]}
    for part in after["partitions"]:
        new = changes.get((part["topic"], part["partition"]))
        if new is not None:
            part["replicas"] = list(new)
            part["leader"] = new[0]
    drained = set(after.pop("drain_brokers", []))
    after["brokers"] = [b for b in after["brokers"] if b["id"] not in drained]
    return after


def rack_ok(model, replicas):
    racks = {b["id"]: b.get("rack") for b in model["brokers"]}
    if not any(racks.values()):
        return True
    kept = {racks[b["id"]] for b in model["brokers"] if b["id"] not in set(model.get("drain_brokers", []))}
    counts = {}
    for b in replicas:
        counts[racks[b]] = counts.get(racks[b], 0) + 1
    limit = 1 if len(kept) >= len(replicas) else math.ceil(len(replicas) / len(kept))
    return max(counts.values()) <= limit


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10 ** 6), brokers=st.integers(4, 9), racks=st.sampled_from([0, 2, 3]),
       rf=st.integers(1, 3), drain=st.booleans(), excluded=st.booleans())
def test_hard_constraints_always_hold(seed, brokers, racks, rf, drain, excluded):
    model = random_model(seed, brokers=brokers, partitions=30, racks=racks, rf=rf, topics=4,
                         drain=(brokers - 1,) if drain else ())
    excluded_topics = ["t3"] if excluded and not drain else []
    try:
        result = plan_rebalance(model, excluded_topics=excluded_topics, seed=seed, time_limit=20)
    except ModelError as e:  # only an honest infeasibility may stop it
        assert "rack" in str(e) or "replication factor" in str(e), str(e)
        return
    after = apply_plan(model, result["plan"])
    before = {(p["topic"], p["partition"]): p for p in model["partitions"]}
    ids = {b["id"] for b in after["brokers"]}
    for part in after["partitions"]:
        old = before[(part["topic"], part["partition"])]
        assert len(part["replicas"]) == len(old["replicas"]) == len(set(part["replicas"]))
        assert set(part["replicas"]) <= ids, "a replica was left on a drained broker"
        if part["topic"] in excluded_topics:
            assert part["replicas"] == old["replicas"]
        else:
            assert rack_ok(model, part["replicas"]), part
    for entry in result["plan"]["partitions"]:
        assert entry["topic"] not in excluded_topics


def test_plan_lists_only_changed_partitions_leader_first():
    model = random_model(7, brokers=6, partitions=40)
    result = plan_rebalance(model, seed=1)
    current = {(p["topic"], p["partition"]): p for p in model["partitions"]}
    assert result["plan"]["version"] == 1 and result["plan"]["partitions"]
    for entry in result["plan"]["partitions"]:
        assert set(entry) == {"topic", "partition", "replicas"}
        now = current[(entry["topic"], entry["partition"])]
        # Changed replicas or order, or a leader to elect back onto the first replica.
        assert entry["replicas"] != now["replicas"] or now["leader"] != now["replicas"][0]
    summary = result["summary"]
    assert summary["partitions_changed"] == len(result["plan"]["partitions"])
    for resource in ("nw_in", "nw_out", "disk", "replicas", "leaders"):
        for when in ("before", "after"):
            assert set(summary[resource][when]) == {"min", "max", "mean", "sd", "max_to_mean"}
    # The summary's 'after' is what the plan produces once executed.
    executed = apply_plan(model, result["plan"])
    planner = Planner(executed)
    loads = broker_loads(planner.model)
    assert max(loads[2]) == pytest.approx(summary["disk"]["after"]["max"], rel=1e-6)
    assert max(loads[4]) == summary["leaders"]["after"]["max"]


def test_same_seed_same_plan_and_second_run_proposes_nothing():
    model = random_model(11, brokers=9, partitions=300, topics=12, empty_brokers=2)
    first = plan_rebalance(model, seed=42)
    assert first == plan_rebalance(model, seed=42) or _same_but_time(first, plan_rebalance(model, seed=42))
    assert first["summary"]["replica_moves"] > 0
    second = plan_rebalance(apply_plan(model, first["plan"]), seed=7)
    assert second["summary"]["replica_moves"] <= 2
    assert second["summary"]["leader_changes"] <= 2


def _same_but_time(a, b):
    a, b = copy.deepcopy(a), copy.deepcopy(b)
    for r in (a, b):
        r["summary"].pop("run_time")
    return a == b


@pytest.mark.parametrize("budget, used", [("max_moves", "replica_moves"), ("max_bytes", "bytes_to_move"),
                                          ("max_leader_moves", "leader_changes")])
def test_budgets_are_respected(budget, used):
    model = random_model(13, brokers=8, partitions=200, topics=10, empty_brokers=2, racks=0)  # nothing forced
    free = plan_rebalance(model, seed=1)["summary"]
    limit = max(1, int(free[used] * 0.3))
    limited = plan_rebalance(model, seed=1, **{budget: limit})["summary"]
    assert 0 < limited[used] <= limit


def test_drained_brokers_end_empty_and_quality_on_a_skewed_model():
    # No racks here: with one replica per rack, a rack with fewer brokers sets a floor above 1.1.
    model = random_model(17, brokers=12, partitions=600, topics=20, empty_brokers=2, drain=(5,), racks=0)
    result = plan_rebalance(model, seed=3)
    after = apply_plan(model, result["plan"])
    assert all(5 not in p["replicas"] for p in after["partitions"])
    summary = result["summary"]
    assert summary["stop_reason"] == "converged"
    for resource in ("nw_in", "nw_out", "disk", "replicas", "leaders"):
        assert summary[resource]["after"]["max_to_mean"] <= 1.1, resource
    for resource in ("nw_in", "nw_out"):
        assert summary[resource]["after"]["sd"] <= 0.1 * summary[resource]["before"]["sd"], resource


def test_bands_and_movement_weights_trade_evenness_for_fewer_moves():
    model = random_model(47, brokers=10, partitions=400, topics=12, empty_brokers=2, racks=0)
    full = plan_rebalance(model, seed=2)["summary"]
    banded = plan_rebalance(model, seed=2, balance_bands={r: 0.1 for r in ("nw_in", "nw_out", "disk", "replicas", "leaders")})["summary"]
    thrifty = plan_rebalance(model, seed=2, goal_weights={"movement": 0.3, "replica_moves": 0.3})["summary"]
    for cheaper in (banded, thrifty):
        assert cheaper["bytes_to_move"] < full["bytes_to_move"]
        assert cheaper["replica_moves"] < full["replica_moves"]
    for resource in ("nw_in", "disk", "replicas"):
        assert banded[resource]["after"]["max_to_mean"] <= 1.1 + 0.05  # within the band, give or take one replica


def test_time_limit_returns_a_valid_plan_so_far():
    model = random_model(53, brokers=9, partitions=300, racks=3, drain=(9,))
    result = plan_rebalance(model, time_limit=1e-6)
    assert result["summary"]["stop_reason"] == "time limit"
    after = apply_plan(model, result["plan"])
    assert all(9 not in p["replicas"] and rack_ok(model, p["replicas"]) for p in after["partitions"])  # repairs always finish


def test_unset_time_limit_is_60_s_and_grows_past_a_million_replicas():
    model = random_model(53, brokers=9, partitions=30, racks=3)
    result = plan_rebalance(model)
    assert result["summary"]["time_limit"] == 60.0
    assert plan_rebalance(model, time_limit=7)["summary"]["time_limit"] == 7.0

    class Replicas:  # only the replica lists count
        def __init__(self, partitions, rf):
            self.replicas = [range(rf)] * partitions

    assert default_time_limit(Replicas(400000, 3)) == 60.0  # 1.2 M replicas: still the floor
    assert default_time_limit(Replicas(1000000, 3)) == 150.0


def test_racks_strict_when_enough_and_even_when_fewer():
    strict = plan_rebalance(random_model(19, brokers=6, partitions=60, racks=3, rf=3))
    assert strict["summary"]["replica_moves"] > 0  # random start breaks racks: repaired
    model = random_model(19, brokers=6, partitions=60, racks=3, rf=3)
    assert all(rack_ok(model, p["replicas"]) for p in apply_plan(model, strict["plan"])["partitions"])
    model = random_model(23, brokers=6, partitions=60, racks=2, rf=3)
    after = apply_plan(model, plan_rebalance(model)["plan"])
    racks = {b["id"]: b["rack"] for b in model["brokers"]}
    for part in after["partitions"]:
        assert len({racks[b] for b in part["replicas"]}) == 2  # 2 + 1: evenly over both racks


def test_capacity_limits_hold():
    model = random_model(29, brokers=6, partitions=80, racks=0, empty_brokers=2)
    disk = sum(p["size"] * len(p["replicas"]) for p in model["partitions"])
    for broker in model["brokers"]:
        broker["capacity"] = {"disk": disk / 6 * 1.3}  # at 0.8: room for 1.04x the mean
    result = plan_rebalance(model, capacity_threshold=0.8)
    assert result["summary"]["disk"]["after"]["max"] <= disk / 6 * 1.3 * 0.8 * (1 + 1e-9)


BAD_REQUESTS = [
    ("rf above brokers", dict(brokers=3, rf=3, racks=0), dict(drain_brokers=[3]), "replication factor 3 but only 2 brokers"),
    ("unsatisfiable racks", dict(brokers=5, rf=4, racks=2, empty_brokers=0), dict(drain_brokers=[4]), "cannot be spread over racks"),
    ("zero moves", {}, dict(max_moves=0), "max_moves is 0"),
    ("zero bytes", {}, dict(max_bytes=0), "max_bytes is 0"),
    ("zero leader moves", {}, dict(max_leader_moves=0), "max_leader_moves is 0"),
    ("negative budget", {}, dict(max_moves=-3), "max_moves must be a positive number"),
    ("unknown goal", {}, dict(goal_weights={"cpu": 1}), "Unknown goal 'cpu'"),
    ("negative weight", {}, dict(goal_weights={"disk": -1}), "The weight of goal disk"),
    ("zero time", {}, dict(time_limit=0), "time_limit must be"),
    ("bad threshold", {}, dict(capacity_threshold=1.5), "capacity_threshold must be a fraction"),
    ("drain everything", dict(brokers=3, rf=1, racks=0), dict(drain_brokers=[1, 2, 3]), "Every broker is being drained"),
    ("forced moves over budget", dict(brokers=6, partitions=60), dict(drain_brokers=[1], max_moves=1), "need max_moves="),
    ("band out of range", {}, dict(balance_bands={"disk": 1.5}), "The balance band of disk must be a fraction"),
    ("band of unknown resource", {}, dict(balance_bands={"cpu": 0.1}), "Unknown resource 'cpu' in balance bands"),
]


@pytest.mark.parametrize("what, shape, options, culprit", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_infeasible_requests_are_one_sentence(what, shape, options, culprit):
    with pytest.raises(ModelError) as info:
        plan_rebalance(random_model(31, **shape), **options)
    message = str(info.value)
    assert culprit in message, message
    assert "\n" not in message and message.endswith("."), message


def test_excluded_topic_on_drained_broker_is_refused():
    model = random_model(37, brokers=5, partitions=20, racks=0, topics=2)
    victim = model["partitions"][0]
    with pytest.raises(ModelError, match="excluded topic %s has a replica on drained broker %d" % (victim["topic"], victim["replicas"][0])):
        plan_rebalance(model, excluded_topics=[victim["topic"]], drain_brokers=[victim["replicas"][0]])


def test_capacity_too_small_is_refused():
    model = random_model(41, brokers=4, partitions=20, racks=0)
    for broker in model["brokers"]:
        broker["capacity"] = {"disk": 1}
    with pytest.raises(ModelError, match="disk load .* exceeds what the brokers may carry at 80% of their capacity"):
        plan_rebalance(model)


def test_unknown_excluded_topic_is_a_warning():
    result = plan_rebalance(random_model(43), excluded_topics=["nope"])
    assert result["warnings"] == ["Excluded topic nope is not in the cluster model."]
