"""The container roles' playbooks against the lab's two Docker engines, as a user runs them.

The failover after a migration (issue 9): checkpoint on A, migrate A to B, stop it on B, run the failover play. It
restored the pre-migration version on A (the counter back from 37 to 11) and the container then existed on both
engines. Now the container's home is where it last ran: stopped on its healthy engine B it is left alone; with B down,
the pre-migration version is refused with the reason unless container_failover_force. Every play prints its summary at
default verbosity. Observed with the engines' own docker CLI.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAB_DOCKER = ROOT / "tests" / "lab" / "docker.sh"


def play(name, extra, lab_env):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build" / "collections"),
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1", **{k: v for k, v in lab_env.items() if k.startswith(("DOCKER_", "CRIU_"))})
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), str(ROOT / "playbooks" / ("%s.yml" % name)), "-i", "localhost,",
            "-c", "local", "-e", json.dumps(dict(extra, ansible_python_interpreter=sys.executable))]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=900, check=False)
    # the YAML result format wraps long strings: one line, spaces collapsed, for the assertions
    return proc.returncode, " ".join((proc.stdout + proc.stderr).split())


def changed(output):
    return int(re.search(r"localhost\s+: ok=\d+\s+changed=(\d+)", output).group(1))


def counter(docker, engine, name):
    return [int(line[0]) for line in docker.lines(engine, name)]


def state(docker, engine, name):
    out = docker.cli(engine, "ps", "-a", "--filter", "name=^/%s$" % name, "--format", "{{.State}}").strip()
    return out or "absent"


@pytest.fixture
def moved(docker, module, names, tmp_path):
    """A counter checkpointed on A, then migrated to B (recording the move in the store or not), then stopped on B."""
    def make(record=True):
        name = names("moved")
        store = tmp_path / "store"
        docker.run_counter("a", name)
        docker.wait_lines("a", name, 10)
        before = counter(docker, "a", name)[-1]
        taken = module("docker_checkpoint", dict(docker_host=docker.a, container=name, store_path=str(store)))
        assert taken["changed"] and taken["rc"] == 0, taken
        at_checkpoint = counter(docker, "a", name)[-1]
        docker.wait_lines("a", name, at_checkpoint + 25)
        extra = dict(store_path=str(store)) if record else {}
        migrated = module("docker_container_migrate", dict(docker_host=docker.a, container=name, target=dict(docker_host=docker.b), **extra))
        assert migrated["changed"] and migrated["rc"] == 0, migrated
        if record:
            home = json.loads((store / name / ".home.json").read_text())
            assert (home["engine"], home["how"], home["from_engine"]) == (docker.b, "migration", docker.a), home
        first_on_b = counter(docker, "b", name)[0]
        assert first_on_b > at_checkpoint + 20      # the migration carried its state on
        docker.wait_lines("b", name, first_on_b + 5)
        docker.cli("b", "stop", "-t", "1", name)
        return name, store, (before, at_checkpoint), counter(docker, "b", name)[-1]
    return make


def failover_vars(docker, name, store, **more):
    return dict(container_failover_engines=[dict(name="a", docker_host=docker.a), dict(name="b", docker_host=docker.b)],
                container_failover_containers=[name], container_failover_store=str(store), container_failover_probe_timeout=5, **more)


@pytest.mark.parametrize("record", [True, False], ids=["move-recorded", "move-not-recorded"])
def test_failover_after_a_migration_leaves_the_container_stopped_on_its_healthy_home(docker, moved, lab, record):
    name, store, unused, last_on_b = moved(record)
    code, output = play("container_failover", failover_vars(docker, name, store), lab)
    assert code == 0, output
    assert state(docker, "a", name) == "absent", output          # no stale copy brought back on A
    assert "%s is stopped on engine b, where it last ran, and that engine answers" % name in output   # the summary, default verbosity
    assert state(docker, "b", name) == "exited" and counter(docker, "b", name)[-1] == last_on_b
    again, output = play("container_failover", failover_vars(docker, name, store), lab)
    assert again == 0 and changed(output) == 0, output


def test_a_version_older_than_the_move_is_refused_with_the_reason_unless_forced(docker, moved, module, lab):
    name, store, at_checkpoint, unused = moved(record=True)
    refused = module("docker_checkpoint", dict(docker_host=docker.a, container=name, store_path=str(store), state="restored"), check=True)
    assert refused.get("failed") and refused["msg"].startswith("Version ckpt-") and "before %s moved to %s (migration at " % (
        name, docker.b) in refused["msg"] and refused["msg"].endswith("or set force=true to restore %s anyway." % refused["msg"].split()[1]), refused
    subprocess.run([str(LAB_DOCKER), "stop-engine", "b", "--kill"], check=True, timeout=120)
    try:
        code, output = play("container_failover", failover_vars(docker, name, store), lab)
        assert code != 0, output
        assert "%s is not restored: its newest version ckpt-" % name in output and "which does not answer" in output, output
        assert "set container_failover_force=true" in output
        assert state(docker, "a", name) == "absent"
        code, output = play("container_failover", failover_vars(docker, name, store, container_failover_force=True), lab)
        assert code == 0, output
        assert "Restored %s on %s from version ckpt-" % (name, docker.a) in output, output      # the summary says what and where
        assert state(docker, "a", name) == "running"
        numbers = [int(line[0]) for line in docker.wait_lines("a", name, 3)]
        assert at_checkpoint[0] < numbers[0] <= at_checkpoint[1] + 1, (at_checkpoint, numbers[:3])   # the old version, as asked
    finally:
        subprocess.run([str(LAB_DOCKER), "start-engine", "b"], check=True, timeout=300)


def test_checkpoint_and_migrate_plays_print_their_summary(docker, names, lab, tmp_path):
    name = names("summary")
    store = tmp_path / "store"
    docker.run_counter("a", name)
    code, output = play("container_checkpoint", dict(container_checkpoint_store=str(store), container_checkpoint_containers=[{"name": name}],
                                                     container_checkpoint_connection=dict(docker_host=docker.a)), lab)
    assert code == 0, output
    assert re.search(r"Took version ckpt-\S+ of %s into the store %s \(frozen [0-9.]+s, [0-9.]+ MB\); 1 version kept" % (name, store), output), output
    code, output = play("container_migrate", dict(container_migrate_source=dict(docker_host=docker.a),
                                                  container_migrate_target=dict(docker_host=docker.b),
                                                  container_migrate_containers=[name], container_migrate_store=str(store)), lab)
    assert code == 0, output
    assert re.search(r"Moved %s from \S+ to \S+ by runc: frozen [0-9.]+s, down [0-9.]+s, [0-9.]+ MB moved" % name, output), output
    assert json.loads((store / name / ".home.json").read_text())["engine"] == docker.b
