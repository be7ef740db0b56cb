# Every target sets up what it needs on a fresh machine (see tests/setup.sh, tests/lab/up).
SHELL := /bin/bash
ENV := source tests/env.sh &&

.PHONY: demo test setup lab-up lab-down sanity lint unit integration consumer molecule e2e e2e-relocation bench bench-planner bench-lag bench-reassignment bench-criu bench-relocation bench-workflow

demo: setup lab-up
	$(ENV) ansible-playbook playbooks/demo.yml

test: setup lab-up
	$(ENV) python tests/run_gates.py

setup:
	@tests/setup.sh

lab-up:
	@tests/lab/up

lab-down:
	@tests/lab/down

sanity lint unit integration consumer molecule e2e: setup
	$(ENV) python tests/run_gates.py $@

# The end-to-end relocation proof alone (make test runs it as its last gate); reports in .lab/reports/.
e2e-relocation: setup lab-up
	$(ENV) python tests/run_gates.py e2e

# Benchmarks (tests/bench/README.md and docs/*.md hold the figures): minutes each, not part of `make test`.
bench: bench-planner bench-lag bench-reassignment bench-criu bench-relocation bench-workflow

bench-planner: setup
	$(ENV) python -m tests.bench.planner

bench-lag: setup lab-up
	$(ENV) python tests/bench/lag/bench_lag.py --groups 100 --partitions 50 --topics 10 --runs 5 --big 1000 --big-runs 3

bench-reassignment: setup lab-up
	$(ENV) python tests/bench/reassignment/bench_reassignment.py --mb 48 --throttle 2MB --runs 3

bench-criu: setup lab-up
	$(ENV) python tests/bench/criu/bench_criu.py --sizes 16 64 256 --reps 3 --versions 10

bench-relocation: setup lab-up
	$(ENV) python tests/bench/relocation/bench_relocation.py --relocations 6 --json .lab/reports/bench-relocation.json

bench-workflow: setup lab-up
	$(ENV) python tests/bench/workflow/bench_workflow.py --records 5000 --json .lab/reports/bench-workflow.json
