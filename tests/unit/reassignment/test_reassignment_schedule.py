"""kafka_reassignment's ordering strategies and the sliding window under per-broker and cluster caps."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.streamops.day2.plugins.module_utils._reassignment.plan import Move, PlanError
from ansible_collections.streamops.day2.plugins.module_utils._reassignment.schedule import Caps, broker_load, next_batch, order_moves, simulate_batches


def move(partition, current, target, size=0, under_replicated=False, leader=None, topic="t"):
    return Move(topic, partition, tuple(current), tuple(target), leader=current[0] if leader is None else leader,
                under_replicated=under_replicated, size=size, index=partition)


# --- ordering --------------------------------------------------------------------------------

def test_small_first_and_large_first_order_by_bytes_to_copy():
    moves = [move(0, [1], [2], size=30), move(1, [1], [3], size=10), move(2, [1, 2], [3, 4], size=10)]  # bytes 30, 10, 20
    assert [m.partition for m in order_moves(moves, ["small_first"])] == [1, 2, 0]
    assert [m.partition for m in order_moves(moves, ["large_first"])] == [0, 2, 1]


def test_under_replicated_last_then_small_first_chain():
    moves = [move(0, [1], [2], size=5, under_replicated=True), move(1, [1], [2], size=50), move(2, [1], [2], size=7)]
    assert [m.partition for m in order_moves(moves, ["under_replicated_last", "small_first"])] == [2, 1, 0]
    assert [m.partition for m in order_moves(moves, ["small_first", "under_replicated_last"])] == [0, 2, 1]


def test_plan_order_is_the_last_tie_breaker():
    moves = [move(2, [1], [2], size=1), move(0, [1], [2], size=1), move(1, [1], [2], size=1)]
    assert [m.partition for m in order_moves(moves, ["small_first"])] == [0, 1, 2]
    assert [m.partition for m in order_moves(moves, ["plan"])] == [0, 1, 2]
    assert [m.partition for m in order_moves(moves, [])] == [0, 1, 2]


@pytest.mark.parametrize("strategies, message", [(["fastest"], "Unknown order 'fastest'"),
                                                 (["small_first", "large_first"], "not both")])
def test_bad_orders_are_refused(strategies, message):
    with pytest.raises(PlanError, match=message):
        order_moves([], strategies)


# --- brokers a move occupies ------------------------------------------------------------------

def test_a_move_occupies_its_leader_and_its_new_replicas():
    assert move(0, [1, 2], [3, 2], leader=2).brokers == {2, 3}
    assert move(0, [1, 2], [3, 4]).brokers == {1, 3, 4}


def test_a_reorder_copies_nothing_and_occupies_no_broker():
    assert move(0, [1, 2], [2, 1]).brokers == frozenset()


def test_an_offline_leader_falls_back_to_the_first_replica():
    assert move(0, [1, 2], [3, 2], leader=-1).brokers == {1, 3}


# --- the window --------------------------------------------------------------------------------

def test_per_broker_cap_skips_a_move_and_takes_the_next_that_fits():
    queue = [move(0, [1], [2]), move(1, [1], [3]), move(2, [2], [3]), move(3, [3], [2])]
    batch = next_batch(queue, [], Caps(cluster=10, per_broker=1))
    assert [m.partition for m in batch] == [0]  # 0 takes 1 and 2; 1 needs 1; 2 needs 2; 3 needs 2
    batch = next_batch(queue[1:], [queue[0]], Caps(cluster=10, per_broker=2))
    assert [m.partition for m in batch] == [1, 2]  # then brokers 2 and 3 are full, so 3 waits


def test_cluster_cap_counts_moves_already_running():
    queue = [move(n, [1], [2], topic="q") for n in range(5)]
    running = [move(10, [3], [4])]
    assert len(next_batch(queue, running, Caps(cluster=3, per_broker=100))) == 2


def test_reorders_take_a_cluster_slot_but_no_broker_slot():
    queue = [move(0, [1, 2], [2, 1]), move(1, [1, 2], [2, 1])]
    running = [move(5, [1], [2]), move(6, [1], [2])]
    assert len(next_batch(queue, running, Caps(cluster=10, per_broker=2))) == 2
    assert len(next_batch(queue, running, Caps(cluster=3, per_broker=2))) == 1


def test_simulated_waves_cover_every_move_once():
    moves = [move(n, [1 + n % 3], [1 + (n + 1) % 3]) for n in range(9)]
    waves = simulate_batches(moves, Caps(cluster=4, per_broker=2))
    assert sorted(m.partition for w in waves for m in w) == list(range(9))
    assert all(len(w) <= 4 for w in waves)


@pytest.mark.parametrize("kwargs, message", [({"cluster": 0}, "max_concurrent_moves must"),
                                             ({"per_broker": 0}, "max_concurrent_moves_per_broker must"),
                                             ({"cluster": True}, "max_concurrent_moves must")])
def test_caps_must_be_positive(kwargs, message):
    with pytest.raises(PlanError, match=message):
        Caps(**kwargs)


@settings(max_examples=200)
@given(st.lists(st.tuples(st.lists(st.integers(1, 6), min_size=1, max_size=3, unique=True),
                          st.lists(st.integers(1, 6), min_size=1, max_size=3, unique=True)), max_size=30),
       st.integers(1, 8), st.integers(1, 4))
def test_the_window_never_breaks_a_cap(pairs, cluster_cap, broker_cap):
    caps = Caps(cluster=cluster_cap, per_broker=broker_cap)
    queue = [move(n, cur, tgt) for n, (cur, tgt) in enumerate(pairs)]
    running = []
    while queue:
        batch = next_batch(queue, running, caps)
        running += batch
        assert len(running) <= cluster_cap
        assert all(count <= broker_cap for count in broker_load(running).values())
        taken = {m.partition for m in batch}
        queue = [m for m in queue if m.partition not in taken]
        if running:
            running.pop(0)  # the oldest move finishes
        elif not batch:
            pytest.fail("the window stalled with nothing running")
