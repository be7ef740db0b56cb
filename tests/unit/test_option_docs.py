"""What ansible-doc shows for the shared connection options matches what the modules do (issue 9): bootstrap_servers is
not required (KAFKA_BOOTSTRAP_SERVERS works), docker_host shows no default (DOCKER_HOST is honoured before the socket)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from ansible_collections.streamops.day2.plugins.module_utils._docker import DOCKER_CONNECTION_SPEC
from ansible_collections.streamops.day2.plugins.module_utils._kafka import KAFKA_CONNECTION_SPEC

ROOT = Path(__file__).resolve().parents[2]


def ansible_doc(*modules):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build" / "collections"), ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    out = subprocess.run([str(Path(sys.executable).parent / "ansible-doc"), "-j", *["streamops.day2.%s" % m for m in modules]],
                         capture_output=True, text=True, env=env, check=True, timeout=120).stdout
    return {name.split(".")[-1]: doc["doc"]["options"] for name, doc in json.loads(out).items()}


def test_ansible_doc_shows_the_connection_options_as_they_behave():
    docs = ansible_doc("kafka_topic", "kafka_lag_info", "docker_checkpoint", "docker_container_migrate")
    for name in ("kafka_topic", "kafka_lag_info"):
        assert not docs[name]["bootstrap_servers"].get("required"), name
    for name in ("docker_checkpoint", "docker_container_migrate"):
        assert docs[name]["docker_host"].get("default") is None, name
        assert "DOCKER_HOST" in " ".join(docs[name]["docker_host"]["description"])
    assert not KAFKA_CONNECTION_SPEC["bootstrap_servers"].get("required")
    assert "default" not in DOCKER_CONNECTION_SPEC["docker_host"]


def planner_claims(text):
    """The planner's speed as a text states it: (10k-partition time, 100k-partition time, memory)."""
    import re
    flat = " ".join(text.split())
    match = re.search(r"10,000-partition cluster plans in about ([\d.]+) seconds and a 100,000-partition, 200-broker cluster in about "
                      r"(\d+) seconds of CPU on the classic models and ([\d-]+) on the hard \(badly skewed\) ones, in ([\d-]+) MB", flat)
    assert match, "no statement of the planner's speed found"
    return match.groups()


def test_the_docs_state_one_planner_speed_the_one_measured():
    module = planner_claims((ROOT / "plugins" / "modules" / "kafka_rebalance_plan.py").read_text())
    guide = planner_claims((ROOT / "docs" / "rebalance.md").read_text())
    assert module == guide == ("1.5", "9", "17-32", "250-340")
    bench = " ".join((ROOT / "tests" / "bench" / "README.md").read_text().split())
    # the measurements those round figures come from (the benchmark table of 2026-12-03: medium and hard50 in
    # 1.0-1.6 s, large in 8.7 s and 250 MB, the hard 200-broker models in 16.6-31.7 s and 296-333 MB)
    assert "| medium: 51 brokers, 10000 partitions, 30000 replicas | streamops | 0.97 (0.97) | 36 |" in bench
    assert "| hard50-rf3r3-s1: 50 brokers, 10000 partitions, 30000 replicas | streamops | 1.43 (1.43) | 39 |" in bench
    assert "| large: 200 brokers, 100000 partitions, 300000 replicas | streamops | 8.66 (8.64) | 250 |" in bench
    assert "| hard200-rf3r5-s2: 200 brokers, 100000 partitions, 300000 replicas | streamops | 16.61 (16.60) | 296 |" in bench
    assert "| hard200-rf3r5-s3: 200 brokers, 100000 partitions, 300000 replicas | streamops | 31.69 (31.68) | 333 |" in bench
