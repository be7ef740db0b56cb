# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The package from its sources (no install needed), and the lab's Kafka for the end-to-end tests."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

from kafkalab import Instance, Lab, bootstrap_servers  # noqa: E402  (after sys.path, like the helper's subprocesses)


@pytest.fixture(scope="session")
def lab():
    servers = bootstrap_servers()
    if not servers:
        pytest.skip("the lab's Kafka is not up (no KAFKA_BOOTSTRAP_SERVERS, nor in .lab/env): run tests/lab/up kafka")
    return Lab(servers)


@pytest.fixture
def names(lab):
    """Fresh input and output topics (4 partitions, RF 3) and a group name; all deleted afterwards."""
    tag = uuid.uuid4().hex[:8]
    made = dict(input="sc-in-%s" % tag, output="sc-out-%s" % tag, group="sc-group-%s" % tag)
    lab.create_topics(made["input"], made["output"])
    yield made
    lab.cleanup([made["input"], made["output"]], [made["group"]])


@pytest.fixture
def spawn(lab, names, tmp_path):
    """spawn(instance_name, **env) starts the helper on the test's topics and group; all are killed afterwards."""
    started = []

    def start(name, **env):
        full = dict(KAFKA_BOOTSTRAP_SERVERS=lab.servers, STREAMOPS_GROUP=names["group"], STREAMOPS_INPUT_TOPIC=names["input"],
                    STREAMOPS_OUTPUT_TOPIC=names["output"])
        full.update({key: str(value) for key, value in env.items()})
        started.append(Instance(name, full, tmp_path))
        return started[-1]
    yield start
    for instance in started:
        instance.close()
