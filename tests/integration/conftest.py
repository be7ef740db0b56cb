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
import time
import uuid
import warnings
from pathlib import Path

import pytest

from tests.labenv import lab_env

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / ".build" / "collections"


@pytest.fixture(scope="session")
def lab():
    return lab_env()


@pytest.fixture(scope="session")
def kafka(lab):
    """The lab's Kafka cluster; its tests skip, loudly, when it is not up."""
    if not lab.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("the lab's Kafka is not up (no KAFKA_BOOTSTRAP_SERVERS in .lab/env): run tests/lab/up kafka")
    return dict(bootstrap_servers=lab["KAFKA_BOOTSTRAP_SERVERS"].split(","))


class DockerLab:
    """The lab's two Docker engines (A, B) with CRIU, and an independent observer: the engines' own docker CLI."""

    # A stateful workload: a counter, and MB megabytes of memory it keeps checking (8 MB per tick against
    # digests it holds, a full sweep every MB/8 ticks) while it rewrites one megabyte per tick.
    WORKLOAD = (
        "import hashlib, random, sys, time\n"
        "mb = int(sys.argv[1]); rng = random.Random(7)\n"
        "chunks = [bytearray(rng.randbytes(1 << 20)) for k in range(mb)]\n"
        "sums = [hashlib.sha256(c).digest() for c in chunks]\n"
        "i = sweeps = 0\n"
        "while True:\n"
        "    bad = [k for k in range(i * 8, i * 8 + 8) if hashlib.sha256(chunks[k % mb]).digest() != sums[k % mb]]\n"
        "    sweeps += (i * 8 + 8) // mb - (i * 8) // mb\n"
        "    chunks[i % mb][0:8] = i.to_bytes(8, 'little'); sums[i % mb] = hashlib.sha256(chunks[i % mb]).digest()\n"
        "    print(i, 'CORRUPT' if bad else 'ok', sweeps, flush=True)\n"
        "    i += 1; time.sleep(0.1)\n"
    )
    COUNTER = "i=0; while true; do echo $i; i=$((i+1)); sleep 0.1; done"

    def __init__(self, env):
        self.env = env
        self.a, self.b = env["DOCKER_A_HOST"], env.get("DOCKER_B_HOST")
        self.data_root = dict(a=env.get("DOCKER_A_DATA_ROOT"), b=env.get("DOCKER_B_DATA_ROOT"))
        self.criu = env.get("CRIU_BIN")
        self.tiny, self.python = env.get("LAB_IMAGE_TINY"), env.get("LAB_IMAGE_PYTHON")
        self.cli_path = env.get("DOCKER_CLI", "docker")

    def host(self, engine):
        return dict(a=self.a, b=self.b).get(engine, engine)

    def cli(self, engine, *args, check=True):
        """Run the docker CLI against engine 'a' or 'b'; returns stdout."""
        proc = subprocess.run([self.cli_path, "-H", self.host(engine), *args], capture_output=True, text=True, timeout=300, check=False)
        if check and proc.returncode != 0:
            raise AssertionError("docker %s failed: %s" % (" ".join(args), proc.stderr.strip()))
        return proc.stdout

    def run_counter(self, engine, name):
        self.cli(engine, "run", "-d", "--name", name, self.tiny, "sh", "-c", self.COUNTER)

    def run_workload(self, engine, name, mb, *options):
        self.cli(engine, "run", "-d", "--name", name, *options, self.python, "python3", "-u", "-c", self.WORKLOAD, str(mb))

    def lines(self, engine, name):
        return [line.split() for line in self.cli(engine, "logs", name).splitlines() if line.strip()]

    def wait_lines(self, engine, name, count, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.lines(engine, name)
            if len(got) >= count:
                return got
            time.sleep(0.2)
        raise AssertionError("%s on %s printed fewer than %d lines in %ss" % (name, engine, count, timeout))

    def remove(self, *names):
        for engine in ("a", "b"):
            for name in names:
                self.cli(engine, "rm", "-f", name, check=False)


@pytest.fixture(scope="session")
def docker(lab):
    """The lab's Docker engines with CRIU; their tests skip, loudly, when the lab has none."""
    if not lab.get("DOCKER_A_HOST"):
        pytest.skip("the lab's Docker engines are not up (no DOCKER_A_HOST in .lab/env): run tests/lab/up docker")
    return DockerLab(lab)


@pytest.fixture
def unique():
    """A random name prefix, so reruns and parallel runs never collide."""
    return "it-%s" % uuid.uuid4().hex[:8]


@pytest.fixture
def names(docker, unique):
    """Container names for one test; every one of them is removed from both engines afterwards."""
    made = []

    def make(suffix="c"):
        made.append("%s-%s" % (unique, suffix))
        return made[-1]
    yield make
    docker.remove(*made)


def run_module(name, args, check=False, diff=False, env=None):
    """Run streamops.day2.<name> as Ansible would and return its result dict (with 'rc', and '_test_seconds' it took).

    env: variables to set (a value of None removes the variable) in the module's environment.
    """
    module = COLLECTIONS / "ansible_collections" / "streamops" / "day2" / "plugins" / "modules" / ("%s.py" % name)
    payload = dict(args, _ansible_check_mode=check, _ansible_diff=diff, _ansible_tmpdir=None)
    changes = env or {}
    env = {k: v for k, v in os.environ.items() if changes.get(k, "") is not None}
    env.update({k: v for k, v in changes.items() if v is not None}, PYTHONPATH=str(COLLECTIONS))
    env.setdefault("PYTHONFAULTHANDLER", "1")  # a module killed by a signal leaves the Python stack of every thread on stderr
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(module)], input=json.dumps({"ANSIBLE_MODULE_ARGS": payload}),
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("module %s printed no JSON result (rc %d):\n%s\n%s" % (name, proc.returncode, proc.stdout, proc.stderr))
    rc = proc.returncode
    if rc < 0:
        # Ansible takes the printed result whatever the exit code, so the test goes on with it (and the exit code the
        # module would have had), as a playbook would; a client library crashing on the module's way out is still
        # reported, with the stacks faulthandler printed.
        warnings.warn("module %s printed its result, then died of signal %d:\n%s" % (name, -rc, proc.stderr[-4000:]))
        rc = 1 if result.get("failed") else 0
    result["rc"] = rc
    result["_test_seconds"] = round(time.monotonic() - started, 2)
    return result


def warnings_of(result):
    """The texts of a module result's warnings (ansible-core 2.19 wraps each in a WarningSummary dict)."""
    out = []
    for warning in result.get("warnings") or []:
        if isinstance(warning, dict):
            warning = (warning.get("event") or {}).get("msg") or warning.get("msg") or str(warning)
        out.append(warning)
    return out


# Kafka modules' tests run once per listener of the lab: PLAINTEXT, then SASL_SSL (SCRAM-SHA-512) and
# SSL with a client certificate, both as the operator User:streamops whose rights are ACLs (tests/lab/kafka.sh).
# A test file opts in with `pytestmark = pytest.mark.kafka_listeners`; a test that is about something a
# listener cannot change (a broker's crash, a role run by ansible-playbook) is marked `plaintext_only`.
LISTENERS = ("plaintext", "sasl_ssl", "mtls")


def pytest_configure(config):
    config.addinivalue_line("markers", "kafka_listeners: run the file's module calls over each of the lab's Kafka listeners")
    config.addinivalue_line("markers", "plaintext_only: in a kafka_listeners file, run over PLAINTEXT only")


def pytest_generate_tests(metafunc):
    if metafunc.definition.get_closest_marker("kafka_listeners"):
        if "listener" not in metafunc.fixturenames:
            metafunc.fixturenames.append("listener")   # the module fixture asks for it by name
        only = metafunc.definition.get_closest_marker("plaintext_only")
        metafunc.parametrize("listener", LISTENERS[:1] if only else LISTENERS, indirect=True, scope="session")


def kafka_connection(lab, listener):
    """The Kafka options a module needs to reach the lab over one of its listeners (what an inventory would hold)."""
    if listener == "plaintext":
        return dict(bootstrap_servers=lab["KAFKA_BOOTSTRAP_SERVERS"].split(","))
    if not lab.get("KAFKA_SASL_SSL_BOOTSTRAP_SERVERS"):
        pytest.skip("the lab's Kafka has no secured listeners (no KAFKA_SASL_SSL_BOOTSTRAP_SERVERS in .lab/env): run tests/lab/up kafka")
    if listener == "sasl_ssl":
        return dict(bootstrap_servers=lab["KAFKA_SASL_SSL_BOOTSTRAP_SERVERS"].split(","), security_protocol="SASL_SSL",
                    sasl_mechanism="SCRAM-SHA-512", sasl_username=lab["KAFKA_LAB_SCRAM_USERNAME"],
                    sasl_password=lab["KAFKA_LAB_SCRAM_PASSWORD"], ssl_cafile=lab["KAFKA_LAB_CA_FILE"])
    return dict(bootstrap_servers=lab["KAFKA_MTLS_BOOTSTRAP_SERVERS"].split(","), security_protocol="SSL",
                ssl_cafile=lab["KAFKA_LAB_CA_FILE"], ssl_certfile=lab["KAFKA_LAB_CLIENT_CERT"], ssl_keyfile=lab["KAFKA_LAB_CLIENT_KEY"])


@pytest.fixture(scope="session")
def listener(request, kafka, lab):
    """The connection options of this run's listener (see LISTENERS)."""
    return kafka_connection(lab, request.param)


@pytest.fixture
def module(request):
    """run_module; in a kafka_listeners test, Kafka modules given the PLAINTEXT brokers reach them over the test's listener
    instead, and no result may carry the SASL password."""
    if "listener" not in request.fixturenames:
        return run_module
    connection = request.getfixturevalue("listener")
    plaintext = request.getfixturevalue("kafka")["bootstrap_servers"]

    def over_listener(name, args, **kwargs):
        if name.startswith("kafka_") and not name.startswith("kafka_connect") and args.get("bootstrap_servers") == plaintext:
            args = dict(args, **connection)
        result = run_module(name, args, **kwargs)
        if connection.get("sasl_password"):
            assert connection["sasl_password"] not in json.dumps(result), "the SASL password is in the result of %s" % name
        return result
    return over_listener
