"""Start-up (issue 11): a module imports only what its task needs. Each module is imported in a fresh interpreter, as
Ansible runs it, and the third-party packages it loaded are compared with what its work uses."""

import json
import os
import subprocess
import sys

import pytest

SHOW = """
import importlib, json, sys
importlib.import_module("ansible_collections.streamops.day2.plugins.modules." + sys.argv[1])
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""

HEAVY = {"kafka", "jmespath", "docker", "kubernetes", "requests", "urllib3", "yaml", "confluent_kafka"}


def loaded(module):
    proc = subprocess.run([sys.executable, "-c", SHOW, module], capture_output=True, text=True, check=True, env=dict(os.environ))
    return set(json.loads(proc.stdout)) & HEAVY


@pytest.mark.parametrize("module", ["kafka_topic", "kafka_lag_info"])
def test_kafka_modules_load_librdkafka_only(module):
    # kafka-python serves only the admin APIs librdkafka lacks; JMESPath only a query; no Docker or Kubernetes client.
    assert loaded(module) == {"confluent_kafka"}


def test_kafka_python_is_still_there_for_the_modules_that_need_it():
    from ansible_collections.streamops.day2.plugins.module_utils import _kafka

    assert _kafka.KAFKA_PYTHON_IMPORT_ERROR is None
    assert _kafka.kafka_python.KafkaAdminClient is not None
    assert "kafka" in loaded("kafka_reassignment")
