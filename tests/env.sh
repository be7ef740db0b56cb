# shellcheck shell=bash
# Sourced by the Makefile's recipes: the venv, the collection path and the lab's addresses.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$root/.build/collections"
export PYTHONPATH="$root/.build/collections${PYTHONPATH:+:$PYTHONPATH}"
export ANSIBLE_CONFIG="$root/ansible.cfg"
if [ -f "$root/.lab/env" ]; then
  set -a; . "$root/.lab/env"; set +a
fi
