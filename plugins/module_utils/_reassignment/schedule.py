# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Order of the moves and the sliding window that keeps them under concurrency caps (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from ansible_collections.streamops.day2.plugins.module_utils._reassignment.plan import PlanError, is_int

ORDERS = ("small_first", "large_first", "under_replicated_last", "plan")
DEFAULT_ORDER = ("under_replicated_last", "small_first")


def order_moves(moves, strategies=DEFAULT_ORDER):
    """Moves in execution order. Strategies chain: the first decides, the next break its ties.

    ``small_first`` / ``large_first`` order by bytes to copy, ``under_replicated_last`` postpones
    partitions that already miss an in-sync replica, ``plan`` keeps the plan's order (always the
    last tie-breaker; given first, the plan's order is also kept batch by batch, see next_batch).
    """
    strategies = list(strategies or [])
    for name in strategies:
        if name not in ORDERS:
            raise PlanError("Unknown order %r; choose from %s." % (name, ", ".join(ORDERS)))
    if "small_first" in strategies and "large_first" in strategies:
        raise PlanError("Give small_first or large_first, not both.")

    def sort_key(move):
        key = []
        for name in strategies:
            if name == "small_first":
                key.append(move.bytes)
            elif name == "large_first":
                key.append(-move.bytes)
            elif name == "under_replicated_last":
                key.append(1 if move.under_replicated else 0)
        key.append(move.index)
        return tuple(key)

    return sorted(moves, key=sort_key)


@dataclass(frozen=True)
class Caps:
    """Concurrency caps: moves in flight in the whole cluster, and per broker (sending or receiving)."""
    cluster: int = 50
    per_broker: int = 5

    def __post_init__(self):
        if not is_int(self.cluster) or self.cluster < 1:
            raise PlanError("max_concurrent_moves must be at least 1, got %r." % (self.cluster,))
        if not is_int(self.per_broker) or self.per_broker < 1:
            raise PlanError("max_concurrent_moves_per_broker must be at least 1, got %r." % (self.per_broker,))


def broker_load(moves):
    """Moves in flight per broker."""
    load = {}
    for move in moves:
        for broker in move.brokers:
            load[broker] = load.get(broker, 0) + 1
    return load


def keeps_plan_order(strategies):
    """Whether the plan's own order leads: then it is a barrier, not a priority (see next_batch)."""
    strategies = list(strategies or [])
    return bool(strategies) and strategies[0] == "plan"


def next_batch(queue, running, caps, in_order=False):
    """The moves of ``queue`` (in its order) that may start now without breaking ``caps``.

    A move that does not fit is skipped, not waited for, so a busy broker does not hold back moves
    between idle ones (the order is a priority, not a barrier). Moves that copy nothing (a new
    preferred leader only) take a cluster slot but no broker slot.

    With ``in_order`` (the order ``plan`` first) the batch stops at the first move that does not
    fit instead: the moves started are always a prefix of the plan, whose safe-to-stop order
    (kafka_rebalance_plan) then holds batch after batch.
    """
    in_flight = len(running)
    load = broker_load(running)
    batch = []
    for move in queue:
        if in_flight >= caps.cluster:
            break
        if any(load.get(b, 0) >= caps.per_broker for b in move.brokers):
            if in_order:
                break
            continue
        batch.append(move)
        in_flight += 1
        for broker in move.brokers:
            load[broker] = load.get(broker, 0) + 1
    return batch


def simulate_batches(moves, caps, in_order=False):
    """Waves the moves would run in if each wave finished before the next started (for check mode)."""
    queue = list(moves)
    waves = []
    while queue:
        wave = next_batch(queue, [], caps, in_order)
        if not wave:  # cannot happen with caps >= 1, kept as a guard against an endless loop
            wave = queue[:1]
        waves.append(wave)
        taken = {m.key for m in wave}
        queue = [m for m in queue if m.key not in taken]
    return waves
