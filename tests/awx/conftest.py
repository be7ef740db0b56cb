"""AWX's execution path, reproduced: a private data dir per job, `ansible-runner run`, and the artifacts AWX reads.

An AWX job (Automation Controller alike) is a private data dir that AWX fills and hands to ansible-runner:

    project/            the synced SCM project (playbooks, ansible.cfg, collections/requirements.yml)
    inventory/          the job's inventory (here the project's inventories/lab, as an SCM inventory source)
    env/extravars       extra variables and survey answers
    env/envvars         environment of the job (the installed collections' path)
    env/cmdline         extra ansible-playbook options (--check for a job template of type "check")
    env/settings        job_timeout, as the job template's timeout
    artifacts/<ident>/  what the job leaves: status, rc, stdout, job_events/*.json (what the UI shows)

The project update installs the project's collections/requirements.yml into a folder of its own, which is the
only collections path of the job: the collection runs as built and installed, not from the work tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests.labenv import lab_env

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / ".build" / "awx"
RUNNER = Path(sys.executable).with_name("ansible-runner")
GALAXY = Path(sys.executable).with_name("ansible-galaxy")
# Settings of the work tree that would let a job find the collection there instead of the installed copy.
# A task's result per host, as the job output's ok/changed/failed/skipping/unreachable lines.
RESULT_EVENTS = ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable")
WORK_TREE_ENV = ("ANSIBLE_CONFIG", "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS", "PYTHONPATH", "ANSIBLE_HOME")


@pytest.fixture(scope="session")
def lab():
    env = lab_env()
    if not env.get("KAFKA_BOOTSTRAP_SERVERS") or not env.get("DOCKER_A_HOST"):
        pytest.skip("the lab is not up (no KAFKA_BOOTSTRAP_SERVERS / DOCKER_A_HOST in .lab/env): run tests/lab/up")
    return env


@pytest.fixture
def unique():
    """A random name prefix, so reruns and parallel runs never collide."""
    return "awx-%s" % uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def installed_collections():
    """The project update: build the collection and install it from the tarball, as Galaxy would serve it."""
    shutil.rmtree(BUILD, ignore_errors=True)
    (BUILD / "dist").mkdir(parents=True)
    # From a copy of the tracked tree: files edited meanwhile in the shared work tree would not match the manifest.
    source = BUILD / "src" / "ansible_collections" / "streamops" / "day2"
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                           cwd=ROOT, check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run([str(GALAXY), "collection", "build", "--force", "--output-path", str(BUILD / "dist"), str(source)],
                   check=True, capture_output=True, text=True)
    tarball = next((BUILD / "dist").glob("streamops-day2-*.tar.gz"))
    requirements = BUILD / "requirements.yml"
    requirements.write_text(yaml.safe_dump({"collections": [{"name": str(tarball), "type": "file"}]}))
    target = BUILD / "requirements_collections"
    subprocess.run([str(GALAXY), "collection", "install", "-r", str(requirements), "-p", str(target), "--force"],
                   check=True, capture_output=True, text=True, env=_job_env({}))
    assert (target / "ansible_collections" / "streamops" / "day2" / "MANIFEST.json").exists()
    return dict(path=target, requirements=requirements.read_text(), roles=str(target / "ansible_collections" / "streamops" / "day2" / "roles"))


def _job_env(envvars):
    env = {k: v for k, v in os.environ.items() if k not in WORK_TREE_ENV}
    env.update(envvars)
    return env


class Job:
    """One finished AWX job: what AWX stores and shows, read from ansible-runner's artifacts."""

    def __init__(self, pdd, ident, output):
        self.artifacts = pdd / "artifacts" / ident
        self.output = output
        # What the job's page shows: the output and the events (the env and command files hold the job's inputs).
        self.shown = (self.artifacts / "stdout").read_text() if (self.artifacts / "stdout").exists() else ""
        self.shown += "".join(p.read_text() for p in (self.artifacts / "job_events").glob("*.json"))
        self.status = (self.artifacts / "status").read_text().strip() if (self.artifacts / "status").exists() else None
        self.rc = int((self.artifacts / "rc").read_text()) if (self.artifacts / "rc").exists() else None
        files = sorted((self.artifacts / "job_events").glob("*.json"), key=lambda p: int(p.name.split("-", 1)[0]))
        self.events = [json.loads(p.read_text()) for p in files]

    def __repr__(self):
        failed = ["%s: %s" % (e["event_data"].get("task"), e["event_data"].get("res", {}).get("msg"))
                  for e in self.events if e["event"] in ("runner_on_failed", "runner_on_unreachable")]
        return "job %s rc=%s, failed tasks: %s\n%s" % (self.status, self.rc, failed or "none", self.output[-3000:])

    def results(self, task):
        """Per-host task results as the job's output lists them: (event, changed, res) of the task's runner_on_* events."""
        return [(e["event"], e["event_data"].get("res", {}).get("changed", False), e["event_data"].get("res", {}))
                for e in self.events
                if e["event"] in RESULT_EVENTS and e["event_data"].get("task") == task]

    def task_paths(self):
        """Where each task of the job was read from (a role's tasks: the installed collection's copy)."""
        return [e["event_data"].get("task_path", "") for e in self.events if e["event"] == "playbook_on_task_start"]

    def task_names(self):
        return [e["event_data"]["task"] for e in self.events if e["event"] == "playbook_on_task_start"]

    @property
    def stats(self):
        """The play recap (AWX's host summaries) and the set_stats artifacts (passed on in a workflow)."""
        return next(e["event_data"] for e in self.events if e["event"] == "playbook_on_stats")


@pytest.fixture
def awx_job(installed_collections, tmp_path):
    """Run a project playbook as an AWX job template would, return the Job."""

    def run(ident, playbook, extravars, check=False, timeout=300, credential_env=None):
        """credential_env: what a credential's injector puts in the job's environment (secrets included)."""
        pdd = tmp_path / ident
        project = pdd / "project"
        shutil.copytree(ROOT / "playbooks", project / "playbooks")
        shutil.copytree(ROOT / "inventories", project / "inventories")
        shutil.copy2(ROOT / "ansible.cfg", project / "ansible.cfg")
        (project / "collections").mkdir()
        (project / "collections" / "requirements.yml").write_text(installed_collections["requirements"])
        shutil.copytree(ROOT / "inventories" / "lab", pdd / "inventory")
        envvars = {"ANSIBLE_COLLECTIONS_PATH": str(installed_collections["path"]), "ANSIBLE_NOCOLOR": "1",
                   "ANSIBLE_HOME": str(pdd / ".ansible"), **(credential_env or {})}
        env_dir = pdd / "env"
        env_dir.mkdir()
        (env_dir / "extravars").write_text(yaml.safe_dump(extravars))
        (env_dir / "envvars").write_text(yaml.safe_dump(envvars))
        (env_dir / "settings").write_text(yaml.safe_dump({"job_timeout": timeout}))
        if check:
            (env_dir / "cmdline").write_text("--check --diff")
        proc = subprocess.run([str(RUNNER), "run", str(pdd), "-p", playbook, "--ident", ident],
                              capture_output=True, text=True, timeout=timeout + 60, env=_job_env(envvars), check=False)
        return Job(pdd, ident, proc.stdout + proc.stderr)

    return run
