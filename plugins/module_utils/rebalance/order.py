# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Safe-to-stop execution order of a plan: every prefix leaves a cluster no worse than it was.

A plan is executed in batches (``kafka_reassignment`` with ``order: [plan]`` follows the order of
its entries), and a rebalance may be interrupted or cut short by a budget.  So the entries are
ordered such that, after any prefix, no broker carries more of any resource than the larger of its
load before the plan and its load after it: brokers that shed load shed it first, and a broker
that receives load never goes beyond where the plan takes it.  The peaks therefore come down batch
after batch and no broker is ever hotter than it was or than it will be.

Greedy, best first: the next change is the one that improves the balance most (the sum over
resources of the squared deviations of the brokers from the mean) among those that keep every
broker they touch within bounds.  When none improves (two changes that only help together), the
one that costs least goes next; only if none fits at all (a cycle of full brokers trading
replicas) the one with the smallest overshoot.
"""

from __future__ import annotations

import heapq

from ansible_collections.streamops.day2.plugins.module_utils.rebalance.loads import broker_loads, leader_nw_out
from ansible_collections.streamops.day2.plugins.module_utils.rebalance.model import RESOURCES

# Relative slack for float rounding when comparing a broker's load with its bound.
TOLERANCE = 1e-9
# Added to the value of a change that does not fit within the bounds, so that it goes last.
BLOCKED = 1e30


def change_effect(model, p, new_replicas, new_leader):
    """{broker: [amount per resource]} that executing partition p's change adds (negative: removes)."""
    old, old_leader = model.replicas[p], model.leader[p]
    rate, size = model.nw_in[p], model.size[p]
    effect = {}

    def add(b, r, amount):
        row = effect.get(b)
        if row is None:
            row = effect[b] = [0.0] * len(RESOURCES)
        row[r] += amount

    kept = set(old) & set(new_replicas)
    for b in old:
        if b not in kept:
            add(b, 0, -rate)
            add(b, 2, -size)
            add(b, 3, -1)
    for b in new_replicas:
        if b not in kept:
            add(b, 0, rate)
            add(b, 2, size)
            add(b, 3, 1)
    if new_leader != old_leader:
        out = leader_nw_out(rate, model.nw_out[p], len(old))
        add(old_leader, 1, -out)
        add(old_leader, 4, -1)
        add(new_leader, 1, out)
        add(new_leader, 4, 1)
    return effect


def execution_order(model, replicas, leader, changed):
    """The partitions of ``changed`` in a safe-to-stop order (see the module docstring)."""
    n_res, n = len(RESOURCES), model.n_brokers
    start = broker_loads(model)
    final = broker_loads(model, replicas, leader)
    bound = [[max(start[r][b], final[r][b]) * (1 + TOLERANCE) + TOLERANCE for b in range(n)] for r in range(n_res)]
    kept = [b for b in range(n) if b not in model.drained]
    mean = [sum(final[r]) / float(len(kept)) or 1.0 for r in range(n_res)]
    # Balance is measured against the mean of the brokers kept; a drained broker's target is 0.
    target = [[0.0 if b in model.drained else mean[r] for b in range(n)] for r in range(n_res)]
    scale = [1.0 / (m * m) for m in mean]
    effects = {p: change_effect(model, p, replicas[p], leader[p]) for p in changed}
    load = [list(row) for row in start]

    def fits(p):
        for b, row in effects[p].items():
            for r in range(n_res):
                if row[r] > 0 and load[r][b] + row[r] > bound[r][b]:
                    return False
        return True

    def imbalance_change(p):
        # Change of sum over resources of sum over brokers of ((load - target) / mean)^2.
        total = 0.0
        for b, row in effects[p].items():
            for r in range(n_res):
                a = row[r]
                if a:
                    total += a * (2.0 * (load[r][b] - target[r][b]) + a) * scale[r]
        return total

    def overshoot(p):
        worst = 0.0
        for b, row in effects[p].items():
            for r in range(n_res):
                if row[r] > 0:
                    worst = max(worst, (load[r][b] + row[r] - bound[r][b]) / mean[r])
        return worst

    def apply(p):
        for b, row in effects[p].items():
            for r in range(n_res):
                load[r][b] += row[r]
        order.append(p)

    # Lazy best-first: a heap of (imbalance change when last evaluated, p); the top is re-evaluated
    # and taken if it is still no worse than the next one, else pushed back with its new value.
    # A change that does not fit waits behind every one that does (BLOCKED + its overshoot).
    order = []

    def value(p):
        return imbalance_change(p) if fits(p) else BLOCKED + overshoot(p)

    heap = [(value(p), p) for p in changed]
    heapq.heapify(heap)
    while heap:
        stale, p = heapq.heappop(heap)
        now = value(p)
        if heap and now > heap[0][0] and now != stale:
            heapq.heappush(heap, (now, p))
            continue
        if now >= BLOCKED and heap and heap[0][0] >= BLOCKED:
            # Only blocked changes left, their values stale: refresh them all once before forcing one.
            heap = [(value(q), q) for q in [p] + [q for dummy, q in heap]]
            heapq.heapify(heap)
            stale, p = heapq.heappop(heap)
        apply(p)
    return order
