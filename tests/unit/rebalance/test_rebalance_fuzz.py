"""Fuzzing the planner's input (hypothesis): any model and any options give a plan or a ModelError, never another
exception and never a hang. Malformed values of drain_brokers (a number, true, NaN, a string) and a goal_weights that
is not a mapping used to raise TypeError (about 1 in 100 fuzzed models)."""

from __future__ import annotations

import copy
import math
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ansible_collections.streamops.day2.plugins.module_utils.rebalance.model import ModelError
from ansible_collections.streamops.day2.plugins.module_utils.rebalance.plan import plan_rebalance

from rebalance_helpers import random_model

SLACK = 5.0   # seconds over the time limit a run may take (model checks, the summary, a busy machine)

# Values that are wrong in every way a JSON/YAML file or a playbook can make them wrong.
junk = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6), st.sampled_from(["", "1", "-1", "1,2", "x", "nan", "٣"]),
    st.lists(st.one_of(st.integers(-3, 12), st.booleans(), st.none(), st.text(max_size=3), st.floats()), max_size=4),
    st.dictionaries(st.text(max_size=6), st.one_of(st.integers(-2, 3), st.floats(), st.text(max_size=3), st.none()), max_size=3),
)
PATHS = [
    ("drain_brokers",), ("brokers",), ("partitions",), ("brokers", 0), ("brokers", 0, "id"), ("brokers", 1, "rack"),
    ("brokers", 0, "capacity"), ("brokers", 0, "capacity", "disk"), ("partitions", 0), ("partitions", 0, "replicas"),
    ("partitions", 0, "replicas", 0), ("partitions", 0, "leader"), ("partitions", 0, "size"), ("partitions", 1, "nw_in"),
    ("partitions", 2, "nw_out"), ("partitions", 0, "topic"), ("partitions", 0, "partition"), ("unknown",),
]
OPTIONS = ["goal_weights", "balance_bands", "custom_goals", "max_moves", "max_bytes", "max_leader_moves", "drain_brokers",
           "excluded_topics", "capacity_threshold", "time_limit", "seed"]


def corrupt(model, path, value):
    """Put value at path, when the path's containers exist (an earlier change may have replaced them)."""
    target = model
    for key in path[:-1]:
        if isinstance(target, dict) and key in target or isinstance(target, list) and isinstance(key, int) and key < len(target):
            target = target[key]
        elif isinstance(target, dict) and isinstance(key, str):
            target = target.setdefault(key, {})
        else:
            return
    if isinstance(target, dict) or isinstance(target, list) and isinstance(path[-1], int) and path[-1] < len(target):
        target[path[-1]] = value


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10 ** 6), changes=st.lists(st.tuples(st.sampled_from(PATHS), junk), max_size=3),
       options=st.dictionaries(st.sampled_from(OPTIONS), junk, max_size=3))
def test_any_model_and_options_give_a_plan_or_a_model_error_quickly(seed, changes, options):
    model = random_model(seed, brokers=5, partitions=12, racks=0, rf=2, topics=3)
    for path, value in changes:
        corrupt(model, path, copy.deepcopy(value))
    options = dict(options)
    limit = options.get("time_limit")
    if not (isinstance(limit, (int, float)) and not isinstance(limit, bool) and 0 < limit < 2):
        options.setdefault("time_limit", 2)
    started = time.monotonic()
    try:
        result = plan_rebalance(model, **options)
    except ModelError as e:
        message = str(e)
        assert message and "\n" not in message and "Traceback" not in message
    else:
        assert set(result) == {"plan", "summary", "warnings"}
    limit = options["time_limit"]
    budget = (limit if isinstance(limit, (int, float)) and math.isfinite(limit) and limit > 0 else 2) + SLACK
    assert time.monotonic() - started < budget


@pytest.mark.parametrize("value", [5, True, float("nan"), "12", {"1": 2}, 1.5, [True], [None], [float("nan")]])
def test_malformed_drain_brokers_in_the_model_or_the_options_are_a_model_error(value):
    model = random_model(3, brokers=5, partitions=12, racks=0, rf=2, topics=3)
    with pytest.raises(ModelError, match="drain_brokers"):
        plan_rebalance(dict(model, drain_brokers=value), time_limit=1)
    with pytest.raises(ModelError, match="drain_brokers"):
        plan_rebalance(model, drain_brokers=value, time_limit=1)


@pytest.mark.parametrize("option, value", [
    ("goal_weights", [1, 2]), ("goal_weights", "nw_in=1"), ("goal_weights", 3), ("balance_bands", [0.1]),
    ("custom_goals", "x.Y"), ("custom_goals", 5), ("excluded_topics", "orders"), ("excluded_topics", 3),
    ("time_limit", float("nan")), ("time_limit", float("inf")), ("max_moves", float("nan")), ("max_bytes", float("inf")),
    ("seed", 1.5), ("capacity_threshold", float("nan")),
])
def test_malformed_options_are_a_model_error_naming_the_option(option, value):
    model = random_model(3, brokers=5, partitions=12, racks=0, rf=2, topics=3)
    with pytest.raises(ModelError, match=option):
        plan_rebalance(model, **{option: value, "time_limit": 1, **({option: value} if option == "time_limit" else {})})
