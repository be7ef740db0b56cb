"""Relocation benchmark on the lab: the gap (seconds with no Stable consumer-group membership) of each hand-over
strategy over several relocations, the time until the lag is back under the threshold, and the naive move's loss and
duplicates, in the same run.

    python tests/bench/relocation/bench_relocation.py --relocations 6 --json .lab/reports/bench-relocation.json

Each strategy runs the e2e scenario (tests/e2e/relocation_lab.py): a steady producer, the consumer helper app slowed in
region a, moved by the lag_relocation playbook to b and back by the module. Medians over the relocations of one run,
since every move is a sample of the same thing on the same machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "e2e"))
from relocation_lab import lab_env, missing, run  # noqa: E402  (the e2e folder is not a package)


def figures(report):
    gaps = report["gap_seconds"]
    waits = [w for w in report["seconds_to_under_threshold"] if w is not None]
    tasks = [m["task_seconds"] for m in report["moves"]]
    return dict(relocations=report["relocations"], gap_median=statistics.median(gaps) if gaps else None, gap_max=max(gaps) if gaps else None,
                task_median=statistics.median(tasks), under_threshold_median=statistics.median(waits) if waits else None,
                lost=report["lost"], duplicated=report["duplicated"])


def show(value, fmt="%.2f"):
    return "-" if value is None else fmt % value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relocations", type=int, default=6)
    parser.add_argument("--produced", type=int, default=20000)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--mode", default="exactly-once", choices=["exactly-once", "at-least-once"])
    parser.add_argument("--strategies", default="handover,warm,naive", help="which of handover, warm, naive to run")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    env = lab_env()
    reason = missing(env)
    if reason:
        sys.exit("bench_relocation: %s" % reason)
    rows = {}
    wanted = args.strategies.split(",")
    for label, options in (("handover", dict(strategy="handover")), ("warm", dict(strategy="warm")), ("naive", dict(naive=True))):
        if label not in wanted:
            continue
        report = run(env, args.mode, produced=args.produced, rate=args.rate, relocations=args.relocations, **options)
        rows[label] = dict(figures(report), report=report)
        print("%-9s %s" % (label, json.dumps({k: v for k, v in rows[label].items() if k != "report"})), flush=True)
    header = ("strategy", "moves", "gap median", "gap max", "task median", "lag back under (s)", "lost", "duplicated")
    print("\n%-9s %6s %11s %8s %11s %17s %6s %11s" % header)
    for label, row in rows.items():
        cells = (label, row["relocations"], show(row["gap_median"]), show(row["gap_max"]), show(row["task_median"]),
                 show(row["under_threshold_median"]), row["lost"], row["duplicated"])
        print("%-9s %6d %11s %8s %11s %17s %6d %11d" % cells)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
