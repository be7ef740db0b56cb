# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The planner benchmark, from one command:

    .venv/bin/python -m tests.bench.planner                      # every case, every anchor available
    .venv/bin/python -m tests.bench.planner --cases small,medium --anchors kafka

For each generated model (generate.CASES) it runs our planner in its own process, Kafka's
--generate and Cruise Control's optimizer on the same model file, judges every result with the
same independent arithmetic (metrics.py), and prints one Markdown table; --json keeps every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tests.bench.planner import anchors, metrics
from tests.bench.planner.generate import CASES, EXTRA_CASES, build

MODELS = anchors.CACHE / "models"


def model_file(case):
    """The case's model, generated once and cached (the generator is seeded, so it never changes)."""
    MODELS.mkdir(parents=True, exist_ok=True)
    path = MODELS / ("%s.json" % case)
    source = Path(__file__).with_name("generate.py")
    if not path.exists() or path.stat().st_mtime < source.stat().st_mtime:
        with open(path, "w") as handle:
            json.dump(build(case), handle)
    return path


def run_streamops(path, options):
    out, wall, cpu, rss = anchors.timed([sys.executable, "-m", "tests.bench.planner.worker", str(path), json.dumps(options)],
                                        cwd=str(anchors.ROOT))
    result = json.loads(out)
    figures = {"seconds": result["seconds"], "cpu_seconds": result["cpu"], "process_seconds": wall, "rss_mb": rss,
               "stop_reason": result["summary"]["stop_reason"]}
    return result["plan"]["partitions"], figures


def executed(model, partitions):
    """The model as it is once the plan ran: new replicas, preferred leaders, drained brokers gone."""
    after = metrics.after_plan(model, partitions)
    drained = set(model.get("drain_brokers", []))
    out = {"brokers": [b for b in model["brokers"] if b["id"] not in drained], "partitions": []}
    for part in model["partitions"]:
        replicas, leader = after[(part["topic"], part["partition"])]
        out["partitions"].append(dict(part, replicas=replicas, leader=leader))
    return out


def second_run(case, model, partitions, options):
    """Our planner again, on the result of its own plan: (replica moves, bytes) it still proposes."""
    path = MODELS / ("%s.after.json" % case)
    with open(path, "w") as handle:
        json.dump(executed(model, partitions), handle)
    again, figures = run_streamops(path, dict(options, seed=options["seed"] + 1))
    return metrics.evaluate(executed(model, partitions), metrics.after_plan(executed(model, partitions), again))["replica_moves"]


def run_case(case, anchor_names, options, variants, log):
    path = model_file(case)
    with open(path) as handle:
        model = json.load(handle)
    info = {"brokers": len(model["brokers"]), "partitions": len(model["partitions"]),
            "replicas": sum(len(p["replicas"]) for p in model["partitions"]),
            "drained": len(model.get("drain_brokers", [])), "floors": metrics.floors(model)}
    rows = {}
    runners = []
    for label, weights in variants:
        run_options = dict(options, goal_weights=weights) if weights else options
        runners.append((label, lambda run_options=run_options: run_streamops(path, run_options)))
    if "kafka" in anchor_names:
        runners.append(("kafka --generate", lambda: anchors.kafka_generate(path)))
    if "cruise-control" in anchor_names:
        runners.append(("cruise control", lambda: anchors.cruise_control(path)))
    for name, runner in runners:
        log("%s: %s ..." % (case, name))
        try:
            partitions, figures = runner()
        except anchors.Unavailable as e:
            rows[name] = {"unavailable": str(e)}
            continue
        except RuntimeError as e:
            rows[name] = {"unavailable": "failed: %s" % str(e).splitlines()[-1][:200]}
            continue
        figures.update(metrics.evaluate(model, metrics.after_plan(model, partitions)))
        if name == "streamops":
            figures["second_run"] = second_run(case, model, partitions, options)
        rows[name] = figures
    return {"model": info, "results": rows}


def fmt_bytes(value):
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return "%.1f %s" % (value, unit)
        value /= 1000.0


def table(report):
    head = ("| case | planner | time s (cpu) | peak RSS MB | σ↓ nw_in | σ↓ nw_out | max/mean after: nw_in nw_out disk replicas leaders "
            "| replica moves | bytes moved | ÷ lower bound | leader changes | violations | 2nd run moves |")
    lines = [head, "|" + "---|" * 13]
    for case, data in report.items():
        m = data["model"]
        drained = ", %d drained" % m["drained"] if m["drained"] else ""
        label = "%s: %d brokers, %d partitions, %d replicas%s" % (case, m["brokers"], m["partitions"], m["replicas"], drained)
        floors = " ".join("%.3f" % m["floors"][r] for r in metrics.RESOURCES)
        first = True
        for name, row in data["results"].items():
            cell = label if first else ""
            first = False
            if "unavailable" in row:
                lines.append("| %s | %s | %s |%s" % (cell, name, row["unavailable"], " |" * 10))
                continue
            seconds = "%.2f (%.2f)" % (row["seconds"], row["cpu_seconds"]) if "cpu_seconds" in row else "%.2f" % row["seconds"]
            after = " ".join("%.3f" % row[r]["after_max_mean"] for r in metrics.RESOURCES)
            lines.append("| %s | %s | %s | %.0f | %.1f%% | %.1f%% | %s | %d | %s | %.2f | %d | %d | %s |" % (
                cell, name, seconds, row["rss_mb"], 100 * row["nw_in"]["sd_reduction"], 100 * row["nw_out"]["sd_reduction"],
                after, row["replica_moves"], fmt_bytes(row["bytes_moved"]), row["bytes_vs_bound"], row["leader_changes"],
                row["violations"], row.get("second_run", "")))
        before = " ".join("%.3f" % next(iter(r for r in data["results"].values() if "nw_in" in r))[x]["before_max_mean"]
                          for x in metrics.RESOURCES) if any("nw_in" in r for r in data["results"].values()) else "-"
        lines.append("| | *before / floor* | | | | | %s / %s | | lower bound %s | | | | |" % (
            before, floors, fmt_bytes(next((r["lower_bound"] for r in data["results"].values() if "lower_bound" in r), 0))))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.bench.planner", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--cases", default=",".join(CASES),
                        help="comma-separated (default: all but the extra-large), from: %s" % ", ".join(list(CASES) + list(EXTRA_CASES)))
    parser.add_argument("--anchors", default="kafka,cruise-control", help="comma-separated: kafka, cruise-control (or none)")
    parser.add_argument("--variants", default="default,movement=0.2+replica_moves=0.1",
                        help="our planner's goal weights to run, comma-separated: default, or goal=weight[+goal=weight]")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--time-limit", type=float, help="the search's time limit (default: the planner's own, which grows with the cluster)")
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in CASES and c not in EXTRA_CASES]
    if unknown:
        parser.error("unknown case %s" % unknown[0])
    anchor_names = set(a for a in args.anchors.split(",") if a and a != "none")
    options = {"seed": args.seed}
    if args.time_limit is not None:
        options["time_limit"] = args.time_limit
    variants = []
    for variant in (v for v in args.variants.split(",") if v):
        if variant == "default":
            variants.append(("streamops", None))
        else:
            weights = {k: float(w) for k, w in (pair.split("=") for pair in variant.split("+"))}
            variants.append(("streamops %s" % variant, weights))
    started = time.time()
    report = {}
    for case in cases:
        report[case] = run_case(case, anchor_names, options, variants, lambda msg: print(msg, file=sys.stderr, flush=True))
    print(table(report))
    print("\n(%d cases in %.0f s; σ↓ = reduction of the per-broker standard deviation; max/mean over the brokers kept; "
          "floor = lowest max/mean any placement can reach; time = the planner's own, cpu in brackets)" % (len(cases), time.time() - started))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=1)
    return 0
