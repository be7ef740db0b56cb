# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Quality of an assignment, computed here from scratch (not with the planner's own code), so every
planner in the comparison is judged by the same independent arithmetic."""

from __future__ import annotations

import math

RESOURCES = ("nw_in", "nw_out", "disk", "replicas", "leaders")


def loads(model, assignment):
    """{resource: {broker id: load}} for assignment {(topic, partition): (replicas, leader)}."""
    ids = [b["id"] for b in model["brokers"]]
    out = {r: {b: 0.0 for b in ids} for r in RESOURCES}
    for part in model["partitions"]:
        replicas, leader = assignment[(part["topic"], part["partition"])]
        for b in replicas:
            out["nw_in"][b] += part["nw_in"]
            out["disk"][b] += part["size"]
            out["replicas"][b] += 1
        out["nw_out"][leader] += part["nw_out"] + part["nw_in"] * (len(replicas) - 1)
        out["leaders"][leader] += 1
    return out


def current(model):
    return {(p["topic"], p["partition"]): (list(p["replicas"]), p.get("leader", p["replicas"][0])) for p in model["partitions"]}


def after_plan(model, partitions):
    """The assignment once a reassignment (list of {topic, partition, replicas}) ran and preferred leaders were elected."""
    out = current(model)
    for entry in partitions:
        out[(entry["topic"], entry["partition"])] = (list(entry["replicas"]), entry["replicas"][0])
    return out


def stats(values):
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / n)
    return {"max_mean": max(values) / mean if mean else 0.0, "sd": sd, "mean": mean}


def violations(model, assignment, excluded=()):
    """Broken hard constraints: replication factor, distinct brokers, drained brokers, rack awareness, excluded topics."""
    racks = {b["id"]: b.get("rack") for b in model["brokers"]}
    drained = set(model.get("drain_brokers", []))
    kept_racks = {racks[b] for b in racks if b not in drained}
    out = []
    for part in model["partitions"]:
        key = (part["topic"], part["partition"])
        replicas, leader = assignment[key]
        name = "%s-%d" % key
        if len(replicas) != len(part["replicas"]):
            out.append("%s: replication factor changed" % name)
        if len(set(replicas)) != len(replicas):
            out.append("%s: two replicas on one broker" % name)
        if leader not in replicas:
            out.append("%s: leader without a replica" % name)
        if any(b in drained for b in replicas):
            out.append("%s: replica on a drained broker" % name)
        if part["topic"] in excluded and list(replicas) != list(part["replicas"]):
            out.append("%s: excluded topic moved" % name)
        if None not in kept_racks and part["topic"] not in excluded:
            limit = 1 if len(kept_racks) >= len(replicas) else math.ceil(len(replicas) / len(kept_racks))
            counts = {}
            for b in replicas:
                counts[racks[b]] = counts.get(racks[b], 0) + 1
            if max(counts.values()) > limit:
                out.append("%s: rack awareness broken" % name)
    return out


def floors(model):
    """Per resource, the lowest max/mean any placement can reach: the largest single contribution
    (the busiest partition's share), a whole count for replicas and leaders (ceil(mean) / mean),
    and, when every partition has one replica per rack, the load its rack must carry per broker."""
    drained = set(model.get("drain_brokers", []))
    kept = [b["id"] for b in model["brokers"] if b["id"] not in drained]
    base = loads(model, current(model))
    out = {}
    racks = {b["id"]: b.get("rack") for b in model["brokers"]}
    kept_racks = sorted({racks[b] for b in kept}, key=str)
    one_per_rack = None not in kept_racks and all(len(p["replicas"]) == len(kept_racks) for p in model["partitions"])
    for r in RESOURCES:
        mean = sum(base[r].values()) / len(kept)
        if not mean:
            out[r] = 0.0
            continue
        largest = {
            "nw_in": max(p["nw_in"] for p in model["partitions"]),
            "nw_out": max(p["nw_out"] + p["nw_in"] * (len(p["replicas"]) - 1) for p in model["partitions"]),
            "disk": max(p["size"] for p in model["partitions"]),
            "replicas": 1, "leaders": 1,
        }[r]
        floor = max(1.0, largest / mean)
        counted = r in ("replicas", "leaders")
        if counted:
            floor = max(floor, math.ceil(mean - 1e-9) / mean)
        if one_per_rack and r in ("nw_in", "disk", "replicas"):
            per_rack = sum(base[r].values()) / len(kept_racks)
            for rack in kept_racks:
                brokers = sum(1 for b in kept if racks[b] == rack)
                per_broker = per_rack / brokers
                floor = max(floor, (math.ceil(per_broker - 1e-9) if counted else per_broker) / mean)
        out[r] = floor
    return out


def lower_bound(model):
    """Bytes that must move at least: the sum over brokers of disk above the mean (all of it for drained brokers)."""
    drained = set(model.get("drain_brokers", []))
    disk = loads(model, current(model))["disk"]
    kept = [b for b in disk if b not in drained]
    mean = sum(disk.values()) / len(kept)
    return sum(max(0.0, v - (0.0 if b in drained else mean)) for b, v in disk.items())


def evaluate(model, assignment, excluded=()):
    """Every figure of the benchmark table for one planner's result."""
    drained = set(model.get("drain_brokers", []))
    before, after = loads(model, current(model)), loads(model, assignment)
    kept = [b["id"] for b in model["brokers"] if b["id"] not in drained]
    out = {"violations": len(violations(model, assignment, excluded))}
    for r in RESOURCES:
        b = stats([before[r][x] for x in before[r]])
        a = stats([after[r][x] for x in kept])
        out[r] = {"before_max_mean": b["max_mean"], "after_max_mean": a["max_mean"], "before_sd": b["sd"], "after_sd": a["sd"],
                  "sd_reduction": 1 - a["sd"] / b["sd"] if b["sd"] else 0.0}
    moves = moved = leader_changes = 0
    sizes = {(p["topic"], p["partition"]): p["size"] for p in model["partitions"]}
    for key, (replicas, leader) in current(model).items():
        new_replicas, new_leader = assignment[key]
        added = len(set(new_replicas) - set(replicas))
        moves += added
        moved += added * sizes[key]
        leader_changes += new_leader != leader
    bound = lower_bound(model)
    out.update(replica_moves=moves, bytes_moved=moved, lower_bound=bound,
               bytes_vs_bound=moved / bound if bound else float("inf") if moved else 1.0, leader_changes=leader_changes)
    return out
