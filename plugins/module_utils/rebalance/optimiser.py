# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hill climber: repair what must change, then take the best improving action until none is left.

1. Repair (forced, in this order): replicas on drained brokers, partitions breaking rack
   awareness, brokers above a capacity limit.  Each offending replica goes to the allowed broker
   where the weighted cost rises least.
2. Climb: pick a source, the broker furthest above its target for some weighted resource; draw
   candidates from it (leadership moves to its followers, which move no data, and replica moves
   of a random sample of its replicas to the brokers furthest below target); apply the best one
   if it lowers the total cost by at least ``min_gain``, then every other candidate of the round
   that, re-scored, still does.  A source with nothing to offer rests for a while.
3. Plateau: when no source offers a single improving action, try swaps (a replica each way
   between a loaded and a light broker), then larger samples; stop when those find nothing too,
   or when a long stretch of candidates gained almost nothing (diminishing returns) and a swap
   sweep of the brokers still above a peak ceiling gains little too.
4. Move back: replicas (and crossed pairs) whose return to where they were lowers the cost.

Speed: the built-in goals are evaluated *fused*.  Each resource-balance goal's delta is
``v * (G[dst] - G[src]) + v^2 * (K[dst] + K[src])`` with per-broker factors K (weight / target^2 /
brokers) and gradients G (2 K (load - target)), so for one src/dst pair a candidate costs a few
multiplications, and no Action object is built for a candidate that does not improve.  Goals with
a balance band are piecewise and custom goals are opaque: those are called per candidate.  Tests check the fused
numbers against the goals' own ``delta`` (and those against full recomputation).  numpy would not
help here: the search is a long chain of small dependent steps, not a few large array operations.

The random generator is seeded, so a seed gives the same plan (unless the time limit cuts in).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import operator
import random
import time

from ansible_collections.streamops.day2.plugins.module_utils.rebalance.goals import (
    Goal, LeaderChangeGoal, MovementGoal, PeakGoal, ReplicaMovesGoal, ResourceBalanceGoal, TopicSpreadGoal,
)
from ansible_collections.streamops.day2.plugins.module_utils.rebalance.loads import LEADER, MOVE, SWAP
from ansible_collections.streamops.day2.plugins.module_utils.rebalance.model import RESOURCES, ModelError

# Smallest cost decrease that guards against float noise cycles.
EPSILON = 1e-13
INF = float("inf")
_score = operator.itemgetter(0)


class Budget:
    """Limits on the plan, counted against the original assignment (None = no limit)."""

    def __init__(self, max_moves=None, max_bytes=None, max_leader_moves=None):
        for name, value in (("max_moves", max_moves), ("max_bytes", max_bytes), ("max_leader_moves", max_leader_moves)):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ModelError("%s must be a positive number (finite), got %r." % (name, value))
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

    replica_sample = 16        # replicas of a source tried per step
    leader_sample = 16         # partitions led by a source tried per step
    destinations = 6           # lightest brokers (for the source's resource) tried per step
    oversample = 1             # draw this many times the replica sample, keep the heaviest
    swap_sample = 12           # replicas on each side tried per swap attempt
    swap_sources = 6
    sweep_partners = 16        # gradient partners on each side per pair of brokers in a sweep
    sweep_margin = 0.005       # brokers swept: more than this share of their target above a ceiling
    swap_back_partners = 2     # replicas of about its size tried on each side when swapping one back home
    swap_back_share = 0.9      # swaps back home are tried for the largest moved replicas carrying this share of the bytes
    rest_steps = 25            # a source that offered nothing is skipped for this many accepted actions
    max_escalations = 2        # how often the samples double before the search gives up
    # Later actions of a round are accepted only while, re-scored, they keep this share of the gain
    # they showed when found: a stale candidate is left for a later round to reconsider.
    batch_keep = 0.5
    # An action must lower the cost by at least this much (in units of 1 / number of replicas, the
    # scale of one average replica's effect on the goals): below it, the gain is too small to be
    # worth an action, so the search ends, and a second run on its result finds nothing to do.
    min_gain = 0.03
    # The search also ends when a window of evaluations (stall_window + stall_window_per_replica x
    # replicas candidates) lowered the cost by less than stall_fraction of the cost still left
    # (not of all it lowered so far: from a badly skewed start that would stop at the last few per
    # cent, where the peaks are); the tail of a long search finds ever smaller gains ever more slowly.
    stall_window = 50000
    stall_window_per_replica = 0.5
    stall_fraction = 0.005


class _Unconstrained:
    """Stands in for Constraints when _check compares numbers: allows everything."""

    rack = None
    capacity = ()
    vetoes = ()

    def __init__(self, n_brokers):
        self.drained = [False] * n_brokers
        self.rack_limit = None

    def rack_ok(self, p, src, dst):
        return True

    def allows(self, action):
        return True


class HillClimber:

    def __init__(self, state, goals, constraints, budget=None, time_limit=60.0, seed=0, settings=None, verify=False):
        self.state = state
        self.goals = goals
        self.constraints = constraints
        self.budget = budget or Budget()
        self.budget_limited = self.budget.limited
        self.time_limit = time_limit
        self.rng = random.Random(seed)
        self.settings = settings or SearchSettings()
        self.verify = verify
        self.weighted = [(goal.delta, weight) for goal, weight in goals]
        # Only goals that keep their own aggregates need to hear about accepted actions.
        self.listeners = [goal.applied for goal, weight in goals if type(goal).applied is not Goal.applied]
        self._fuse(goals)
        replicas = sum(len(r) for r in state.replicas)
        self.min_gain = max(EPSILON, self.settings.min_gain / replicas) if replicas else EPSILON
        self.accepted = 0
        self._ranks = {}           # resource -> (sorted (deviation, broker), deviation each is sorted by, brokers changed since), see _ranked
        self._dirty = []           # those sets of changed brokers, one per resource ranked
        self._racks = {}           # partition -> the racks of its replicas, kept until it moves
        self._tops = {}            # resource -> (highest deviation, first broker with it), see _sources
        self._changed = set()      # brokers whose deviations changed since _sources last read them
        self.gained = 0.0          # total cost decrease of the climb so far
        self.evaluated = 0
        self.swaps = 0
        self.moved_back = 0
        self.swept = False
        self.stop_reason = None
        self.deadline = None

    # -- fused evaluation of the built-in goals ------------------------------------------------

    def _fuse(self, goals):
        n = self.state.model.n_brokers
        self.K = [[0.0] * n for r in RESOURCES]
        self.T = [[0.0] * n for r in RESOURCES]
        self.G = [[0.0] * n for r in RESOURCES]
        self.dev = [[0.0] * n for r in RESOURCES]
        self.dev_weight = [0.0] * len(RESOURCES)
        self.pressure = [0.0] * n
        self.topic = None
        self.w_topic = self.w_byte = self.w_move = self.w_lead = 0.0
        self.custom = []
        self.banded = []
        self.peak, self.w_peak = None, 0.0
        for goal, weight in goals:
            kind = type(goal)
            if kind is ResourceBalanceGoal:
                if goal.band:
                    # Piecewise, so not in the quadratic fast path: called per candidate instead.
                    self.banded.append((goal.r, goal.delta_amount, weight))
                else:
                    self.K[goal.r] = [weight * k for k in goal.k]
                self.T[goal.r] = goal.target
                self.dev_weight[goal.r] = weight
            elif kind is PeakGoal:
                self.peak, self.w_peak = goal, weight
            elif kind is TopicSpreadGoal:
                self.topic, self.w_topic = goal, weight * goal.scale
            elif kind is MovementGoal:
                self.w_byte = weight * goal.per_byte
            elif kind is ReplicaMovesGoal:
                self.w_move = weight * goal.per_move
            elif kind is LeaderChangeGoal:
                self.w_lead = weight * goal.scale
            else:
                self.custom.append((goal.delta, weight))
        self.K_balance = [list(k) for k in self.K]
        # The peak goal is quadratic on each side of a broker's ceiling, so it folds into K and G
        # for the side a broker is on now; an amount that would carry a broker across its ceiling
        # (more than its excess off one above it, more than its room onto one below) is corrected
        # exactly on the spot (_peak_fix).  cross_off[r][b] / cross_on[r][b] are those thresholds.
        self.cross_off = [[INF] * n for r in RESOURCES]
        self.cross_on = [[INF] * n for r in RESOURCES]
        if self.peak is not None:
            self.K_peak = [[self.w_peak * k for k in ks] for ks in self.peak.ks]
            self.peak_cap = self.peak.caps
        self.resources = [r for r in range(len(RESOURCES)) if self.dev_weight[r] > 0 and any(self.T[r])]
        # What _refresh reads and writes, per resource (these lists are updated in place, never replaced).
        peak = self.peak is not None
        self._rows = [(self.state.load[r], self.K_balance[r], self.T[r], self.K[r], self.G[r], self.dev[r], self.dev_weight[r],
                       self.peak_cap[r] if peak else None, self.K_peak[r] if peak else None, self.cross_off[r], self.cross_on[r])
                      for r in range(len(RESOURCES))]
        for b in range(n):
            self._refresh(b)

    def _refresh(self, b):
        """Broker b's factors (K, G, ceiling thresholds, deviations, pressure) from its loads now."""
        pressure = 0.0
        peak_boost = self.w_peak
        for load, k_balance, targets, K, G, devs, weight, caps, k_peak, cross_off, cross_on in self._rows:
            x, kb, target = load[b], k_balance[b], targets[b]
            k, g = kb, 2.0 * kb * (x - target)
            dev = (x - target) / target if target else 0.0
            if caps is not None:
                over = x - caps[b]
                if over > 0:
                    kp = k_peak[b]
                    k += kp
                    g += 2.0 * kp * over
                    cross_off[b], cross_on[b] = over, INF
                    if weight and target:
                        # A broker above its ceiling is as urgent as its gradient says: the peaks
                        # goal's part counts too, so the search works on it first.
                        dev += peak_boost / weight * over / target
                else:
                    cross_off[b], cross_on[b] = INF, -over
            K[b] = k
            G[b] = g
            devs[b] = dev
            pressure += weight * dev
        self.pressure[b] = pressure

    def _peak_fix(self, src, dst, amounts):
        """Exact peak delta minus the quadratic one already in K and G, for amounts src -> dst."""
        peak, load, cap, K = self.peak, self.state.load, self.peak_cap, self.K_peak
        total = 0.0
        for r, v in enumerate(amounts):
            if not v:
                continue
            folded = 0.0
            for b, x in ((src, -v), (dst, v)):
                over = load[r][b] - cap[r][b]
                if over > 0:
                    folded += K[r][b] * x * (2.0 * over + x)
            total += self.w_peak * peak.delta_amount(r, src, dst, v) - folded
        return total

    def _peak_crosses(self, src, dst, amounts):
        """Whether some amount (src -> dst, negative the other way) carries a broker across its ceiling."""
        off, on = self.cross_off, self.cross_on
        for r, v in enumerate(amounts):
            if v > 0:
                if v > off[r][src] or v > on[r][dst]:
                    return True
            elif v < 0 and (-v > on[r][src] or -v > off[r][dst]):
                return True
        return False

    def _banded_delta(self, src, dst, amounts):
        total = 0.0
        for r, fn, weight in self.banded:
            amount = amounts[r]
            if amount:
                total += weight * fn(src, dst, amount)
        return total

    def _custom_delta(self, action):
        total = 0.0
        for fn, weight in self.custom:
            total += weight * fn(action)
        return total

    # -- basics --------------------------------------------------------------------------------

    def delta(self, action):
        """Weighted delta of every goal through its own delta() (the reference for the fused path)."""
        total = 0.0
        for fn, weight in self.weighted:
            total += weight * fn(action)
        return total

    def cost(self):
        return sum(weight * goal.cost() for goal, weight in self.goals)

    def accept(self, action, delta=0.0):
        self.gained -= delta
        self.state.apply(action)
        if action.kind != LEADER:
            self._racks.pop(action.p, None)
            self._racks.pop(action.q, None)
        for listener in self.listeners:
            listener(action)
        self._refresh(action.src)
        self._refresh(action.dst)
        self._changed.update((action.src, action.dst))
        for dirty in self._dirty:
            dirty.update((action.src, action.dst))
        self.accepted += 1

    def _admissible(self, action):
        if not self.constraints.allows(action):
            return False
        return not self.budget_limited or self.budget.allows(self.state, action)

    def out_of_time(self):
        return time.perf_counter() > self.deadline

    def run(self):
        self.deadline = time.perf_counter() + self.time_limit
        self.repair()
        self.climb()
        self.move_back()
        return self

    def move_back(self):
        """Put back what the plan moved where that lowers the cost: each moved replica, largest
        first, to a broker it left; then, for those that stay, a swap that brings one home and
        sends back in its place a replica that had moved in there (of about its size, or one that
        came from where it is now): that saves its bytes and leaves the replica counts as they are.
        The climb draws from loaded brokers, so it seldom tries to undo an earlier move whose reason
        later moves took away.  Like the repairs it always finishes, past the time limit too: one
        look at each moved partition, and a plan cut short by the limit is the one with most to give back."""
        state = self.state
        replicas, orig, movable = state.replicas, state.orig_replicas, state.movable
        size = state.model.size
        rack_ok, drained = self.constraints.rack_ok, self.constraints.drained
        threshold = -self.min_gain
        moved = [p for p, now in enumerate(replicas) if movable[p] and set(now) != set(orig[p])]
        moved.sort(key=size.__getitem__, reverse=True)
        away = []  # (p, broker it is on now, broker it left) of those that stay
        for p in moved:
            now, was = replicas[p], orig[p]
            gone = [b for b in was if b not in now and not drained[b]]
            best = None
            for new in [b for b in now if b not in was]:
                for old in gone:
                    if rack_ok(p, new, old):
                        delta = self._move_delta(p, new, old)
                        self.evaluated += 1
                        if delta < threshold and (best is None or delta < best[0]):
                            best = (delta, new, old)
            if best is not None:
                action = state.move(p, best[1], best[2])
                if self._admissible(action):
                    self._take(action, best[0])
                    self.moved_back += 1
                    continue
            away.extend((p, new, old) for new in now if new not in was for old in gone)
        self._swap_back(away, threshold)

    def _swap_back(self, away, threshold):
        """Swaps (p: now -> home, q: home -> now) for each (p, now, home) in away, with q among the
        replicas that moved into home: the few nearest p in size, and those that came from now."""
        state = self.state
        replicas, hosted_pos, size = state.replicas, state.hosted_pos, state.model.size
        arrived = {}   # broker -> (sizes, partitions) of the replicas that moved onto it, by size
        crossed = {}   # (broker now, broker left) -> partitions moved that way
        for p, now, home in away:
            crossed.setdefault((now, home), []).append(p)
            arrived.setdefault(now, set()).add(p)
        for b, ps in arrived.items():
            ps = sorted(ps, key=lambda q: (size[q], q))
            arrived[b] = ([size[p] for p in ps], ps)
        k = self.settings.swap_back_partners
        # Largest first, and only the replicas that carry most of the bytes: the rest could save little.
        left = sum(size[p] for p, now, home in away)
        enough = (1 - self.settings.swap_back_share) * left
        for p, now, home in away:
            if left < enough:
                break
            left -= size[p]
            if p not in hosted_pos[now] or home in replicas[p] or home not in arrived:
                continue
            sizes, ps = arrived[home]
            at = bisect.bisect_left(sizes, size[p])
            partners = [q for q in dict.fromkeys(ps[max(0, at - k):at + k] + crossed.get((home, now), [])) if q in hosted_pos[home]]
            best = [threshold, None]
            self._swaps(now, home, [p], partners, best)
            if best[1] is not None:
                self._take(best[1], best[0])
                self.moved_back += 1 + (now in state.orig_replicas[best[1].q])  # q went home too

    def _take(self, action, delta):
        """Accept an action the search chose (checked against the goals' own deltas under test)."""
        if self.verify:
            self._check(action)
        self.accept(action, delta)

    # -- repair ----------------------------------------------------------------------------------

    def _relocate(self, p, src, why, allowed=None, required=True):
        """Move p's replica off src to the admissible broker where the cost rises least.

        Returns whether it moved; when no broker can take it, that is an error if required."""
        state = self.state
        best, best_delta = None, None
        for d in state.active:
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
            if not required:
                return False
            model = state.model
            raise ModelError("No broker can take the replica of partition %s from broker %d (%s) without breaking rack "
                             "awareness or a capacity limit." % (model.name(p), model.broker_ids[src], why))
        self.accept(best)  # forced: its cost rise is not a gain of the climb
        return True

    def repair(self):
        state, constraints, model = self.state, self.constraints, self.state.model
        for b in sorted(model.drained):
            for p in list(state.hosted[b]):
                self._relocate(p, b, "it is being drained")
        if constraints.rack is not None:
            rack, limit = constraints.rack, constraints.rack_limit
            # Only a partition with two replicas on one rack can be above its limit (one quick sweep).
            shared = [p for p, reps in enumerate(state.replicas) if len({rack[b] for b in reps}) < len(reps)]
            for p in shared:
                while state.movable[p] and constraints.rack_excess(p):
                    counts = {}
                    for b in state.replicas[p]:
                        counts[rack[b]] = counts.get(rack[b], 0) + 1
                    # Move a follower off the most crowded rack if there is one; leaders stay put.
                    crowded = [b for b in state.replicas[p] if counts[rack[b]] > limit[p]]
                    crowded.sort(key=lambda b: b == state.leader[p])
                    self._relocate(p, crowded[0], "too many replicas on rack %s" % model.racks[crowded[0]],
                                   allowed=lambda d: counts.get(rack[d], 0) < limit[p])
        for r, b, dummy, limit in constraints.capacity_excess():
            # Largest first, skipping replicas no broker has room for, until b is under its limit.
            load = state.load[r]
            for p in sorted(state.hosted[b], key=lambda p: -state.move(p, b, b).v[r]):
                if load[b] <= limit:
                    break
                self._relocate(p, b, "", required=False)
            if load[b] > limit * (1 + 1e-9):
                raise ModelError("Broker %d stays above its %s limit (%g%% of capacity): no other broker has room for "
                                 "enough of its replicas." % (model.broker_ids[b], RESOURCES[r], constraints.threshold * 100))
        budget = self.budget
        for name, used, limit in (("max_moves", state.replica_moves, budget.max_moves),
                                  ("max_bytes", state.bytes_moved, budget.max_bytes),
                                  ("max_leader_moves", state.leader_changes, budget.max_leader_moves)):
            if limit is not None and used > limit:
                raise ModelError("The forced moves alone (draining, rack awareness, capacity) need %s=%d, more than the "
                                 "budget of %d." % (name, used, limit))

    # -- candidates --------------------------------------------------------------------------------

    def _sources(self, deep=False):
        """(score, resource, broker) of the most loaded brokers, most urgent first.

        The quick list holds each resource's most loaded broker; the deep list every broker above
        target for every resource (used when the quick ones have nothing to offer).
        """
        out = []
        # Over all brokers, not just the active ones: a drained broker has no target, so its
        # deviation is 0 and never qualifies (and the first maximum is then an active broker's).
        if deep:
            # Listed from the highest (r, b) down and sorted by score alone (a float key sorts much
            # faster than tuples), stably: equal scores stay in (score, r, b) descending order.
            for r in reversed(self.resources):
                dev, weight = self.dev[r], self.dev_weight[r]
                ranked = [(weight * x, r, b) for b, x in enumerate(dev) if x > 0]
                ranked.reverse()
                out.extend(ranked)
            out.sort(key=_score, reverse=True)
            return out
        # Each resource's highest deviation and the first broker with it, as max() and index() would
        # find them, from the brokers changed since: a full scan only when the top one changed.
        changed, tops = self._changed, self._tops
        for r in self.resources:
            dev = self.dev[r]
            cached = tops.get(r)
            if cached is None or cached[1] in changed:
                top = max(dev)
                at = dev.index(top)
            else:
                top, at = cached
                for b in changed:
                    x = dev[b]
                    if x > top or (x == top and b < at):
                        top, at = x, b
            tops[r] = top, at
            if top > 0:
                out.append((self.dev_weight[r] * top, r, at))
        changed.clear()
        out.sort(reverse=True)
        return out

    def _ranked(self, r):
        """(deviation, broker) of the active brokers from the lightest to the most loaded in resource r
        (by pressure if r is None).  Kept sorted between calls: only the brokers that accepted actions
        changed since are taken out and put back where they now belong (on a thousand brokers a full
        sort each round was a seventh of the search).  Ties sort by broker, as a stable sort would."""
        rank = self._ranks.get(r)
        row = self.pressure if r is None else self.dev[r]
        if rank is None:
            ranked = sorted((row[b], b) for b in self.state.active)
            rank = self._ranks[r] = (ranked, {b: key for key, b in ranked}, set())
            self._dirty.append(rank[2])
            return ranked
        ranked, at, dirty = rank
        for b in dirty:
            old = at.get(b)
            if old is not None and old != row[b]:
                del ranked[bisect.bisect_left(ranked, (old, b))]
                at[b] = row[b]
                bisect.insort(ranked, (row[b], b))
        dirty.clear()
        return ranked

    def _destinations(self, r, src, count=None):
        """Brokers to try as receivers: the lightest for resource r overall and, with racks, the
        lightest in src's own rack (with one replica per rack, a replica can only move within its
        rack), the lightest overall, and one at random for variety."""
        settings = self.settings
        active = self.state.active
        count = count or settings.destinations
        ranked = self._ranked(r)
        dsts = [b for dummy, b in ranked[:count + 1]]
        rack = self.constraints.rack
        if rack is not None:
            own = rack[src]
            dsts.extend(itertools.islice((b for dummy, b in ranked if rack[b] == own), count + 1))
        dsts.extend(b for dummy, b in self._ranked(None)[:2])
        dsts.append(active[self.rng.randrange(len(active))])
        seen, out = set(), []
        drained = self.constraints.drained
        for d in dsts:
            if d != src and d not in seen and not drained[d]:
                seen.add(d)
                out.append(d)
        return out

    def _sample(self, items, k):
        if len(items) <= k:
            return list(items)
        return self.rng.sample(items, k)

    def _consider(self, best, delta, action):
        """Record action as the best so far if it is admissible (checked only for winners: cheap)."""
        if self.custom:
            delta += self._custom_delta(action)
            if delta >= best[0]:
                return
        if self._admissible(action):
            best[0] = delta
            best[1] = action

    def _topic_change(self, t, s, d):
        # TopicSpreadGoal._one, inlined: change of the excess when a replica of t goes s -> d.
        topic = self.topic
        row, up, active = topic.count[t], topic.upper[t], topic.active
        return (active[d] and row[d] >= up) - (active[s] and row[s] > up)

    def _leader_moves(self, src, sample, found, threshold=None):
        """Append (delta, LEADER, p, follower) for every improving leadership move of the sample."""
        state = self.state
        replicas, lead_out, orig_leader = state.replicas, state.lead_out, state.orig_leader
        G_out, K_out, G_ld, K_ld = self.G[1], self.K[1], self.G[4], self.K[4]
        drained = self.constraints.drained
        w_lead, custom, banded = self.w_lead, self.custom, self.banded
        peak = self.peak is not None
        off_out, off_ld = self.cross_off[1][src], self.cross_off[4][src]
        on_out, on_ld = self.cross_on[1], self.cross_on[4]
        threshold = -self.min_gain if threshold is None else threshold
        g_out, k_out, g_ld, k_ld = G_out[src], K_out[src], G_ld[src], K_ld[src]
        src_crosses = off_ld < 1  # src is less than one leader above its ceiling: shedding one crosses it
        evaluated = 0
        for p in sample:
            lo = lead_out[p]
            ol = orig_leader[p]
            for f in replicas[p]:
                if f == src or drained[f]:
                    continue
                evaluated += 1
                delta = (lo * (G_out[f] - g_out + lo * (K_out[f] + k_out))
                         + G_ld[f] - g_ld + K_ld[f] + k_ld
                         + ((f != ol) - (src != ol)) * w_lead)
                if banded:
                    delta += self._banded_delta(src, f, (0.0, lo, 0.0, 0, 1))
                if peak and (src_crosses or lo > off_out or lo > on_out[f] or on_ld[f] < 1):
                    delta += self._peak_fix(src, f, (0.0, lo, 0.0, 0, 1))
                if custom:
                    delta += self._custom_delta(state.leader_move(p, f))
                if delta < threshold:
                    found.append((delta, LEADER, p, f))
        self.evaluated += evaluated

    def _replica_moves(self, src, dsts, sample, found, threshold=None):
        """Append (delta, MOVE, p, dst) for every improving move of a sampled replica to a dst."""
        state, model = self.state, self.state.model
        replicas, leader, lead_out = state.replicas, state.leader, state.lead_out
        orig, orig_leader = state.orig_replicas, state.orig_leader
        nw_in, size, p_topic = model.nw_in, model.size, model.p_topic
        (G_in, G_out, G_dk, G_rp, G_ld), (K_in, K_out, K_dk, K_rp, K_ld) = self.G, self.K
        rack, limit, racks_of = self.constraints.rack, self.constraints.rack_limit, self._racks
        w_byte, w_move, w_lead, w_topic = self.w_byte, self.w_move, self.w_lead, self.w_topic
        spread = self.topic is not None and w_topic
        if spread:
            t_count, t_upper, t_active = self.topic.count, self.topic.upper, self.topic.active
            src_spread = t_active[src]
        custom, banded = self.custom, self.banded
        threshold = -self.min_gain if threshold is None else threshold
        rs = rack[src] if rack is not None else None
        off_in, off_out, off_dk, off_rp, off_ld = (row[src] for row in self.cross_off)
        # What moving each sampled replica off src involves, looked up once for all destinations,
        # apart for the partitions src leads (their leadership goes along): the partition, its
        # replicas, the racks it may not enter (those at its limit), amounts, the movement goals'
        # cost of one replica move of it, original replicas, whether src is new to it, [lead_out
        # and original leader,] topic row and share, and the topic-spread term when d is above
        # that share and when not.
        follows, leads = [], []
        for p in sample:
            reps, o, vsz = replicas[p], orig[p], size[p]
            if rack is None:
                full = ()
            else:
                racks = racks_of.get(p)
                if racks is None:
                    racks = racks_of[p] = [rack[b] for b in reps]
                full = racks if limit[p] == 1 else [x for x in racks if racks.count(x) >= limit[p]]
            if spread:
                # TopicSpreadGoal's delta, inlined: the change of the excess above the topic's share on d and src.
                t = p_topic[p]
                row, up = t_count[t], t_upper[t]
                over = src_spread and row[src] > up
                crowds, spares = w_topic * (1 - over), w_topic * (0 - over)
            else:
                row, up, crowds, spares = None, 0, 0.0, 0.0
            moving = vsz * w_byte + w_move
            if leader[p] == src:
                leads.append((p, reps, full, nw_in[p], vsz, moving, o, src not in o, lead_out[p], orig_leader[p], row, up, crowds, spares))
            else:
                follows.append((p, reps, full, nw_in[p], vsz, moving, o, src not in o, row, up, crowds, spares))
        on_in, on_out, on_dk, on_rp, on_ld = self.cross_on
        g_in, g_out, g_dk, g_rp, g_ld = G_in[src], G_out[src], G_dk[src], G_rp[src], G_ld[src]
        k_in, k_out, k_dk, k_rp, k_ld = K_in[src], K_out[src], K_dk[src], K_rp[src], K_ld[src]
        evaluated = 0
        for d in dsts:
            # Up to these amounts a move carries neither src nor d across a ceiling (so the peak goal
            # folded in K and G is exact); a count crosses with the first replica or leadership.
            # (All INF without the peak goal.)
            fits_in = -1.0 if off_rp < 1 or on_rp[d] < 1 else min(off_in, on_in[d])
            fits_dk = min(off_dk, on_dk[d])
            a_in, c_in = G_in[d] - g_in, K_in[d] + k_in
            a_dk, c_dk = G_dk[d] - g_dk, K_dk[d] + k_dk
            one_replica = G_rp[d] - g_rp + K_rp[d] + k_rp
            rd = rack[d] if rack is not None else None
            check_rack = rd != rs
            dst_spread = spread and t_active[d]
            # Counted as all the pairs less those skipped (a skip is rare, a count per pair is not free).
            evaluated += len(follows) + len(leads)
            for p, reps, full, vin, vsz, moving, o, src_new, row, up, crowds, spares in follows:
                if d in reps or (check_rack and rd in full):
                    evaluated -= 1
                    continue
                delta = vin * (a_in + vin * c_in) + vsz * (a_dk + vsz * c_dk) + one_replica
                dm = (d not in o) - src_new
                if dm:
                    delta += dm * moving
                if banded:
                    delta += self._banded_delta(src, d, (vin, 0.0, vsz, 1, 0))
                if vin > fits_in or vsz > fits_dk:
                    delta += self._peak_fix(src, d, (vin, 0.0, vsz, 1, 0))
                if spread:
                    delta += crowds if dst_spread and row[d] >= up else spares
                if custom:
                    delta += self._custom_delta(state.move(p, src, d))
                if delta < threshold:
                    found.append((delta, MOVE, p, d))
            if not leads:
                continue
            fits_out = -1.0 if off_ld < 1 or on_ld[d] < 1 else min(off_out, on_out[d])
            a_out, c_out = G_out[d] - g_out, K_out[d] + k_out
            one_leader = G_ld[d] - g_ld + K_ld[d] + k_ld
            # The followers' terms again, plus the leadership's: a loop per kind, not a test or a call per
            # pair, in the planner's hottest loop (_move_delta is the one-candidate form, checked against both).
            for p, reps, full, vin, vsz, moving, o, src_new, lo, ol, row, up, crowds, spares in leads:
                if d in reps or (check_rack and rd in full):
                    evaluated -= 1
                    continue
                delta = vin * (a_in + vin * c_in) + vsz * (a_dk + vsz * c_dk) + one_replica
                dm = (d not in o) - src_new
                if dm:
                    delta += dm * moving
                delta += lo * (a_out + lo * c_out) + one_leader + ((d != ol) - (src != ol)) * w_lead
                if banded:
                    delta += self._banded_delta(src, d, (vin, lo, vsz, 1, 1))
                if vin > fits_in or vsz > fits_dk or lo > fits_out:
                    delta += self._peak_fix(src, d, (vin, lo, vsz, 1, 1))
                if spread:
                    delta += crowds if dst_spread and row[d] >= up else spares
                if custom:
                    delta += self._custom_delta(state.move(p, src, d))
                if delta < threshold:
                    found.append((delta, MOVE, p, d))
        self.evaluated += evaluated

    def _swaps(self, src, dst, mine, theirs, best):
        state, model = self.state, self.state.model
        replicas, leader, lead_out = state.replicas, state.leader, state.lead_out
        orig, orig_leader = state.orig_replicas, state.orig_leader
        nw_in, size, p_topic = model.nw_in, model.size, model.p_topic
        (G_in, G_out, G_dk, G_rp, G_ld), (K_in, K_out, K_dk, K_rp, K_ld) = self.G, self.K
        rack_ok = self.constraints.rack_ok
        w_byte, w_move, w_lead, w_topic = self.w_byte, self.w_move, self.w_lead, self.w_topic
        topic_change = self._topic_change if self.topic is not None and w_topic else None
        custom, banded = self.custom, self.banded
        peak = self.peak is not None
        a_in, c_in = G_in[dst] - G_in[src], K_in[dst] + K_in[src]
        a_out, c_out = G_out[dst] - G_out[src], K_out[dst] + K_out[src]
        a_dk, c_dk = G_dk[dst] - G_dk[src], K_dk[dst] + K_dk[src]
        a_ld, c_ld = G_ld[dst] - G_ld[src], K_ld[dst] + K_ld[src]

        def side(p, s, d):
            # Amounts p takes from s to d, and its own movement / leader-change / topic terms.
            o = orig[p]
            dm = (d not in o) - (s not in o)
            own = dm * (size[p] * w_byte + w_move)
            spread = w_topic * topic_change(p_topic[p], s, d) if topic_change is not None else 0.0
            if leader[p] == s:
                ol = orig_leader[p]
                own += ((d != ol) - (s != ol)) * w_lead
                return nw_in[p], lead_out[p], size[p], 1, own, spread
            return nw_in[p], 0.0, size[p], 0, own, spread

        outgoing = [(p, side(p, src, dst)) for p in mine if dst not in replicas[p] and rack_ok(p, src, dst)]
        incoming = [(q, side(q, dst, src)) for q in theirs if src not in replicas[q] and rack_ok(q, dst, src)]
        evaluated = 0
        for p, (pin, pout, pdk, pld, pown, pspread) in outgoing:
            tp = p_topic[p]
            for q, (qin, qout, qdk, qld, qown, qspread) in incoming:
                evaluated += 1
                vin, vout, vdk, vld = pin - qin, pout - qout, pdk - qdk, pld - qld
                delta = (vin * (a_in + vin * c_in) + vout * (a_out + vout * c_out) + vdk * (a_dk + vdk * c_dk)
                         + vld * (a_ld + vld * c_ld) + pown + qown)
                if banded:
                    delta += self._banded_delta(src, dst, (vin, vout, vdk, 0, vld))
                if peak and self._peak_crosses(src, dst, (vin, vout, vdk, 0, vld)):
                    delta += self._peak_fix(src, dst, (vin, vout, vdk, 0, vld))
                # Replicas of one topic trading places leave its spread as it was.
                if p_topic[q] != tp:
                    delta += pspread + qspread
                if delta < best[0] or custom:
                    self._consider(best, delta, state.swap(p, src, q, dst))
        self.evaluated += evaluated

    def _candidates_from(self, r, src, scale=1):
        """Every improving action found taking load off src, as (delta, kind, p, dst)."""
        state, settings = self.state, self.settings
        found = []
        self._leader_moves(src, self._sample(state.led[src], settings.leader_sample * scale), found)
        sample = self._sample(state.hosted[src], settings.replica_sample * scale * settings.oversample)
        if settings.oversample > 1 and len(sample) > settings.replica_sample * scale:
            # Keep the replicas carrying most of the resource the source is loaded with: a move
            # does the most work per move with them, and the sample still varies between rounds.
            model = state.model
            weight = (model.nw_in, state.lead_out, model.size, model.size, state.lead_out)[r]
            sample.sort(key=weight.__getitem__, reverse=True)
            del sample[settings.replica_sample * scale:]
        self._replica_moves(src, self._destinations(r, src), sample, found)
        return found

    def _applies(self, kind, p, src, dst):
        """Whether candidate (kind, p, src -> dst) still applies to the current state."""
        state = self.state
        if kind == LEADER:
            return state.leader[p] == src and dst in state.replicas[p]
        return p in state.hosted_pos[src] and dst not in state.replicas[p]

    def _rescore(self, kind, p, src, dst):
        """The fused delta of candidate (kind, p, src -> dst), which still applies, on the current state."""
        if kind != LEADER:
            return self._move_delta(p, src, dst)
        found = []
        evaluated = self.evaluated
        self._leader_moves(src, [p], found, threshold=INF)
        self.evaluated = evaluated  # not a new candidate: the stall window counts those
        for delta, dummy, q, d in found:
            if d == dst:
                return delta
        return INF

    def _move_delta(self, p, src, d):
        """The fused delta of moving p's replica from src to d: _replica_moves' arithmetic for one
        candidate, term for term and in the same order, so to the last bit (_check makes sure).
        Without that loop's set-up, which costs more than one candidate: a round's later
        candidates are re-scored one at a time."""
        state, model = self.state, self.state.model
        (G_in, G_out, G_dk, G_rp, G_ld), (K_in, K_out, K_dk, K_rp, K_ld) = self.G, self.K
        cross_off, cross_on = self.cross_off, self.cross_on
        vin, vsz, o = model.nw_in[p], model.size[p], state.orig_replicas[p]
        a_in, c_in = G_in[d] - G_in[src], K_in[d] + K_in[src]
        a_dk, c_dk = G_dk[d] - G_dk[src], K_dk[d] + K_dk[src]
        one_replica = G_rp[d] - G_rp[src] + K_rp[d] + K_rp[src]
        delta = vin * (a_in + vin * c_in) + vsz * (a_dk + vsz * c_dk) + one_replica
        dm = (d not in o) - (src not in o)
        if dm:
            delta += dm * (vsz * self.w_byte + self.w_move)
        fits_in = -1.0 if cross_off[3][src] < 1 or cross_on[3][d] < 1 else min(cross_off[0][src], cross_on[0][d])
        fits_dk = min(cross_off[2][src], cross_on[2][d])
        if state.leader[p] == src:
            lo, ol = state.lead_out[p], state.orig_leader[p]
            a_out, c_out = G_out[d] - G_out[src], K_out[d] + K_out[src]
            one_leader = G_ld[d] - G_ld[src] + K_ld[d] + K_ld[src]
            delta += lo * (a_out + lo * c_out) + one_leader + ((d != ol) - (src != ol)) * self.w_lead
            amounts = (vin, lo, vsz, 1, 1)
            fits_out = -1.0 if cross_off[4][src] < 1 or cross_on[4][d] < 1 else min(cross_off[1][src], cross_on[1][d])
            crosses = vin > fits_in or vsz > fits_dk or lo > fits_out
        else:
            amounts = (vin, 0.0, vsz, 1, 0)
            crosses = vin > fits_in or vsz > fits_dk
        if self.banded:
            delta += self._banded_delta(src, d, amounts)
        if crosses:
            delta += self._peak_fix(src, d, amounts)
        if self.topic is not None and self.w_topic:
            topic, t = self.topic, model.p_topic[p]
            row, up, active = topic.count[t], topic.upper[t], topic.active
            over = active[src] and row[src] > up
            delta += self.w_topic * (1 - over) if active[d] and row[d] >= up else self.w_topic * (0 - over)
        if self.custom:
            delta += self._custom_delta(state.move(p, src, d))
        return delta

    def _accept_batch(self, src, found):
        """Accept, best first, every candidate that is still valid, admissible and improving.

        The first is exactly the best of the round; each later one is re-evaluated on the state the
        earlier ones left and taken only if it still improves by at least ``batch_keep`` of what it
        promised, so every accepted action is a genuine improvement.  One round of sampling thus
        yields many actions while the loads are far from balanced (fast on big clusters) and about
        one near the optimum (careful where it matters).
        """
        found.sort()
        state = self.state
        accepted = 0
        keep = self.settings.batch_keep
        # Partitions an accepted action changed: only their candidates may no longer apply (most of
        # the round's candidates are other destinations for a partition already moved).
        touched = set()
        for index, (delta, kind, p, dst) in enumerate(found):
            if p in touched and not self._applies(kind, p, src, dst):
                continue
            if index:
                promised = delta
                delta = self._rescore(kind, p, src, dst)
                if delta >= min(-self.min_gain, keep * promised):
                    continue
            action = state.leader_move(p, dst) if kind == LEADER else state.move(p, src, dst)
            if not self._admissible(action):
                continue
            touched.add(p)
            self._take(action, delta)
            accepted += 1
        return accepted

    def _best_swap(self, sources):
        """The best admissible swap between a loaded source and a light broker, or None."""
        state, settings = self.state, self.settings
        best = [-self.min_gain, None]
        self.last_swap_delta = 0.0
        k = settings.swap_sample
        model = state.model
        for dummy, r, src in sources[:settings.swap_sources]:
            # Random replicas for variety, plus the source's heaviest in r traded for the receiver's
            # lightest: the swap that sheds most of r while keeping the replica count.
            weight = (model.nw_in, state.lead_out, model.size, model.size, state.lead_out)[r].__getitem__
            mine = self._sample(state.hosted[src], k)
            mine.extend(heapq.nlargest(k, state.hosted[src], key=weight))
            for dst in self._destinations(r, src, count=2)[:4]:
                theirs = self._sample(state.hosted[dst], k)
                theirs.extend(heapq.nsmallest(k, state.hosted[dst], key=weight))
                self._swaps(src, dst, list(dict.fromkeys(mine)), list(dict.fromkeys(theirs)), best)
        self.last_swap_delta = best[0]
        return best[1]

    def _swap_partners(self, src, dst, k):
        """The k replicas of src and of dst whose exchange the gradients favour most (a swap's delta
        is linear in what each side carries, plus a small quadratic term): ranked over every
        resource at once, they include the pairs that trade one resource for another."""
        state, model = self.state, self.state.model
        G_in, G_out, G_dk, G_ld = self.G[0], self.G[1], self.G[2], self.G[4]  # a swap keeps the replica counts
        nw_in, size, lead_out, leader = model.nw_in, model.size, state.lead_out, state.leader
        d_in, d_out, d_dk, d_ld = G_in[dst] - G_in[src], G_out[dst] - G_out[src], G_dk[dst] - G_dk[src], G_ld[dst] - G_ld[src]

        def going(p):
            x = nw_in[p] * d_in + size[p] * d_dk
            return x + lead_out[p] * d_out + d_ld if leader[p] == src else x

        def coming(q):
            x = nw_in[q] * d_in + size[q] * d_dk
            return -(x + lead_out[q] * d_out + d_ld) if leader[q] == dst else -x

        return heapq.nsmallest(k, state.hosted[src], key=going), heapq.nsmallest(k, state.hosted[dst], key=coming)

    def _sweep(self):
        """Swaps between each broker above a peak ceiling and every other broker (its best pair of
        gradient partners with each), accepted best first while, re-scored, they still improve.
        Such a broker must trade heavy replicas for light ones, which single moves cannot do
        without breaking its replica count; the total gain."""
        state, settings, cross_off = self.state, self.settings, self.cross_off
        drained, hosted_pos = self.constraints.drained, state.hosted_pos
        T, margin = self.T, settings.sweep_margin
        peaked = [b for b in state.active if any(cross_off[r][b] < INF and cross_off[r][b] > margin * T[r][b] for r in self.resources)]
        gained = 0.0
        for src in peaked:
            found = []
            for dst in state.active:
                if dst == src or drained[dst] or self.out_of_time():
                    continue
                best = [-self.min_gain, None]
                ours, others = self._swap_partners(src, dst, settings.sweep_partners)
                self._swaps(src, dst, ours, others, best)
                if best[1] is not None:
                    found.append((best[0], dst, best[1]))
            found.sort(key=_score)
            for index, (promised, dst, action) in enumerate(found):
                delta = promised
                if index:
                    if action.p not in hosted_pos[src] or action.q not in hosted_pos[dst]:
                        continue
                    best = [min(-self.min_gain, settings.batch_keep * promised), None]
                    self._swaps(src, dst, [action.p], [action.q], best)
                    if best[1] is None:
                        continue
                    delta, action = best
                self.swaps += 1
                self._take(action, delta)
                gained -= delta
        return gained

    def _swap_step(self, sources):
        """Accept the best swap off the sources, if one improves; whether one did."""
        found = self._best_swap(sources)
        if found is None:
            return False
        self.swaps += 1
        self._take(found, self.last_swap_delta)
        return True

    def _check(self, action):
        """Test hook: raise unless the fused delta of action equals the sum of the goals' own deltas.

        Constraints are lifted for the check: it compares numbers, whatever the action's merit."""
        expected = self.delta(action)
        saved = self.constraints, self.custom, self.budget_limited
        self.constraints, self.custom, self.budget_limited = _Unconstrained(self.state.model.n_brokers), [], False
        try:
            if action.kind == SWAP:
                best = [1e300, None]
                self._swaps(action.src, action.dst, [action.p], [action.q], best)
                fused = best[0]
            else:
                found = []
                if action.kind == LEADER:
                    self._leader_moves(action.src, [action.p], found, threshold=1e300)
                else:
                    self._replica_moves(action.src, [action.dst], [action.p], found, threshold=1e300)
                fused = [candidate[0] for candidate in found if candidate[3] == action.dst][0]
                if action.kind == MOVE and self._move_delta(action.p, action.src, action.dst) != fused:
                    raise AssertionError("re-scored delta %r != fused delta %r for %r" % (
                        self._move_delta(action.p, action.src, action.dst), fused, action))
        finally:
            self.constraints, self.custom, self.budget_limited = saved
        fused += self._custom_delta(action)
        # Rounding differs between the two sums; a millionth of the smallest gain that counts can't matter.
        if abs(fused - expected) > 1e-6 * self.min_gain + 1e-9 * abs(expected):
            raise AssertionError("fused delta %r != goals' delta %r for %r" % (fused, expected, action))

    # -- climb -----------------------------------------------------------------------------------

    def climb(self):
        if not self.goals:
            self.stop_reason = "no goals"
            return
        settings = self.settings
        resting = {}
        scale, escalations = 1, 0
        replicas = sum(len(r) for r in self.state.replicas)
        window = settings.stall_window + settings.stall_window_per_replica * replicas
        window_end, window_gain = self.evaluated + window, self.gained
        start_cost = self.cost() + self.gained
        while True:
            if self.out_of_time():
                self.stop_reason = "time limit"
                return
            if self.evaluated >= window_end:
                # Diminishing returns: the last window of evaluations bought almost nothing.
                if self.gained - window_gain < settings.stall_fraction * (start_cost - self.gained):
                    # Once: the sweep is what the climb's samples cannot do, not a way to go on.
                    swept, self.swept = self.swept, True
                    if swept or self._sweep() < settings.stall_fraction * (start_cost - self.gained):
                        self.stop_reason = "diminishing returns"
                        return
                window_end, window_gain = self.evaluated + window, self.gained
            accepted = 0
            for deep in (False, True):
                for dummy, r, src in self._sources(deep):
                    key = (r, src)
                    since = resting.get(key)
                    if since is not None and self.accepted - since < settings.rest_steps:
                        continue
                    found = self._candidates_from(r, src, scale)
                    accepted = self._accept_batch(src, found) if found else 0
                    if accepted:
                        break
                    resting[key] = self.accepted
                    if self.out_of_time():
                        break
                if accepted or self.out_of_time():
                    break
            if accepted:
                continue
            if not self.out_of_time() and self._swap_step(self._sources(deep=True)):
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
