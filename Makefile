# Every target sets up what it needs on a fresh machine (see tests/setup.sh, tests/lab/up).
SHELL := /bin/bash
ENV := source tests/env.sh &&

.PHONY: demo test setup lab-up lab-down sanity lint unit integration molecule bench

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

sanity lint unit integration molecule: setup
	$(ENV) python tests/run_gates.py $@

bench: setup lab-up
	$(ENV) python -m tests.bench
