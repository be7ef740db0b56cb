# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Load maths (docs/rebalance.md): what each replica puts on its broker, and the planner's state.

A broker's load, per DESIGN.md:
  nw_in    = sum of nw_in over every replica it hosts (followers replicate the produced bytes)
  nw_out   = sum over the partitions it leads of nw_out + nw_in * (replication factor - 1)
  disk     = sum of size over its replicas
  replicas, leaders = counts

Every candidate action moves load from one broker (src) to one other (dst), so an action carries
the five amounts it transfers (``v``), computed once; goals read them instead of recomputing.
"""

from __future__ import annotations

import collections
import itertools
import operator

MOVE, LEADER, SWAP = 0, 1, 2
KIND_NAMES = ("move", "leader", "swap")


def leader_nw_out(nw_in, nw_out, replication_factor):
    """Bytes/s a partition's leader sends: consumers' fetches plus the followers' replication."""
    return nw_out + nw_in * (replication_factor - 1)


def broker_loads(model, replicas=None, leader=None):
    """Per-broker loads [nw_in, nw_out, disk, replicas, leaders], recomputed from scratch."""
    replicas = model.replicas if replicas is None else replicas
    leader = model.leader if leader is None else leader
    n = model.n_brokers
    nw_in, nw_out, disk = [0.0] * n, [0.0] * n, [0.0] * n
    # The sums in partition order (the planner's results depend on every last bit); the counts in C.
    for reps, lead, rate, size, out in zip(replicas, leader, model.nw_in, model.size, model.nw_out):
        for b in reps:
            nw_in[b] += rate
            disk[b] += size
        nw_out[lead] += leader_nw_out(rate, out, len(reps))
    count = collections.Counter(itertools.chain.from_iterable(replicas))
    leads = collections.Counter(leader)
    return [nw_in, nw_out, disk, [count[b] for b in range(n)], [leads[b] for b in range(n)]]


class Action:
    """A candidate change: one replica move, one leadership move, or a swap of two replicas.

    kind: MOVE (replica of p from src to dst; leadership goes along if src led p),
          LEADER (leadership of p from src to dst, both replicas of p),
          SWAP (replica of p from src to dst and replica of q from dst to src).
    v: the (nw_in, nw_out, disk, replicas, leaders) amounts the action takes off src and puts on dst
       (negative when dst gives more than it gets, in a swap).
    dmoves, dbytes, dlead: how the plan's replica moves, bytes to move and leader changes
       (all counted against the original assignment) change if the action is applied.
    """

    __slots__ = ("kind", "p", "src", "dst", "q", "v", "dmoves", "dbytes", "dlead")

    def __init__(self, kind, p, src, dst, q, v, dmoves, dbytes, dlead):
        self.kind = kind
        self.p = p
        self.src = src
        self.dst = dst
        self.q = q
        self.v = v
        self.dmoves = dmoves
        self.dbytes = dbytes
        self.dlead = dlead

    def __repr__(self):
        extra = "" if self.q is None else " q=%d" % self.q
        return "Action(%s p=%d %d->%d%s)" % (KIND_NAMES[self.kind], self.p, self.src, self.dst, extra)


class ClusterState:
    """The assignment being optimised, with per-broker loads kept up to date as actions apply.

    ``load[r][b]`` is broker b's load for resource r (model.RESOURCES order).  ``hosted[b]`` lists
    the movable partitions (not excluded) with a replica on b, ``led[b]`` those b leads; both
    support O(1) removal through their position maps.
    """

    def __init__(self, model, movable=None):
        self.model = model
        n = model.n_brokers
        self.active = [b for b in range(n) if b not in model.drained]
        self.replicas = list(map(list, model.replicas))
        self.leader = list(model.leader)
        self.orig_replicas = list(map(tuple, model.replicas))
        self.orig_leader = list(model.leader)
        self.lead_out = list(map(leader_nw_out, model.nw_in, model.nw_out, map(len, model.replicas)))
        self.load = broker_loads(model, self.replicas, self.leader)
        self.movable = [True] * model.n_partitions if movable is None else list(movable)
        self.hosted = [[] for b in range(n)]
        self.led = [[] for b in range(n)]
        hosted, led, leader = self.hosted, self.led, self.leader
        for p, (reps, can_move) in enumerate(zip(self.replicas, self.movable)):
            if can_move:
                for b in reps:
                    hosted[b].append(p)
                led[leader[p]].append(p)
        self.hosted_pos = [dict(zip(items, itertools.count())) for items in hosted]
        self.led_pos = [dict(zip(items, itertools.count())) for items in led]
        self.replica_moves = 0
        self.bytes_moved = 0.0
        self.leader_changes = 0
        self.applied = 0             # actions applied so far
        self._recounted = (None, None)

    @staticmethod
    def _add(lists, positions, b, p):
        positions[b][p] = len(lists[b])
        lists[b].append(p)

    @staticmethod
    def _remove(lists, positions, b, p):
        items, pos = lists[b], positions[b]
        i = pos.pop(p)
        last = items.pop()
        if last != p:
            items[i] = last
            pos[last] = i

    # -- building actions ------------------------------------------------------------------

    def move(self, p, src, dst):
        """Action moving p's replica from src to dst (dst must not hold p)."""
        model = self.model
        orig = self.orig_replicas[p]
        dm = (dst not in orig) - (src not in orig)
        lead = self.leader[p]
        if lead == src:
            ol = self.orig_leader[p]
            dlead = (dst != ol) - (src != ol)
            v = (model.nw_in[p], self.lead_out[p], model.size[p], 1, 1)
        else:
            dlead = 0
            v = (model.nw_in[p], 0.0, model.size[p], 1, 0)
        return Action(MOVE, p, src, dst, None, v, dm, dm * model.size[p], dlead)

    def leader_move(self, p, dst):
        """Action moving p's leadership to dst, one of its other replicas."""
        src = self.leader[p]
        ol = self.orig_leader[p]
        return Action(LEADER, p, src, dst, None, (0.0, self.lead_out[p], 0.0, 0, 1), 0, 0.0, (dst != ol) - (src != ol))

    def swap(self, p, src, q, dst):
        """Action exchanging p's replica on src with q's replica on dst."""
        a = self.move(p, src, dst)
        b = self.move(q, dst, src)
        va, vb = a.v, b.v
        v = (va[0] - vb[0], va[1] - vb[1], va[2] - vb[2], 0, va[4] - vb[4])
        return Action(SWAP, p, src, dst, q, v, a.dmoves + b.dmoves, a.dbytes + b.dbytes, a.dlead + b.dlead)

    # -- applying actions ------------------------------------------------------------------

    def apply(self, action):
        src, dst, v = action.src, action.dst, action.v
        for r, amount in enumerate(v):
            if amount:
                load = self.load[r]
                load[src] -= amount
                load[dst] += amount
        if action.kind == LEADER:
            self._set_leader(action.p, dst)
        else:
            self._relocate(action.p, src, dst)
            if action.kind == SWAP:
                self._relocate(action.q, dst, src)
        self.replica_moves += action.dmoves
        self.bytes_moved += action.dbytes
        self.leader_changes += action.dlead
        self.applied += 1

    def _relocate(self, p, src, dst):
        reps = self.replicas[p]
        reps[reps.index(src)] = dst
        self._remove(self.hosted, self.hosted_pos, src, p)
        self._add(self.hosted, self.hosted_pos, dst, p)
        if self.leader[p] == src:
            self._set_leader(p, dst)

    def _set_leader(self, p, dst):
        self._remove(self.led, self.led_pos, self.leader[p], p)
        self._add(self.led, self.led_pos, dst, p)
        self.leader[p] = dst

    # -- figures -----------------------------------------------------------------------------

    def recount(self):
        """(replica moves, bytes to move, leader changes) against the original, from scratch (once
        per state: three goals' costs read it)."""
        if self._recounted[0] == self.applied:
            return self._recounted[1]
        size, orig_replicas = self.model.size, self.orig_replicas
        moves, moved = 0, 0.0
        # Only the partitions whose replica list differs (found in C) can add anything.
        differs = map(operator.ne, map(tuple, self.replicas), orig_replicas)
        for p in itertools.compress(range(len(orig_replicas)), differs):
            orig = orig_replicas[p]
            new = sum(1 for b in self.replicas[p] if b not in orig)
            moves += new
            moved += new * size[p]
        changes = sum(map(operator.ne, self.leader, self.orig_leader))
        self._recounted = (self.applied, (moves, moved, changes))
        return moves, moved, changes
