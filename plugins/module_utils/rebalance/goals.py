# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Soft goals: each one a small class with a cost and a cheap delta for a candidate action.

The planner minimises the weighted sum of the goals' costs.  A goal's ``delta(action)`` must
equal ``cost() after applying the action - cost() before`` (unit tests check every built-in goal
against a full recomputation), and must be cheap: it runs for every candidate the search looks at.

All built-in costs are scaled so that their deltas are comparable without tuning per cluster: a
typical action changes any of them by about ``(relative change) / number of replicas``.  So a
weight reads as an exchange rate; e.g. ``movement: 0.02`` means moving one average replica is
worth it only if it narrows some resource's gap by more than about 1% of the mean.

Writing a goal (docs/rebalance.md has a complete example)::

    class KeepTopicOffBroker(Goal):
        name = "keep_off"
        def bind(self, state): ...          # once, before the search; keep what you need
        def cost(self): ...                 # from scratch, from state
        def delta(self, action): ...        # the change of cost() if action were applied
        def applied(self, action): ...      # optional: update your own aggregates
"""

from __future__ import annotations

import importlib
import itertools
import math

from ansible_collections.streamops.day2.plugins.module_utils.rebalance.loads import LEADER, MOVE, SWAP  # noqa: F401 (re-exported for custom goals)
from ansible_collections.streamops.day2.plugins.module_utils.rebalance.model import (
    CAPACITY_RESOURCES, DISK, LEADERS, NW_IN, REPLICAS, RESOURCES, ModelError,
)


class Goal:
    """Base class of every goal, built in or custom.

    Subclasses set ``name`` (used for weights and in messages) and implement ``cost`` and
    ``delta``.  ``bind`` receives the :class:`ClusterState` before the search; ``applied`` is
    called after every action the search accepts (the state already reflects it).  Costs are
    unweighted: the planner multiplies by the weight the user gave (or ``default_weight``).

    What a goal can read from the state: ``state.model`` (brokers, partitions, loads),
    ``state.replicas[p]`` and ``state.leader[p]`` (current assignment, broker positions),
    ``state.load[r][b]`` (current per-broker load, r in RESOURCES order), ``state.active``
    (positions of brokers that are not being drained), ``state.orig_replicas``/``orig_leader``.
    An action has ``kind`` (MOVE, LEADER, SWAP), ``p``, ``src``, ``dst``, ``q`` (swap only) and
    ``v``, the five amounts it moves from src to dst.
    """

    name = None
    default_weight = 1.0

    def bind(self, state):
        self.state = state

    def cost(self):
        raise NotImplementedError

    def delta(self, action):
        raise NotImplementedError

    def applied(self, action):
        """Called after the state applied an accepted action (update own aggregates here)."""


class ResourceBalanceGoal(Goal):
    """Even load of one resource: mean over active brokers of ((load - target) / target)^2.

    The target of a broker is its share of the cluster total: equal shares, or shares in
    proportion to capacity when every active broker declares a capacity for the resource.
    Brokers being drained have no target (their load must leave anyway).  The cost is the
    squared coefficient of variation, so it does not depend on the cluster's size or units.

    With a ``band`` (a fraction, say 0.05), only the part of a deviation beyond +-band x target
    counts: brokers within the band cost nothing, so the search stops moving data for them.  That
    trades the last per cent of evenness for fewer moves (band 0, the default, balances fully).
    """

    def __init__(self, resource, band=0.0):
        self.resource = resource
        self.r = RESOURCES.index(resource)
        self.name = resource
        if isinstance(band, bool) or not isinstance(band, (int, float)) or not 0 <= band < 1:
            raise ModelError("The balance band of %s must be a fraction in [0, 1), got %r." % (resource, band))
        self.band = float(band)

    def bind(self, state):
        self.state = state
        model = state.model
        active = state.active
        self.load = state.load[self.r]
        total = float(sum(self.load))
        shares = [0.0] * model.n_brokers
        capacity = model.capacity.get(self.resource)
        if capacity and all(capacity[b] is not None for b in active):
            cap_total = sum(capacity[b] for b in active)
            for b in active:
                shares[b] = capacity[b] / cap_total
        else:
            for b in active:
                shares[b] = 1.0 / len(active)
        self.target = [total * s for s in shares]
        self.margin = [self.band * t for t in self.target]
        # k[b] folds 1/target^2 and the mean over active brokers into one factor for the hot loop.
        self.k = [0.0] * model.n_brokers
        if total > 0:
            for b in active:
                self.k[b] = 1.0 / (self.target[b] * self.target[b] * len(active))

    def deviation(self, b):
        """Relative deviation of broker b from its target (0 = on target, 0.1 = 10% over)."""
        target = self.target[b]
        return (self.load[b] - target) / target if target else 0.0

    def _excess(self, b, off):
        # The part of a deviation `off` beyond broker b's band.
        margin = self.margin[b]
        if off > margin:
            return off - margin
        if off < -margin:
            return off + margin
        return 0.0

    def cost(self):
        load, target, k = self.load, self.target, self.k
        # x * x, not x ** 2: a huge load gives inf instead of raising OverflowError.
        if self.band:
            return sum(k[b] * self._excess(b, load[b] - target[b]) * self._excess(b, load[b] - target[b]) for b in self.state.active)
        return sum(k[b] * (load[b] - target[b]) * (load[b] - target[b]) for b in self.state.active)

    def delta(self, action):
        v = action.v[self.r]
        if not v:
            return 0.0
        return self.delta_amount(action.src, action.dst, v)

    def delta_amount(self, s, d, v):
        """Cost change when v of this resource goes from broker s to broker d."""
        load, target, k = self.load, self.target, self.k
        if self.band:
            excess = self._excess
            ds, dd = load[s] - target[s], load[d] - target[d]
            before_s, after_s = excess(s, ds), excess(s, ds - v)
            before_d, after_d = excess(d, dd), excess(d, dd + v)
            return k[s] * (after_s * after_s - before_s * before_s) + k[d] * (after_d * after_d - before_d * before_d)
        return v * (k[d] * (2.0 * (load[d] - target[d]) + v) - k[s] * (2.0 * (load[s] - target[s]) - v))


def balance_floors(state):
    """Per resource, the lowest max/mean any placement can reach (docs/rebalance.md, "Floors").

    The busiest single contribution (one replica's nw_in or size, one leader's nw_out) over the
    mean; for the counts, ceil(mean) / mean; and when every partition has exactly one replica on
    each rack, the load of a rack shared by its brokers (a small rack's brokers carry more).
    """
    model, active = state.model, state.active
    n = len(active)
    totals = [float(sum(state.load[r][b] for b in range(model.n_brokers))) for r in range(len(RESOURCES))]
    largest = [max(model.nw_in, default=0.0), max(state.lead_out, default=0.0), max(model.size, default=0.0), 1.0, 1.0]
    racks = None
    if model.has_racks():
        names = sorted({model.racks[b] for b in active})
        if all(len(reps) == len(names) for reps in model.replicas):
            racks = [sum(1 for b in active if model.racks[b] == name) for name in names]
    floors = []
    for r, total in enumerate(totals):
        mean = total / n if n else 0.0
        if not mean:
            floors.append(1.0)
            continue
        floor = max(1.0, largest[r] / mean)
        counted = r in (REPLICAS, LEADERS)
        if counted:
            floor = max(floor, math.ceil(mean - 1e-9) / mean)
        if racks and r in (NW_IN, DISK, REPLICAS):
            for brokers in racks:
                per_broker = total / len(racks) / brokers
                floor = max(floor, (math.ceil(per_broker - 1e-9) if counted else per_broker) / mean)
        floors.append(floor)
    return floors


class PeakGoal(Goal):
    """No broker above a ceiling: for each resource, the squared part of every broker's load above
    ``ceiling x target``, scaled like ResourceBalanceGoal.  The ceiling is ``max(base, slack x
    floor)`` with the resource's floor (see balance_floors), so it can always be reached in principle.

    The quadratic balance goals weigh every broker alike, so near balance they trade a peak broker's
    last few per cent for small gains elsewhere (on skewed clusters, a broker holding one huge
    partition must shed almost everything else and keep its replica count by swaps); operators read
    max/mean.  This goal costs nothing below the ceilings and pushes the peaks under them.

    Its weight (100) makes a broker a per cent above its ceiling cost as much as a hundred brokers
    a per cent off their targets: on the skewed benchmark models a weight of 8 or 30 left the
    brokers holding the hottest partitions 5-15% above target, 100 brings them under it.  The
    ceilings sit a little under the benchmark's targets (1.05, 1.03 x floor), since the search
    stops with the peaks about one per cent above their ceilings.
    """

    name = "peaks"
    default_weight = 100.0
    base = 1.03
    slack = 1.01

    def bind(self, state):
        self.state = state
        model = state.model
        n = model.n_brokers
        self.floors = balance_floors(state)
        self.loads, self.caps, self.ks = [], [], []
        for r, resource in enumerate(RESOURCES):
            goal = ResourceBalanceGoal(resource)
            goal.bind(state)
            ceiling = max(self.base, self.slack * self.floors[r])
            self.loads.append(state.load[r])
            self.caps.append([t * ceiling for t in goal.target])
            self.ks.append(goal.k)
        self.active = [False] * n
        for b in state.active:
            self.active[b] = True

    def cost(self):
        total = 0.0
        for load, cap, k in zip(self.loads, self.caps, self.ks):
            for b in self.state.active:
                over = load[b] - cap[b]
                if over > 0:
                    total += k[b] * over * over
        return total

    def delta(self, action):
        total = 0.0
        for r, v in enumerate(action.v):
            if v:
                total += self.delta_amount(r, action.src, action.dst, v)
        return total

    def delta_amount(self, r, s, d, v):
        """Cost change when v of resource r goes from broker s to broker d."""
        load, cap, k = self.loads[r], self.caps[r], self.ks[r]
        total = 0.0
        before = load[s] - cap[s]
        after = before - v
        if before > 0 or after > 0:
            total += k[s] * ((after * after if after > 0 else 0.0) - (before * before if before > 0 else 0.0))
        before = load[d] - cap[d]
        after = before + v
        if before > 0 or after > 0:
            total += k[d] * ((after * after if after > 0 else 0.0) - (before * before if before > 0 else 0.0))
        return total


class TopicSpreadGoal(Goal):
    """No topic concentrated on a broker: over all topics and active brokers, the replicas a
    broker holds beyond ceil(its even share of the topic), divided by the number of replicas.

    Only the excess counts (a broker with none of a topic's replicas harms nobody), and within
    the share every placement is free, so the goal never fights the resource goals over a replica
    or two.  Its default weight equals the movement goal's: removing one excess replica is worth
    moving about one average replica.
    """

    name = "topic_spread"
    default_weight = 0.02

    def bind(self, state):
        self.state = state
        model = state.model
        n_active = len(state.active)
        self.active = [False] * model.n_brokers
        for b in state.active:
            self.active[b] = True
        self.count = [[0] * model.n_brokers for topic in model.topics]
        per_topic = [0] * len(model.topics)
        for p, reps in enumerate(state.replicas):
            t = model.p_topic[p]
            per_topic[t] += len(reps)
            row = self.count[t]
            for b in reps:
                row[b] += 1
        self.upper = [int(math.ceil(n / float(n_active))) for n in per_topic]
        total = sum(per_topic)
        self.scale = 1.0 / total if total else 0.0
        self.p_topic = model.p_topic
        # The topics that have (or had) more than their share on some broker, found from the
        # replicas: cost() reads only their rows (topics x brokers is tens of millions of counts at
        # the largest), and applied() adds a topic that goes above its share.
        count, upper = self.count, self.upper
        self.crowded = {t for t, reps in zip(model.p_topic, state.replicas) for b in reps if count[t][b] > upper[t]}

    def cost(self):
        active, total = self.active, 0
        every = len(self.state.active) == len(active)
        for t in self.crowded:
            row, up = self.count[t], self.upper[t]
            if not every:
                row = list(itertools.compress(row, active))
            top = max(row)
            # The excess, counted per value above the share (few values, each counted at C speed);
            # nothing for a row that has shed its excess since.
            total += sum(row.count(x) * (x - up) for x in range(up + 1, top + 1))
        return self.scale * total

    def _one(self, t, s, d):
        # Change of the excess when one replica of topic t goes from s to d.
        row, up = self.count[t], self.upper[t]
        return ((self.active[d] and row[d] >= up) - (self.active[s] and row[s] > up))

    def delta(self, action):
        kind = action.kind
        if kind == LEADER:
            return 0.0
        t = self.p_topic[action.p]
        if kind == SWAP:
            u = self.p_topic[action.q]
            if u == t:
                return 0.0
            return self.scale * (self._one(t, action.src, action.dst) + self._one(u, action.dst, action.src))
        return self.scale * self._one(t, action.src, action.dst)

    def applied(self, action):
        if action.kind == LEADER:
            return
        t = self.p_topic[action.p]
        row = self.count[t]
        row[action.src] -= 1
        row[action.dst] += 1
        if row[action.dst] > self.upper[t]:
            self.crowded.add(t)
        if action.kind == SWAP:
            t = self.p_topic[action.q]
            row = self.count[t]
            row[action.dst] -= 1
            row[action.src] += 1
            if row[action.src] > self.upper[t]:
                self.crowded.add(t)


class MovementGoal(Goal):
    """Data movement: bytes to move (against the current assignment) as a fraction of all bytes stored.

    Moving a replica back where it was counts negative: the search can undo its own moves.
    """

    name = "movement"
    default_weight = 0.02

    def bind(self, state):
        self.state = state
        model = state.model
        stored = sum(model.size[p] * len(r) for p, r in enumerate(model.replicas))
        self.per_byte = 1.0 / stored if stored else 0.0

    def cost(self):
        return self.state.recount()[1] * self.per_byte

    def delta(self, action):
        return action.dbytes * self.per_byte


class ReplicaMovesGoal(Goal):
    """Replica moves (against the current assignment) as a fraction of all replicas: every move has
    a cost of its own besides its bytes (a replica to create, catch up and delete), and empty
    replicas should not be shuffled for nothing.  The default weight makes a move cost as much as
    moving half an average replica's bytes."""

    name = "replica_moves"
    default_weight = 0.01

    def bind(self, state):
        self.state = state
        replicas = sum(len(r) for r in state.model.replicas)
        self.per_move = 1.0 / replicas if replicas else 0.0

    def cost(self):
        return self.state.recount()[0] * self.per_move

    def delta(self, action):
        return action.dmoves * self.per_move


class LeaderChangeGoal(Goal):
    """Leader changes (against the current assignment) as a fraction of the partitions: a leader
    change is cheap but not free (clients reconnect), so tiny gains should not buy one."""

    name = "leader_changes"
    default_weight = 0.005

    def bind(self, state):
        self.state = state
        n = state.model.n_partitions
        self.scale = 1.0 / n if n else 0.0

    def cost(self):
        return self.scale * self.state.recount()[2]

    def delta(self, action):
        return self.scale * action.dlead


BUILTIN_GOALS = {
    "nw_in": lambda: ResourceBalanceGoal("nw_in"),
    "nw_out": lambda: ResourceBalanceGoal("nw_out"),
    "disk": lambda: ResourceBalanceGoal("disk"),
    "replicas": lambda: ResourceBalanceGoal("replicas"),
    "leaders": lambda: ResourceBalanceGoal("leaders"),
    "peaks": PeakGoal,
    "topic_spread": TopicSpreadGoal,
    "movement": MovementGoal,
    "replica_moves": ReplicaMovesGoal,
    "leader_changes": LeaderChangeGoal,
}

DEFAULT_WEIGHTS = {
    "nw_in": 1.0,
    "nw_out": 1.0,
    "disk": 1.0,
    "replicas": 0.5,
    "leaders": 0.5,
    "peaks": PeakGoal.default_weight,
    "topic_spread": TopicSpreadGoal.default_weight,
    "movement": MovementGoal.default_weight,
    "replica_moves": ReplicaMovesGoal.default_weight,
    "leader_changes": LeaderChangeGoal.default_weight,
}


def _weight(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ModelError("%s must be a number >= 0, got %r." % (what, value))
    return float(value)


def import_goal_class(path):
    """The class named by a dotted path 'package.module.ClassName'."""
    if not isinstance(path, str) or "." not in path:
        raise ModelError("Custom goal %r must be a dotted path to a class, like 'mypackage.goals.MyGoal'." % (path,))
    module_name, dummy, class_name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # an import can fail in any way the user's code chooses
        raise ModelError("Cannot import custom goal %s: %s." % (path, e))
    cls = getattr(module, class_name, None)
    if cls is None or not isinstance(cls, type):
        raise ModelError("Custom goal %s: module %s has no class %s." % (path, module_name, class_name))
    for method in ("cost", "delta"):
        if not callable(getattr(cls, method, None)):
            raise ModelError("Custom goal %s has no %s() method; see docs/rebalance.md for the goal interface." % (path, method))
    return cls


def build_goals(weights=None, custom_goals=None, bands=None):
    """[(goal, weight)] for the built-in goals with their weights, then the custom goals.

    weights: {goal name: weight} overriding DEFAULT_WEIGHTS (0 switches a goal off).
    bands: {resource: fraction}, the balance band of resource goals (see ResourceBalanceGoal).
    custom_goals: list of {'class': 'pkg.mod.Class', 'weight': w, 'options': {...}} or of
    Goal instances (or classes) when called from Python.
    """
    weights = dict(weights or {})
    for name in weights:
        if name not in BUILTIN_GOALS:
            raise ModelError("Unknown goal %r in goal weights (known: %s)." % (name, ", ".join(BUILTIN_GOALS)))
    bands = dict(bands or {})
    for name in bands:
        if name not in RESOURCES:
            raise ModelError("Unknown resource %r in balance bands (known: %s)." % (name, ", ".join(RESOURCES)))
    goals = []
    for name, make in BUILTIN_GOALS.items():
        weight = _weight(weights.get(name, DEFAULT_WEIGHTS[name]), "The weight of goal %s" % name)
        if weight > 0:
            goals.append((ResourceBalanceGoal(name, bands.get(name, 0.0)) if name in RESOURCES else make(), weight))
    for i, spec in enumerate(custom_goals or []):
        goals.append(_custom_goal(i, spec))
    names = [goal.name for goal, weight in goals]
    for name in names:
        if names.count(name) > 1:
            raise ModelError("Two goals are named %r; give the custom goal another name." % name)
    return goals


def _custom_goal(i, spec):
    if isinstance(spec, Goal):
        return spec, float(getattr(spec, "weight", None) or spec.default_weight)
    if isinstance(spec, type):
        spec = {"class": spec}
    if isinstance(spec, str):
        spec = {"class": spec}
    if not isinstance(spec, dict) or "class" not in spec:
        raise ModelError("custom_goals[%d] must be a mapping with a 'class' (a dotted path), got %r." % (i, spec))
    unknown = sorted(set(spec) - {"class", "weight", "options"})
    if unknown:
        raise ModelError("custom_goals[%d] has unknown key %r (known: class, weight, options)." % (i, unknown[0]))
    cls = spec["class"] if isinstance(spec["class"], type) else import_goal_class(spec["class"])
    label = getattr(cls, "__name__", str(cls))
    options = spec.get("options") or {}
    if not isinstance(options, dict):
        raise ModelError("custom_goals[%d] (%s) options must be a mapping." % (i, label))
    try:
        goal = cls(**options)
    except Exception as e:  # user code: report, don't crash
        raise ModelError("Custom goal %s could not be created with options %r: %s." % (label, options, e))
    if not getattr(goal, "name", None):
        goal.name = label
    weight = spec.get("weight")
    weight = _weight(getattr(goal, "default_weight", 1.0) if weight is None else weight, "The weight of custom goal %s" % goal.name)
    return goal, weight


__all__ = ["LEADER", "MOVE", "SWAP", "Goal", "ResourceBalanceGoal", "PeakGoal", "balance_floors", "TopicSpreadGoal", "MovementGoal",
           "ReplicaMovesGoal", "LeaderChangeGoal", "BUILTIN_GOALS", "DEFAULT_WEIGHTS", "build_goals", "import_goal_class", "CAPACITY_RESOURCES"]
