# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Safe-to-stop execution order of a plan: every prefix leaves a cluster no worse than it was.

A plan is executed in batches (``kafka_reassignment`` with ``order: [plan]`` follows the order of
its entries), and a rebalance may be interrupted or cut short by a budget.  So the entries are
ordered such that, after any prefix, no broker carries more of any resource than the larger of its
load before the plan and its load after it: brokers that shed load shed it first, and a broker
that receives load never goes beyond where the plan takes it.  The peaks therefore come down batch
after batch and no broker is ever hotter than it was or than it will be.

Greedy, in passes: the changes that relieve brokers above their final load most come first, and
a change is taken as soon as applying it keeps every broker it touches within bounds.  Only if
none of those left fits (a cycle of full brokers trading replicas) the one with the smallest
overshoot goes next.  (A best-first order on the balance itself was tried: slower, and its
balance rose more between batches, because it leaves the changes that only help in pairs to the end.)
"""

from __future__ import annotations

from ansible_collections.streamops.day2.plugins.module_utils.rebalance.loads import broker_loads, leader_nw_out
from ansible_collections.streamops.day2.plugins.module_utils.rebalance.model import RESOURCES

# Relative slack for float rounding when comparing a broker's load with its bound.
TOLERANCE = 1e-9


def change_effect(model, p, new_replicas, new_leader):
    """[(resource, broker, amount)]: the non-zero load that executing partition p's change adds to a
    broker (negative: removes).  No (resource, broker) pair appears twice."""
    old, old_leader = model.replicas[p], model.leader[p]
    rate, size = model.nw_in[p], model.size[p]
    terms = []
    for b in old:
        if b not in new_replicas:
            terms.extend(((0, b, -rate), (2, b, -size), (3, b, -1)))
    for b in new_replicas:
        if b not in old:
            terms.extend(((0, b, rate), (2, b, size), (3, b, 1)))
    if new_leader != old_leader:
        out = leader_nw_out(rate, model.nw_out[p], len(old))
        terms.extend(((1, old_leader, -out), (4, old_leader, -1), (1, new_leader, out), (4, new_leader, 1)))
    return [term for term in terms if term[2]]


def execution_order(model, replicas, leader, changed, loads=None):
    """The partitions of ``changed`` in a safe-to-stop order (see the module docstring).

    loads: (start, final), the brokers' loads before and after the plan, if already computed."""
    n_res, n = len(RESOURCES), model.n_brokers
    start, final = loads or (broker_loads(model), broker_loads(model, replicas, leader))
    bound = [[max(start[r][b], final[r][b]) * (1 + TOLERANCE) + TOLERANCE for b in range(n)] for r in range(n_res)]
    kept = [b for b in range(n) if b not in model.drained]
    mean = [sum(final[r]) / float(len(kept)) or 1.0 for r in range(n_res)]
    # Balance is measured against the mean of the brokers kept; a drained broker's target is 0.
    target = [[0.0 if b in model.drained else mean[r] for b in range(n)] for r in range(n_res)]
    scale = [1.0 / (m * m) for m in mean]
    # Each change as its (resource, broker, amount) terms: the loops below run per term.
    effects = {p: change_effect(model, p, replicas[p], leader[p]) for p in changed}
    load = [list(row) for row in start]
    # The fit test of a pass reads only what a change adds, with the rows looked up once.
    adds = {p: [(load[r], bound[r], b, a) for r, b, a in terms if a > 0] for p, terms in effects.items()}

    def relief(p):
        # Load taken off brokers above their final load, in units of each resource's mean.
        return -sum(a / mean[r] for r, b, a in effects[p] if a < 0 and start[r][b] > final[r][b])

    def overshoot(p):
        # How far (in means) p would take a broker above its bound; 0 when it fits.
        worst = 0.0
        for r, b, a in effects[p]:
            if a > 0:
                over = load[r][b] + a - bound[r][b]
                if over > 0:
                    worst = max(worst, over / mean[r])
        return worst

    def imbalance_change(p):
        # Change of sum over resources and brokers of ((load - target) / mean)^2 if p went next.
        return sum(a * (2.0 * (load[r][b] - target[r][b]) + a) * scale[r] for r, b, a in effects[p])

    order = []
    # The overshoot of every change still waiting, kept from one forced step to the next: only the
    # changes adding to a broker whose load changed since (dirty) are recomputed.  Built at the first
    # forced step, with `adding`: (resource, broker) -> the waiting changes that add to it.
    worst, adding, dirty = None, {}, set()

    def take(p):
        for r, b, a in effects[p]:
            load[r][b] += a
        if worst is not None:
            del worst[p]
            for r, b, a in effects[p]:
                dirty.update(adding.get((r, b), ()))
        order.append(p)

    pending = sorted(changed, key=lambda p: (-relief(p), p))
    while pending:
        # One pass, in order of relief: take every change that fits.
        waiting = []
        for p in pending:
            for row, limit, b, a in adds[p]:
                if row[b] + a > limit[b]:
                    waiting.append(p)
                    break
            else:
                take(p)
        if len(waiting) == len(pending):
            # Nothing fits (a cycle of full brokers trading replicas): the smallest overshoot goes next.
            if worst is None:
                worst = {p: overshoot(p) for p in waiting}
                for p in waiting:
                    for r, b, a in effects[p]:
                        if a > 0:
                            adding.setdefault((r, b), []).append(p)
            else:
                for p in dirty:
                    if p in worst:
                        worst[p] = overshoot(p)
            dirty.clear()
            least = min(worst.values())
            forced = min((p for p, over in worst.items() if over == least), key=lambda p: (imbalance_change(p), p))
            take(forced)
            waiting.remove(forced)
        pending = waiting
    return order
