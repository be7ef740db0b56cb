#!/usr/bin/env bash
# Everything the tests and the demo need on a fresh Debian 12 machine, skipped when already done:
# a virtualenv with the pinned requirements, and the collection where Ansible looks for it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

python=${PYTHON:-python3}
stamp=.venv/.requirements.sha
want=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing the Python requirements into .venv"
  "$python" -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -U pip
  .venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
  echo "$want" > "$stamp"
fi

# Ansible finds the collection through this link (the repository root is the collection root).
mkdir -p .build/collections/ansible_collections/streamops
ln -sfn "$root" .build/collections/ansible_collections/streamops/day2
