"""The planner's last pass: replicas moved for a reason that later moves took away go back."""

from __future__ import annotations

import time

from ansible_collections.streamops.day2.plugins.module_utils.rebalance.plan import Planner


def _even_model():
    # Four brokers, each leading two and following four equal partitions: already balanced.
    parts = []
    for i in range(8):
        reps = [1 + i % 4, 1 + (i + 1) % 4, 1 + (i + 2) % 4]
        parts.append({"topic": "t", "partition": i, "replicas": reps, "leader": reps[0],
                      "size": 1000, "nw_in": 10.0, "nw_out": 20.0})
    return {"brokers": [{"id": b} for b in range(1, 5)], "partitions": parts}


def _planner(model, **options):
    planner = Planner(model, seed=0, **options)
    planner.search.deadline = time.perf_counter() + 60
    return planner


def test_a_replica_moved_for_nothing_goes_back_and_the_cost_falls():
    planner = _planner(_even_model())
    search, state = planner.search, planner.state
    p = 0
    src, dst = state.replicas[p][1], next(b for b in range(4) if b not in state.replicas[p])
    search.accept(state.move(p, src, dst))   # as if an earlier step had needed it
    cost = search.cost()
    search.move_back()
    assert sorted(state.replicas[p]) == sorted(state.orig_replicas[p])
    assert search.moved_back == 1 and search.cost() < cost
    assert state.recount()[0] == 0


def test_nothing_goes_back_onto_a_broker_being_drained():
    model = _even_model()
    model["drain_brokers"] = [4]
    planner = _planner(model)
    planner.search.repair()
    planner.search.move_back()
    drained = planner.model.broker_index[4]
    assert not planner.state.hosted[drained]


def test_the_moves_the_balance_needs_stay():
    model = _even_model()
    model["brokers"].append({"id": 5})      # an empty broker: the plan must fill it
    planner = Planner(model, seed=0)
    result = planner.run()
    summary = result["summary"]
    assert summary["replica_moves"] > 0
    assert summary["replicas"]["after"]["max_to_mean"] < summary["replicas"]["before"]["max_to_mean"]
    # The pass left no return that would lower the cost: run again, it puts nothing back.
    search = planner.search
    search.deadline, done = time.perf_counter() + 60, search.moved_back
    search.move_back()
    assert search.moved_back == done


def test_two_replicas_that_crossed_go_back_together():
    planner = _planner(_even_model())
    search, state = planner.search, planner.state
    # Partition 0 lives on brokers 1, 2, 3 and partition 2 on 3, 4, 1: trade 0's replica on 2 for 2's on 4.
    a, b = planner.model.broker_index[2], planner.model.broker_index[4]
    p, q = 0, 2
    assert state.leader[p] != a and state.leader[q] != b
    search.accept(state.swap(p, a, q, b))
    search.move_back()
    assert [sorted(r) for r in state.replicas] == [sorted(r) for r in state.orig_replicas]
    assert search.moved_back == 2 and state.recount()[0] == 0
    assert state.applied == 2, "one swap back, not two single moves through an uneven count"


def test_a_replica_that_stays_away_swaps_home_with_one_that_moved_in_there():
    # Six brokers in a ring, partition i on brokers i+1 and i+2: two replicas each.  p and q are three
    # times the others' size: saving an average replica's move is just the smallest gain that counts.
    parts = [{"topic": "t", "partition": i, "replicas": [1 + i, 1 + (i + 1) % 6], "size": 3000 if i in (0, 4) else 1000,
              "nw_in": 10.0, "nw_out": 20.0} for i in range(6)]
    planner = _planner({"brokers": [{"id": b} for b in range(1, 7)], "partitions": parts})
    search, state, index = planner.search, planner.state, planner.model.broker_index
    p, q = 0, 4                                       # on brokers 1, 2 and on 5, 6
    search.accept(state.move(p, index[2], index[4]))  # p left 2 for 4 ...
    search.accept(state.move(q, index[6], index[2]))  # ... and q came to 2 from elsewhere
    loads, cost = [list(load) for load in state.load], search.cost()
    search.verify = True                              # the swap's fused delta is checked against the goals'
    search._swap_back([(p, index[4], index[2]), (q, index[2], index[6])], -search.min_gain)  # what move_back leaves
    assert sorted(state.replicas[p]) == sorted(state.orig_replicas[p])   # p is home
    assert sorted(state.replicas[q]) == [index[4], index[5]]              # q went where p was
    assert state.load == loads                                            # every broker carries what it did
    assert state.recount()[0] == 1 and search.cost() < cost               # one replica's bytes saved
    assert search.moved_back == 1
