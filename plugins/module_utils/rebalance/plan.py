# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning end to end: model in, Kafka reassignment plan and summary out.

The plan is exactly what ``kafka-reassign-partitions.sh --execute`` reads: only the partitions
whose replica list changes, each with its preferred leader first.  Both the module and the filter
call :func:`plan_rebalance`; every bad input surfaces as :class:`ModelError` with one sentence.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time

from ansible_collections.streamops.day2.plugins.module_utils.rebalance.constraints import Constraints
from ansible_collections.streamops.day2.plugins.module_utils.rebalance.goals import build_goals
from ansible_collections.streamops.day2.plugins.module_utils.rebalance.loads import ClusterState, broker_loads
from ansible_collections.streamops.day2.plugins.module_utils.rebalance.model import RESOURCES, ClusterModel, ModelError
from ansible_collections.streamops.day2.plugins.module_utils.rebalance.optimiser import Budget, HillClimber
from ansible_collections.streamops.day2.plugins.module_utils.rebalance.order import execution_order
from ansible_collections.streamops.day2.plugins.module_utils.rebalance.summary import resource_summary

DEFAULT_TIME_LIMIT = 60.0
# Unset, the search may take 60 s, or this many seconds per million replicas on a larger cluster:
# the search's work grows with the replicas, and on 3,000,000 it stops on its own after about 150 s.
TIME_LIMIT_PER_MILLION_REPLICAS = 50.0
DEFAULT_CAPACITY_THRESHOLD = 0.8


def final_replicas(replicas, leader):
    """Replica list with the leader first and the others in their current order."""
    return [leader] + [b for b in replicas if b != leader]


def reassignment(model, replicas, leader, movable=None, loads=None):
    """Kafka reassignment JSON for the partitions that change: their (leader-first) replica list,
    or only their leader (a partition led today by another replica than its first one, whose
    planned leader is that first replica, is listed unchanged: executing the plan elects it).

    The entries come in their safe-to-stop execution order (order.py): executed in that order, in
    batches, every batch leaves each broker at most as loaded as the larger of its load before and
    after the plan.  Partitions not movable (excluded topics) are never listed.  loads: the
    brokers' loads (before, after) when the caller has them already."""
    ids = model.broker_ids
    changed = []
    for p, old in enumerate(model.replicas):
        if movable is not None and not movable[p]:
            continue
        if leader[p] != model.leader[p]:
            changed.append(p)
        elif replicas[p] == old:
            # Nothing moved (most partitions): listed only if its leader is to become the preferred one.
            if old[0] != leader[p]:
                changed.append(p)
        elif final_replicas(replicas[p], leader[p]) != old:
            changed.append(p)
    out = []
    for p in execution_order(model, replicas, leader, changed, loads):
        out.append({"topic": model.topics[model.p_topic[p]], "partition": model.p_number[p],
                    "replicas": [ids[b] for b in final_replicas(replicas[p], leader[p])]})
    return {"version": 1, "partitions": out}


def default_time_limit(model):
    """The search's time limit when none is given: DEFAULT_TIME_LIMIT, more on a cluster of millions of replicas."""
    replicas = sum(len(r) for r in model.replicas)
    return max(DEFAULT_TIME_LIMIT, TIME_LIMIT_PER_MILLION_REPLICAS * replicas / 1e6)


def _check_time_limit(time_limit):
    if isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)) or not math.isfinite(time_limit) or time_limit <= 0:
        raise ModelError("time_limit must be a finite number of seconds > 0, got %r." % (time_limit,))
    return float(time_limit)


def _check_options(goal_weights, balance_bands, custom_goals, excluded_topics):
    """The shape of the options a playbook or a filter call may get wrong (their values are checked where they are used)."""
    for name, value in (("goal_weights", goal_weights), ("balance_bands", balance_bands)):
        if value is not None and not isinstance(value, dict):
            raise ModelError("%s must be a mapping of name to a number, got %r." % (name, value))
    for name, value in (("custom_goals", custom_goals), ("excluded_topics", excluded_topics)):
        if value is not None and not isinstance(value, (list, tuple)):
            raise ModelError("%s must be a list, got %r." % (name, value))


def _movable(model, excluded_topics):
    excluded = set()
    warnings = []
    for topic in excluded_topics or []:
        if not isinstance(topic, str):
            raise ModelError("excluded_topics must be topic names, got %r." % (topic,))
        if topic in model.topic_index:
            excluded.add(model.topic_index[topic])
        else:
            warnings.append("Excluded topic %s is not in the cluster model." % topic)
    return [t not in excluded for t in model.p_topic], warnings


class Planner:
    """One planning run; keeps the state, goals and search for callers that want to look inside
    (tests, benchmarks).  Most callers want :func:`plan_rebalance`."""

    def __init__(self, model, goal_weights=None, custom_goals=None, max_moves=None, max_bytes=None,
                 max_leader_moves=None, drain_brokers=None, excluded_topics=None,
                 capacity_threshold=DEFAULT_CAPACITY_THRESHOLD, time_limit=None, seed=0, settings=None,
                 balance_bands=None):
        self.started = time.perf_counter()
        _check_options(goal_weights, balance_bands, custom_goals, excluded_topics)
        if isinstance(model, ClusterModel):
            if drain_brokers:
                raise ModelError("Give drain_brokers with the model dict, not with an already built ClusterModel.")
            self.model = model
        else:
            self.model = ClusterModel.from_dict(model, drain_brokers=drain_brokers)
        self.budget = Budget(max_moves, max_bytes, max_leader_moves)
        self.time_limit = default_time_limit(self.model) if time_limit is None else _check_time_limit(time_limit)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ModelError("seed must be an integer, got %r." % (seed,))
        self.seed = seed
        movable, self.warnings = _movable(self.model, excluded_topics)
        self.goals = build_goals(goal_weights, custom_goals, balance_bands)
        self.state = ClusterState(self.model, movable)
        # Feasibility first: goals may assume there is something to balance onto.
        vetoes = [goal.allows for goal, weight in self.goals if callable(getattr(goal, "allows", None))]
        self.constraints = Constraints(self.state, capacity_threshold, vetoes)
        self.constraints.check_feasible()
        for goal, weight in self.goals:
            try:
                goal.bind(self.state)
            except ModelError:
                raise
            except Exception as e:  # a custom goal's bug must not become a traceback
                raise ModelError("Goal %s failed to start: %s: %s." % (goal.name, type(e).__name__, e))
        self.search = HillClimber(self.state, self.goals, self.constraints, self.budget,
                                  self.time_limit, seed, settings)

    def goal_costs(self):
        return {goal.name: weight * goal.cost() for goal, weight in self.goals}

    def run(self):
        model, state = self.model, self.state
        before = [list(load) for load in state.load]
        costs_before = self.goal_costs()
        try:
            self.search.run()
        except ModelError:
            raise
        except (ArithmeticError, LookupError, TypeError, ValueError, AttributeError) as e:
            # Only a custom goal can get here (the built-ins are tested); name the culprit.
            raise ModelError("A goal failed during the search: %s: %s." % (type(e).__name__, e))
        violations = self.constraints.violations()
        if violations:
            raise ModelError("The planner could not satisfy every hard constraint: %s" % violations[0])
        # Recompute from scratch: the incremental sums carry float drift, the summary should not.
        after = broker_loads(model, state.replicas, state.leader)
        moves, moved, leader_changes = state.recount()
        costs_after = self.goal_costs()
        plan = reassignment(model, state.replicas, state.leader, state.movable, (before, after))
        summary = resource_summary(before, after, range(model.n_brokers), state.active)
        summary.update({
            "replica_moves": moves,
            "leader_changes": leader_changes,
            "bytes_to_move": int(round(moved)),
            "partitions_changed": len(plan["partitions"]),
            "run_time": round(time.perf_counter() - self.started, 3),
            "stop_reason": self.search.stop_reason,
            "time_limit": self.time_limit,
            "actions_evaluated": self.search.evaluated,
            "goals": {name: {"before": round(costs_before[name], 9), "after": round(costs_after[name], 9)}
                      for name in costs_before},
        })
        return {"plan": plan, "summary": summary, "warnings": self.warnings}


def _check_frontier(frontier):
    if frontier is None:
        return []
    if not isinstance(frontier, (list, tuple)):
        raise ModelError("frontier must be a list of fractions of the full plan's bytes to move, like [0.25, 0.5], got %r." % (frontier,))
    fractions = []
    for value in frontier:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise ModelError("frontier entries must be fractions in (0, 1) of the full plan's bytes to move, got %r." % (value,))
        fractions.append(float(value))
    return sorted(set(fractions))


def frontier_point(fraction, budget, result):
    """One plan of the frontier with the figures an approval gate compares."""
    summary = result["summary"]
    return {
        "fraction": fraction, "max_bytes": budget, "plan": result["plan"], "summary": summary,
        "max_to_mean": {r: summary[r]["after"]["max_to_mean"] for r in RESOURCES},
        "bytes_to_move": summary["bytes_to_move"], "replica_moves": summary["replica_moves"],
    }


@contextlib.contextmanager
def _without_gc():
    """The cyclic garbage collector paused: the planner builds millions of small objects and no
    reference cycles, so its full collections would only rescan them (1.5 s of 36 at 300,000
    replicas, more at millions).  Whatever was collectable is collected once it runs again."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def plan_rebalance(model, frontier=None, **options):
    """Plan a rebalance of ``model`` (a dict in the cluster-model format, or a ClusterModel).

    Options: goal_weights, balance_bands, custom_goals, max_moves, max_bytes, max_leader_moves,
    drain_brokers, excluded_topics, capacity_threshold, time_limit, seed.  Returns {plan, summary, warnings}.

    frontier: fractions such as [0.25, 0.5]; besides the full plan, plan again under a budget of that
    share of the full plan's bytes to move, and return every point (the full plan last, fraction 1.0)
    as ``frontier``.  The full plan stays the ``plan``: balance within bounds first, then movement.

    Raises ModelError with one sentence for any bad input or unsatisfiable constraint.
    """
    with _without_gc():
        return _plan(model, frontier, options)


def _plan(model, frontier, options):
    fractions = _check_frontier(frontier)
    if not fractions:
        return Planner(model, **options).run()
    if not isinstance(model, ClusterModel):
        # Validated and indexed once for every point of the frontier.
        model = ClusterModel.from_dict(model, drain_brokers=options.pop("drain_brokers", None))
    else:
        options.pop("drain_brokers", None)
    full = Planner(model, **options).run()
    moved = full["summary"]["bytes_to_move"]
    points = []
    for fraction in fractions:
        budget = int(moved * fraction)
        if options.get("max_bytes") is not None:
            budget = min(budget, options["max_bytes"])
        if budget < 1:
            full["warnings"].append("Frontier point %g: the full plan moves no bytes, so there is nothing to cut." % fraction)
            continue
        try:
            points.append(frontier_point(fraction, budget, Planner(model, **dict(options, max_bytes=budget)).run()))
        except ModelError as e:
            full["warnings"].append("Frontier point %g (at most %d bytes): %s" % (fraction, budget, e))
    points.append(frontier_point(1.0, options.get("max_bytes"), full))
    full["frontier"] = points
    return full
