"""Integration tests run the collection's modules against the real services of the lab (tests/lab/up).

Modules are executed the way Ansible executes them on a host: the module file run by Python with a
JSON file of arguments, its JSON result read back. A service that is not up makes its tests skip
with the reason; CI prints the skip count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / ".build" / "collections"


def lab_env():
    """The lab's addresses: .lab/env (written by tests/lab/up), overridden by the process environment."""
    env = {}
    for name in ("env", "kafka.env", "docker.env"):
        path = ROOT / ".lab" / name
        if path.exists():
            for line in path.read_text().splitlines():
                if "=" in line and not line.lstrip().startswith("#"):
                    key, value = line.split("=", 1)
                    env.setdefault(key.strip(), value.strip())
    env.update({k: v for k, v in os.environ.items() if k.startswith(("KAFKA_", "DOCKER_", "CRIU_", "LAB_"))})
    return env


@pytest.fixture(scope="session")
def lab():
    return lab_env()


@pytest.fixture(scope="session")
def kafka(lab):
    """The lab's Kafka cluster; its tests skip, loudly, when it is not up."""
    if not lab.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("the lab's Kafka is not up (no KAFKA_BOOTSTRAP_SERVERS in .lab/env): run tests/lab/up kafka")
    return dict(bootstrap_servers=lab["KAFKA_BOOTSTRAP_SERVERS"].split(","))


@pytest.fixture
def unique():
    """A random name prefix, so reruns and parallel runs never collide."""
    return "it-%s" % uuid.uuid4().hex[:8]


def run_module(name, args, check=False, diff=False, tmp_path_factory=None):
    """Run streamops.day2.<name> as Ansible would and return its result dict (with 'rc')."""
    module = COLLECTIONS / "ansible_collections" / "streamops" / "day2" / "plugins" / "modules" / ("%s.py" % name)
    payload = dict(args, _ansible_check_mode=check, _ansible_diff=diff, _ansible_tmpdir=None)
    env = dict(os.environ, PYTHONPATH=str(COLLECTIONS))
    proc = subprocess.run([sys.executable, str(module)], input=json.dumps({"ANSIBLE_MODULE_ARGS": payload}),
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("module %s printed no JSON result (rc %d):\n%s\n%s" % (name, proc.returncode, proc.stdout, proc.stderr))
    result["rc"] = proc.returncode
    return result


@pytest.fixture
def module():
    return run_module
