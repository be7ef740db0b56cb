"""The lab's addresses for the test suites: what tests/lab/up wrote in .lab/, overridden by the process environment."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lab_env():
    """The lab's addresses: .lab/env and the parts' env files (written by tests/lab/up), overridden by the process environment."""
    env = {}
    for name in ("env", "kafka.env", "docker.env", "k8s.env"):
        path = ROOT / ".lab" / name
        if path.exists():
            for line in path.read_text().splitlines():
                if "=" in line and not line.lstrip().startswith("#"):
                    key, value = line.split("=", 1)
                    env.setdefault(key.strip(), value.strip())
    env.update({k: v for k, v in os.environ.items() if k.startswith(("KAFKA_", "DOCKER_", "CRIU_", "LAB_", "K8S_", "KUBECONFIG"))})
    return env
