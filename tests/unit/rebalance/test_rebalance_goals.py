"""Every goal's delta equals the change of its cost recomputed from scratch, and the optimiser's
fused evaluation equals the weighted sum of the goals' own deltas."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.streamops.day2.plugins.module_utils.rebalance.constraints import Constraints
from ansible_collections.streamops.day2.plugins.module_utils.rebalance.goals import (
    BUILTIN_GOALS, DEFAULT_WEIGHTS, ResourceBalanceGoal, build_goals,
)
from ansible_collections.streamops.day2.plugins.module_utils.rebalance.loads import broker_loads
from ansible_collections.streamops.day2.plugins.module_utils.rebalance.optimiser import HillClimber

from rebalance_helpers import random_actions, random_model, state_of

models = st.fixed_dictionaries({
    "seed": st.integers(0, 10 ** 6),
    "brokers": st.integers(3, 9),
    "partitions": st.integers(1, 40),
    "racks": st.sampled_from([0, 2, 3]),
    "rf": st.integers(1, 3),
    "topics": st.integers(1, 6),
    "empty_brokers": st.integers(0, 2),
    "zero_loads": st.booleans(),
})


def close(a, b):
    return math.isclose(a, b, rel_tol=1e-7, abs_tol=1e-12)


@settings(max_examples=60, deadline=None)
@given(params=models, drain=st.booleans(), action_seed=st.integers(0, 10 ** 6))
def test_each_goal_delta_matches_recomputed_cost(params, drain, action_seed):
    model = random_model(drain=(params["brokers"],) if drain else (), **params)
    state = state_of(model)
    goals = [make() for make in BUILTIN_GOALS.values()]
    goals += [ResourceBalanceGoal(resource, band=0.05) for resource in ("nw_in", "nw_out", "disk", "replicas", "leaders")]
    for goal in goals:
        goal.bind(state)
    rng = random.Random(action_seed)
    for action in random_actions(state, rng, 25):
        before = [goal.cost() for goal in goals]
        deltas = [goal.delta(action) for goal in goals]
        state.apply(action)
        for goal in goals:
            goal.applied(action)
        for goal, b, d in zip(goals, before, deltas):
            assert close(goal.cost() - b, d), (goal.name, action, goal.cost() - b, d)


@settings(max_examples=40, deadline=None)
@given(params=models, action_seed=st.integers(0, 10 ** 6))
def test_incremental_loads_match_full_recomputation(params, action_seed):
    state = state_of(random_model(**params))
    rng = random.Random(action_seed)
    for action in random_actions(state, rng, 30):
        state.apply(action)
    fresh = broker_loads(state.model, state.replicas, state.leader)
    for kept, full in zip(state.load, fresh):
        scale = 1e-9 * (sum(full) + 1)  # incremental sums drift by float rounding, relative to the total
        assert all(abs(a - b) <= scale for a, b in zip(kept, full))
    assert state.recount() == pytest.approx((state.replica_moves, state.bytes_moved, state.leader_changes))
    for b in range(state.model.n_brokers):
        assert sorted(state.hosted[b]) == sorted(p for p, r in enumerate(state.replicas) if b in r)
        assert sorted(state.led[b]) == sorted(p for p, lead in enumerate(state.leader) if lead == b)


@settings(max_examples=40, deadline=None)
@given(params=models, action_seed=st.integers(0, 10 ** 6), weights=st.dictionaries(
    st.sampled_from(sorted(DEFAULT_WEIGHTS)), st.floats(0, 3), max_size=4), bands=st.dictionaries(
    st.sampled_from(["nw_in", "nw_out", "disk", "replicas", "leaders"]), st.floats(0, 0.3), max_size=3))
def test_fused_evaluation_equals_goal_deltas(params, action_seed, weights, bands):
    state = state_of(random_model(**params))
    goals = build_goals(weights, bands=bands)
    for goal, weight in goals:
        goal.bind(state)
    climber = HillClimber(state, goals, Constraints(state))
    rng = random.Random(action_seed)
    for action in random_actions(state, rng, 20):
        climber._check(action)  # raises if the fused delta differs from the goals' deltas
        climber.accept(action)


def test_resource_goal_uses_capacity_shares():
    model = random_model(1, brokers=3, partitions=12, racks=0, rf=1, empty_brokers=0)
    for broker, disk in zip(model["brokers"], (1e12, 2e12, 1e12)):
        broker["capacity"] = {"disk": disk}
    state = state_of(model)
    goal = ResourceBalanceGoal("disk")
    goal.bind(state)
    total = sum(state.load[2])
    assert goal.target == pytest.approx([total / 4, total / 2, total / 4])


def test_drained_brokers_have_no_target():
    state = state_of(random_model(2, brokers=4, drain=(4,)))
    goal = ResourceBalanceGoal("replicas")
    goal.bind(state)
    assert goal.target[3] == 0 and goal.k[3] == 0
    assert sum(goal.target) == pytest.approx(sum(state.load[3]))
