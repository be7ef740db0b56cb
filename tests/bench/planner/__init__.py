"""Planner benchmarks: `python -m tests.bench.planner` (see tests/bench/README.md)."""
