# Copyright: streamops.day2 contributors
# Apache License 2.0 (see LICENSE)
"""The hill climber: repair what must change, then take the best improving action until none is left.

1. Repair (forced, in this order): replicas on drained brokers, partitions breaking rack
   awareness, brokers above a capacity limit.  Each offending replica goes to the allowed broker
   where the weighted cost rises least.
2. Climb: pick a source, the broker furthest above its target for some weighted resource; draw
   candidates from it (leadership moves to its followers, which move no data, and replica moves
   of a random sample of its replicas to the brokers furthest below target); apply the best one
   if it lowers the total cost.  A source with nothing to offer rests for a while.
3. Plateau: when no source offers a single improving action, try swaps (a replica each way
   between a loaded and a light broker), then larger samples; stop when those find nothing too.

Every delta is O(1) in the size of the cluster, so a step costs the same on 12 brokers as on 200.
The random generator is seeded, so a seed gives the same plan (unless the time limit cuts in).
"""

from __future__ import annotations

import heapq
import random
import time

from ansible_collections.streamops.day2.plugins.module_utils.rebalance.goals import Goal, ResourceBalanceGoal
from ansible_collections.streamops.day2.plugins.module_utils.rebalance.model import RESOURCES, ModelError

# An action must lower the cost by more than this to count (guards against float noise cycles).
EPSILON = 1e-13


class Budget:
    """Limits on the plan, counted against the original assignment (None = no limit)."""

    def __init__(self, max_moves=None, max_bytes=None, max_leader_moves=None):
        for name, value in (("max_moves", max_moves), ("max_bytes", max_bytes), ("max_leader_moves", max_leader_moves)):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ModelError("%s must be a positive number, got %r." % (name, value))
            if value == 0:
                raise ModelError("%s is 0, so no plan could change anything; leave it unset for no limit." % name)
        self.max_moves = max_moves
        self.max_bytes = max_bytes
        self.max_leader_moves = max_leader_moves

    @property
    def limited(self):
        return not (self.max_moves is None and self.max_bytes is None and self.max_leader_moves is None)

    def allows(self, state, action):
        if self.max_moves is not None and action.dmoves > 0 and state.replica_moves + action.dmoves > self.max_moves:
            return False
        if self.max_bytes is not None and action.dbytes > 0 and state.bytes_moved + action.dbytes > self.max_bytes:
            return False
        if self.max_leader_moves is not None and action.dlead > 0 and state.leader_changes + action.dlead > self.max_leader_moves:
            return False
        return True


class SearchSettings:
    """Knobs of the search; the defaults suit clusters from a handful to hundreds of brokers."""

    replica_sample = 12        # replicas of a source tried per step
    leader_sample = 12         # partitions led by a source tried per step
    destinations = 6           # lightest brokers (for the source's resource) tried per step
    extra_destinations = 3     # plus the lightest overall and random ones, for variety
    swap_sample = 8            # replicas on each side tried per swap attempt
    swap_sources = 4
    rest_steps = 25            # a source that offered nothing is skipped for this many accepted actions
    max_escalations = 2        # how often the samples double before the search gives up


class HillClimber:

    def __init__(self, state, goals, constraints, budget=None, time_limit=60.0, seed=0, settings=None):
        self.state = state
        self.goals = goals
        self.constraints = constraints
        self.budget = budget or Budget()
        self.time_limit = time_limit
        self.rng = random.Random(seed)
        self.settings = settings or SearchSettings()
        self.weighted = [(goal.delta, weight) for goal, weight in goals]
        # Only goals that keep their own aggregates need to hear about accepted actions.
        self.listeners = [goal.applied for goal, _ in goals if type(goal).applied is not Goal.applied]
        self.balance = [(goal, weight) for goal, weight in goals if isinstance(goal, ResourceBalanceGoal)]
        self.accepted = 0
        self.evaluated = 0
        self.swaps = 0
        self.stop_reason = None
        self.deadline = None

    # -- basics --------------------------------------------------------------------------------

    def delta(self, action):
        total = 0.0
        for fn, weight in self.weighted:
            total += weight * fn(action)
        return total

    def cost(self):
        return sum(weight * goal.cost() for goal, weight in self.goals)

    def accept(self, action):
        self.state.apply(action)
        for listener in self.listeners:
            listener(action)
        self.accepted += 1

    def _admissible(self, action):
        if not self.constraints.allows(action):
            return False
        return not self.budget_limited or self.budget.allows(self.state, action)

    def out_of_time(self):
        return time.perf_counter() > self.deadline

    def run(self):
        self.deadline = time.perf_counter() + self.time_limit
        self.budget_limited = self.budget.limited
        self.repair()
        self.climb()
        return self

    # -- repair ----------------------------------------------------------------------------------

    def _pressure_order(self):
        """Active brokers, lightest first by their weighted deviation over all resources."""
        balance = self.balance

        def pressure(b):
            return sum(weight * goal.deviation(b) for goal, weight in balance)
        return sorted(self.state.active, key=pressure)

    def _relocate(self, p, src, why, allowed=None):
        """Move p's replica off src to the admissible broker where the cost rises least."""
        state = self.state
        best, best_delta = None, None
        order = self._pressure_order()
        for d in order:
            if d in state.replicas[p] or (allowed is not None and not allowed(d)):
                continue
            action = state.move(p, src, d)
            if not self.constraints.allows(action):
                continue
            delta = self.delta(action)
            self.evaluated += 1
            if best is None or delta < best_delta:
                best, best_delta = action, delta
        if best is None:
            model = state.model
            raise ModelError("No broker can take the replica of partition %s from broker %d (%s) without breaking rack "
                             "awareness or a capacity limit." % (model.name(p), model.broker_ids[src], why))
        self.accept(best)

    def repair(self):
        state, constraints, model = self.state, self.constraints, self.state.model
        for b in sorted(model.drained):
            for p in list(state.hosted[b]):
                self._relocate(p, b, "it is being drained")
        if constraints.rack is not None:
            rack, limit = constraints.rack, constraints.rack_limit
            for p in range(model.n_partitions):
                while state.movable[p] and constraints.rack_excess(p):
                    counts = {}
                    for b in state.replicas[p]:
                        counts[rack[b]] = counts.get(rack[b], 0) + 1
                    # Move a follower off the most crowded rack if there is one; leaders stay put.
                    crowded = [b for b in state.replicas[p] if counts[rack[b]] > limit[p]]
                    crowded.sort(key=lambda b: b == state.leader[p])
                    self._relocate(p, crowded[0], "too many replicas on rack %s" % model.racks[crowded[0]],
                                   allowed=lambda d: counts.get(rack[d], 0) < limit[p])
        for r, b, _, limit in constraints.capacity_excess():
            load = state.load[r]
            for p in sorted(state.hosted[b], key=lambda p: -state.move(p, b, b).v[r]):
                if load[b] <= limit:
                    break
                self._relocate(p, b, "it is above its %s capacity limit" % RESOURCES[r])
        budget = self.budget
        for name, used, limit in (("max_moves", state.replica_moves, budget.max_moves),
                                  ("max_bytes", state.bytes_moved, budget.max_bytes),
                                  ("max_leader_moves", state.leader_changes, budget.max_leader_moves)):
            if limit is not None and used > limit:
                raise ModelError("The forced moves alone (draining, rack awareness, capacity) need %s=%d, more than the "
                                 "budget of %d." % (name, used, limit))

    # -- climb -----------------------------------------------------------------------------------

    def _sources(self, deep=False):
        """(score, goal index, broker) of the most loaded brokers, most urgent first.

        The quick list holds each resource's most loaded broker; the deep list every broker above
        target for every resource (used when the quick ones have nothing to offer).
        """
        active = self.state.active
        out = []
        for gi, (goal, weight) in enumerate(self.balance):
            dev = goal.deviation
            if deep:
                for b in active:
                    score = weight * dev(b)
                    if score > 0:
                        out.append((score, gi, b))
            else:
                b = max(active, key=dev)
                score = weight * dev(b)
                if score > 0:
                    out.append((score, gi, b))
        out.sort(reverse=True)
        return out

    def _destinations(self, gi, src, count=None):
        settings = self.settings
        goal = self.balance[gi][0]
        active = self.state.active
        count = count or settings.destinations
        dsts = heapq.nsmallest(count + 1, active, key=goal.deviation)
        balance = self.balance
        overall = heapq.nsmallest(2, active, key=lambda b: sum(w * g.deviation(b) for g, w in balance))
        dsts.extend(overall)
        for _ in range(settings.extra_destinations - 1):
            dsts.append(active[self.rng.randrange(len(active))])
        seen, out = set(), []
        for d in dsts:
            if d != src and d not in seen and not self.constraints.drained[d]:
                seen.add(d)
                out.append(d)
        return out

    def _sample(self, items, k):
        if len(items) <= k:
            return list(items)
        return self.rng.sample(items, k)

    def _best_from(self, gi, src, scale=1):
        """The best admissible action taking load off src, or None if none lowers the cost."""
        state, settings = self.state, self.settings
        replicas, leader = state.replicas, state.leader
        delta, admissible = self.delta, self._admissible
        best, best_delta = None, -EPSILON
        evaluated = 0
        drained = self.constraints.drained
        for p in self._sample(state.led[src], settings.leader_sample * scale):
            for f in replicas[p]:
                if f == src or drained[f]:
                    continue
                action = state.leader_move(p, f)
                if not admissible(action):
                    continue
                evaluated += 1
                d = delta(action)
                if d < best_delta:
                    best, best_delta = action, d
        dsts = self._destinations(gi, src)
        for p in self._sample(state.hosted[src], settings.replica_sample * scale):
            reps = replicas[p]
            for dst in dsts:
                if dst in reps:
                    continue
                action = state.move(p, src, dst)
                if not admissible(action):
                    continue
                evaluated += 1
                d = delta(action)
                if d < best_delta:
                    best, best_delta = action, d
        self.evaluated += evaluated
        return best

    def _best_swap(self, sources, scale=1):
        """The best admissible swap between a loaded source and a light broker, or None."""
        state, settings = self.state, self.settings
        replicas = state.replicas
        delta, admissible = self.delta, self._admissible
        best, best_delta = None, -EPSILON
        k = settings.swap_sample * scale
        for _, gi, src in sources[:settings.swap_sources]:
            mine = self._sample(state.hosted[src], k)
            for dst in self._destinations(gi, src, count=2)[:4]:
                theirs = self._sample(state.hosted[dst], k)
                for p in mine:
                    if dst in replicas[p]:
                        continue
                    for q in theirs:
                        if src in replicas[q]:
                            continue
                        action = state.swap(p, src, q, dst)
                        if not admissible(action):
                            continue
                        self.evaluated += 1
                        d = delta(action)
                        if d < best_delta:
                            best, best_delta = action, d
        return best

    def climb(self):
        if not self.balance and not self.goals:
            self.stop_reason = "no goals"
            return
        settings = self.settings
        resting = {}
        scale, escalations = 1, 0
        while True:
            if self.out_of_time():
                self.stop_reason = "time limit"
                return
            found = None
            for deep in (False, True):
                for _, gi, src in self._sources(deep):
                    key = (gi, src)
                    since = resting.get(key)
                    if since is not None and self.accepted - since < settings.rest_steps:
                        continue
                    found = self._best_from(gi, src, scale)
                    if found is not None:
                        break
                    resting[key] = self.accepted
                    if self.out_of_time():
                        break
                if found is not None or self.out_of_time():
                    break
            if found is None and not self.out_of_time():
                found = self._best_swap(self._sources(deep=True), scale)
                if found is not None:
                    self.swaps += 1
            if found is not None:
                self.accept(found)
                continue
            if self.out_of_time():
                continue
            if escalations < settings.max_escalations:
                escalations += 1
                scale *= 2
                resting.clear()
                continue
            self.stop_reason = "converged"
            return
