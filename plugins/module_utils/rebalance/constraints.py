# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hard constraints: what no accepted action may ever break.

- replication factor kept and replicas on distinct brokers: by construction of every action;
- rack awareness: with at least as many racks as replicas, every replica of a partition on its
  own rack (strict); with fewer racks, no rack holds more than ceil(RF / racks) of them (even);
- brokers being drained receive nothing (and the planner empties them first);
- capacity: no broker goes above ``threshold x capacity`` for a resource it declares;
- excluded topics: never proposed (the optimiser does not even see them as candidates);
- custom goals may add a veto with an ``allows(action)`` method.

``allows`` runs for every candidate, so it is written for speed; ``violations`` recomputes
everything from scratch for the final check and the tests.
"""

from __future__ import annotations

import math

from ansible_collections.streamops.day2.plugins.module_utils.rebalance.loads import LEADER, SWAP
from ansible_collections.streamops.day2.plugins.module_utils.rebalance.model import (
    CAPACITY_RESOURCES, RESOURCES, ModelError,
)


def _fmt(value):
    return "%.4g" % value


class Constraints:

    def __init__(self, state, capacity_threshold=0.8, vetoes=()):
        if isinstance(capacity_threshold, bool) or not isinstance(capacity_threshold, (int, float)) \
                or not 0 < capacity_threshold <= 1:
            raise ModelError("capacity_threshold must be a fraction in (0, 1], got %r." % (capacity_threshold,))
        self.state = state
        model = self.model = state.model
        n = model.n_brokers
        self.threshold = float(capacity_threshold)
        self.drained = [b in model.drained for b in range(n)]
        # Racks as small integers; None when the cluster has no racks.
        self.rack = None
        self.n_racks = 0
        if model.has_racks():
            names = sorted({model.racks[b] for b in state.active})
            index = {name: i for i, name in enumerate(names)}
            self.rack = [index.get(model.racks[b], -1 - b) for b in range(n)]
            self.n_racks = len(names)
        by_factor = {rf: self.limit_for(rf) for rf in set(map(len, model.replicas))}
        self.rack_limit = list(map(by_factor.__getitem__, map(len, model.replicas)))
        # (resource index, per-broker limit) for each resource some broker has a capacity for.
        self.capacity = []
        for resource in CAPACITY_RESOURCES:
            caps = model.capacity[resource]
            if any(c is not None for c in caps):
                limits = [math.inf if c is None else c * self.threshold for c in caps]
                self.capacity.append((RESOURCES.index(resource), limits))
        self.vetoes = list(vetoes)

    def limit_for(self, replication_factor):
        """Most replicas of one partition that one rack may hold."""
        if not self.n_racks or self.n_racks >= replication_factor:
            return 1 if self.n_racks else replication_factor
        return int(math.ceil(replication_factor / float(self.n_racks)))

    # -- before the search -----------------------------------------------------------------

    def check_feasible(self):
        """Raise ModelError if no assignment can satisfy the constraints."""
        state, model = self.state, self.model
        active = state.active
        if not active:
            raise ModelError("Every broker is being drained; at least one must remain.")
        drained_ids = sorted(model.broker_ids[b] for b in model.drained)
        drained_note = " once brokers %s are drained" % drained_ids if drained_ids else ""
        factors = list(map(len, model.replicas))
        widest = factors.index(max(factors)) if factors else None
        if widest is not None and len(model.replicas[widest]) > len(active):
            raise ModelError("Partition %s has replication factor %d but only %d brokers are available%s." % (
                model.name(widest), len(model.replicas[widest]), len(active), drained_note))
        for p in range(model.n_partitions):
            if not state.movable[p]:
                for b in model.replicas[p]:
                    if self.drained[b]:
                        raise ModelError("Partition %s of excluded topic %s has a replica on drained broker %d; "
                                         "stop excluding the topic or stop draining the broker." % (
                                             model.name(p), model.topics[model.p_topic[p]], model.broker_ids[b]))
        if self.rack is not None and self.n_racks:
            self._check_racks(drained_note)
        for r, limits in self.capacity:
            total = sum(self.state.load[r])
            room = sum(limits[b] for b in active)
            if total > room:
                raise ModelError("The cluster's %s load (%s) exceeds what the brokers may carry at %g%% of their capacity (%s)%s." % (
                    RESOURCES[r], _fmt(total), self.threshold * 100, _fmt(room), drained_note))

    def _check_racks(self, drained_note):
        model = self.model
        per_rack = [0] * self.n_racks
        for b in self.state.active:
            per_rack[self.rack[b]] += 1
        names = sorted({model.racks[b] for b in self.state.active})
        checked = set()
        for p, reps in enumerate(model.replicas):
            rf = len(reps)
            if rf in checked:
                continue
            checked.add(rf)
            limit = self.limit_for(rf)
            room = sum(min(count, limit) for count in per_rack)
            if room < rf:
                racks = ", ".join("%s (%d brokers)" % (names[i], c) for i, c in enumerate(per_rack))
                raise ModelError("Partition %s (replication factor %d) cannot be spread over racks %s with at most %d replica(s) "
                                 "per rack%s." % (model.name(p), rf, racks, limit, drained_note))

    # -- during the search: every candidate ------------------------------------------------

    def rack_ok(self, p, src, dst):
        """Whether p's replica may go from src to dst without breaking rack awareness."""
        rack = self.rack
        if rack is None:
            return True
        rd = rack[dst]
        if rd == rack[src]:
            return True
        count = 0
        for b in self.state.replicas[p]:
            if rack[b] == rd:
                count += 1
        return count < self.rack_limit[p]

    def allows(self, action):
        drained = self.drained
        dst, src = action.dst, action.src
        if drained[dst]:
            return False
        if action.kind != LEADER:
            if self.rack is not None and not self.rack_ok(action.p, src, dst):
                return False
            if action.kind == SWAP and (drained[src] or (self.rack is not None and not self.rack_ok(action.q, dst, src))):
                return False
        if self.capacity:
            load, v = self.state.load, action.v
            for r, limits in self.capacity:
                x = v[r]
                if x > 0:
                    if load[r][dst] + x > limits[dst]:
                        return False
                elif x < 0 and load[r][src] - x > limits[src]:
                    return False
        for veto in self.vetoes:
            if not veto(action):
                return False
        return True

    # -- after the search ------------------------------------------------------------------

    def rack_excess(self, p):
        """How many replicas of p sit on racks beyond the limit (0 when rack-aware)."""
        if self.rack is None:
            return 0
        reps = self.state.replicas[p]
        if len({self.rack[b] for b in reps}) == len(reps):
            return 0  # every replica on a rack of its own (nearly every partition): no excess
        counts = {}
        for b in reps:
            counts[self.rack[b]] = counts.get(self.rack[b], 0) + 1
        limit = self.rack_limit[p]
        return sum(c - limit for c in counts.values() if c > limit)

    def capacity_excess(self):
        """[(resource index, broker position, load, limit)] for brokers above their limit."""
        out = []
        load = self.state.load
        for r, limits in self.capacity:
            for b in self.state.active:
                if load[r][b] > limits[b] * (1 + 1e-9):
                    out.append((r, b, load[r][b], limits[b]))
        return out

    def violations(self):
        """Every broken hard constraint, one sentence each (empty when the state is valid)."""
        state, model = self.state, self.model
        out = []
        name = model.name  # formatted only for a partition that breaks something (millions do not)
        for p, reps in enumerate(state.replicas):
            if len(reps) != len(model.replicas[p]):
                out.append("Partition %s has %d replicas instead of %d." % (name(p), len(reps), len(model.replicas[p])))
            if len(set(reps)) != len(reps):
                out.append("Partition %s has two replicas on one broker." % name(p))
            if state.leader[p] not in reps:
                out.append("Partition %s is led by a broker without a replica." % name(p))
            for b in reps:
                if self.drained[b]:
                    out.append("Partition %s still has a replica on drained broker %d." % (name(p), model.broker_ids[b]))
            if not state.movable[p]:
                if list(reps) != list(model.replicas[p]) or state.leader[p] != model.leader[p]:
                    out.append("Partition %s of an excluded topic was changed." % name(p))
            elif self.rack_excess(p):
                out.append("Partition %s has more replicas on one rack than rack awareness allows." % name(p))
        for r, b, value, limit in self.capacity_excess():
            out.append("Broker %d carries %s %s, above its limit %s (%g%% of capacity)." % (
                model.broker_ids[b], RESOURCES[r], _fmt(value), _fmt(limit), self.threshold * 100))
        return out
