"""kafka_reassignment's plan handling: parsing, fingerprint, the check against the cluster, triage."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.streamops.day2.plugins.module_utils._reassignment.plan import (
    ClusterView, PartitionState, PlanError, check_fingerprint, check_plan, load_plan, looks_mid_move, ongoing_endpoints,
    plan_fingerprint, rollback_plan, triage)


def plan(*entries):
    return {"version": 1, "partitions": [{"topic": t, "partition": p, "replicas": r} for t, p, r in entries]}


def cluster(assignments, brokers=(1, 2, 3), offline=(), isr=None, leaders=None):
    isr = isr or {}
    leaders = leaders or {}
    return ClusterView(
        brokers={b: b not in offline for b in brokers},
        partitions={key: PartitionState(tuple(r), leaders.get(key, r[0]), tuple(isr.get(key, r))) for key, r in assignments.items()},
    )


# --- parsing ---------------------------------------------------------------------------------

def test_the_json_kafkas_tool_reads_is_accepted_as_text_or_dict():
    text = '{"version":1,"partitions":[{"topic":"orders","partition":0,"replicas":[2,3],"log_dirs":["any","any"]}]}'
    assert load_plan(text) == plan(("orders", 0, [2, 3]))
    assert load_plan(json.loads(text)) == plan(("orders", 0, [2, 3]))


def test_version_defaults_to_1_and_an_empty_plan_is_valid():
    assert load_plan({"partitions": []}) == {"version": 1, "partitions": []}


@pytest.mark.parametrize("source, message", [
    ("{not json", "not valid JSON"),
    ([], "must be a mapping"),
    ({"version": 2, "partitions": []}, "version 2"),
    ({"version": 1}, "'partitions' must be a list"),
    ({"version": 1, "partitions": [], "extra": 1}, "unknown keys extra"),
    (plan(("", 0, [1])), "no topic name"),
    (plan(("t", -1, [1])), "partition number >= 0"),
    (plan(("t", True, [1])), "partition number >= 0"),
    (plan(("t", 0, [])), "non-empty list"),
    (plan(("t", 0, [1, "2"])), "not a broker id"),
    (plan(("t", 0, [1, True])), "not a broker id"),
    (plan(("t", 0, [1, 1])), "names a broker twice"),
    (plan(("t", 0, [1]), ("t", 0, [2])), "lists t-0 twice"),
    ({"version": 1, "partitions": [{"topic": "t", "partition": 0, "replicas": [1], "log_dirs": ["/data"]}]}, "log directories"),
    ({"version": 1, "partitions": [{"topic": "t", "partition": 0, "replicas": [1, 2], "log_dirs": ["any"]}]}, "one directory per replica"),
    ({"version": 1, "partitions": [{"topic": "t", "partition": 0, "replicas": [1], "leader": 1}]}, "unknown keys leader"),
])
def test_malformed_plans_are_refused_with_one_sentence(source, message):
    with pytest.raises(PlanError, match=message):
        load_plan(source)


# --- fingerprint -----------------------------------------------------------------------------

def test_fingerprint_ignores_entry_order_and_layout_but_not_replica_order():
    a = plan(("orders", 0, [1, 2]), ("audit", 3, [3, 1]))
    b = plan(("audit", 3, [3, 1]), ("orders", 0, [1, 2]))
    assert plan_fingerprint(a) == plan_fingerprint(b)
    assert plan_fingerprint(load_plan(json.dumps(a, indent=4))) == plan_fingerprint(a)
    assert plan_fingerprint(plan(("orders", 0, [2, 1]), ("audit", 3, [3, 1]))) != plan_fingerprint(a)
    assert plan_fingerprint(a).startswith("sha256:") and len(plan_fingerprint(a)) == 7 + 64


def test_fingerprint_check_accepts_the_approved_plan_with_or_without_prefix():
    p = plan(("orders", 0, [1, 2]))
    digest = plan_fingerprint(p)
    assert check_fingerprint(p, digest) == digest
    assert check_fingerprint(p, digest[len("sha256:"):]) == digest


def test_fingerprint_check_refuses_another_plan():
    approved = plan_fingerprint(plan(("orders", 0, [1, 2])))
    with pytest.raises(PlanError, match="not the plan that was approved"):
        check_fingerprint(plan(("orders", 0, [1, 3])), approved)


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 20), st.permutations([1, 2, 3, 4])),
                unique_by=lambda e: (e[0], e[1]), max_size=12), st.randoms())
def test_fingerprint_is_a_function_of_the_content_only(entries, rnd):
    shuffled = list(entries)
    rnd.shuffle(shuffled)
    assert plan_fingerprint(plan(*entries)) == plan_fingerprint(plan(*shuffled))


# --- check against the cluster ---------------------------------------------------------------

def test_a_plan_that_fits_the_cluster_passes():
    check_plan(plan(("orders", 0, [2, 3])), cluster({("orders", 0): [1, 2]}))


def test_every_mismatch_is_named_before_anything_moves():
    view = cluster({("orders", 0): [1, 2], ("orders", 1): [2, 3]}, offline=(3,))
    bad = plan(("orders", 0, [1, 2, 3]), ("orders", 7, [1, 2]), ("ghost", 0, [1]), ("orders", 1, [9, 3]))
    with pytest.raises(PlanError) as error:
        check_plan(bad, view)
    message = str(error.value)
    assert message.startswith("The plan does not match the cluster, nothing was moved:")
    assert "topic ghost does not exist" in message
    assert "partition orders-7 does not exist" in message
    assert "orders-0 would change replication factor from 2 to 3" in message
    assert "broker 9 is not in the cluster (brokers: 1,2,3)" in message
    assert "broker 3 is registered but offline" in message


def test_a_moving_partition_keeps_the_replication_factor_it_moves_from():
    view = cluster({("t", 0): [2, 1]})  # Kafka shows the union while [1] moves to [2]
    moving = {("t", 0): {"replicas": [2, 1], "adding_replicas": [2], "removing_replicas": [1]}}
    check_plan(plan(("t", 0, [2])), view, moving)
    with pytest.raises(PlanError, match="from 2 to 1"):
        check_plan(plan(("t", 0, [2])), view)


def test_the_union_of_a_move_no_longer_listed_is_read_again_not_taken_for_a_new_replication_factor():
    # t-0 just ended its move [1] -> [3] but the metadata still shows [3, 1]; t-1 is listed as moving; t-2 is at target;
    # t-3's plan really lowers its replication factor from [1, 2] to [3]: 3 is not among its replicas.
    view = cluster({("t", 0): [3, 1], ("t", 1): [3, 2], ("t", 2): [3], ("t", 3): [1, 2]})
    moving = {("t", 1): {"replicas": [3, 2], "adding_replicas": [3], "removing_replicas": [2]}}
    the_plan = plan(("t", 0, [3]), ("t", 1, [3]), ("t", 2, [3]), ("t", 3, [3]))
    assert looks_mid_move(the_plan, view, moving) == [("t", 0)]
    assert looks_mid_move(the_plan, cluster({("t", 0): [3], ("t", 1): [3], ("t", 2): [3], ("t", 3): [1, 2]}), {}) == []


def test_a_long_list_of_problems_is_cut_short():
    view = cluster({("t", 0): [1]})
    bad = plan(*[("t", n, [1]) for n in range(1, 9)])
    with pytest.raises(PlanError, match="and 3 more"):
        check_plan(bad, view)


# --- triage ----------------------------------------------------------------------------------

def test_partitions_at_target_are_skipped_and_the_rest_pending():
    view = cluster({("t", 0): [1, 2], ("t", 1): [2, 3], ("t", 2): [3, 1]})
    result = triage(plan(("t", 0, [1, 2]), ("t", 1, [3, 2]), ("t", 2, [1, 2])), view, {}, {("t", 2): 100})
    assert [m.name for m in result.done] == ["t-0"]
    assert [m.name for m in result.pending] == ["t-1", "t-2"]
    reorder, move = result.pending
    assert reorder.adding == () and not reorder.copies_data and reorder.bytes == 0
    assert move.adding == (2,) and move.removing == (3,) and move.bytes == 100


def test_a_move_already_heading_to_the_target_is_adopted_with_its_original_replicas():
    # Kafka reports the union while moving [1,2] -> [2,3]: replicas 2,3,1, adding 3, removing 1.
    view = cluster({("t", 0): [2, 3, 1]}, isr={("t", 0): [1, 2]}, leaders={("t", 0): 1})
    ongoing = {("t", 0): {"replicas": [2, 3, 1], "adding_replicas": [3], "removing_replicas": [1]}}
    result = triage(plan(("t", 0, [2, 3])), view, ongoing)
    assert not result.pending and not result.conflicts
    (move,) = result.running
    assert move.current == (2, 1) and move.target == (2, 3) and move.under_replicated


def test_a_move_heading_elsewhere_is_a_conflict():
    view = cluster({("t", 0): [2, 3, 1]})
    ongoing = {("t", 0): {"replicas": [2, 3, 1], "adding_replicas": [3], "removing_replicas": [1]}}
    result = triage(plan(("t", 0, [1, 3])), view, ongoing)
    assert len(result.conflicts) == 1 and result.conflicts[0][1] == (2, 3)


def test_ongoing_endpoints_split_the_union():
    assert ongoing_endpoints({"replicas": [4, 5, 1, 2], "adding_replicas": [4, 5], "removing_replicas": [1, 2]}) == ((1, 2), (4, 5))


def test_rollback_plan_holds_the_replicas_before_the_moves():
    view = cluster({("t", 1): [2, 3], ("t", 0): [1, 2]})
    moves = triage(plan(("t", 1, [1, 3]), ("t", 0, [3, 2])), view, {}).pending
    assert rollback_plan(moves) == plan(("t", 0, [1, 2]), ("t", 1, [2, 3]))
