"""docker_checkpoint against the lab's two real Docker engines with CRIU 4.x.

Versions in the engine and in a store (directory, archive, dedup), keep/prune, interval, check mode,
diff, idempotence, in-place restore, verification of stored versions, clear errors, and a failover:
engine A stopped outright, the newest valid version restored on engine B with its state.
Observed with the engines' own docker CLI and the store's files, never with the module itself.
"""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAB_DOCKER = ROOT / "tests" / "lab" / "docker.sh"


@pytest.fixture
def checkpoint(docker, module):
    """docker_checkpoint on engine 'a' (or engine='b')."""
    def call(engine="a", check=False, diff=False, **args):
        return module("docker_checkpoint", dict(docker_host=docker.host(engine), **args), check=check, diff=diff)
    return call


def cli_checkpoints(docker, engine, name):
    return sorted(docker.cli(engine, "checkpoint", "ls", name).split()[2:])


def assert_counts_on(numbers, first=None):
    """A counter's output has no gap and no restart (starting at `first` when given)."""
    assert numbers, "no output"
    if first is not None:
        assert numbers[0] == first, "continued from %d, expected %d" % (numbers[0], first)
    gaps = [(a, b) for a, b in zip(numbers, numbers[1:]) if b != a + 1]
    assert not gaps, "counter broke at %s" % gaps[:3]


def test_check_mode_predicts_without_checkpointing(docker, checkpoint, names):
    name = names()
    docker.run_counter("a", name)
    result = checkpoint(container=name, check=True, diff=True)
    assert result["changed"] and result["rc"] == 0, result
    assert result["actions"][0].startswith("checkpoint container %s as ckpt-" % name)
    assert result["diff"]["before"] == {"versions": []} and len(result["diff"]["after"]["versions"]) == 1
    assert cli_checkpoints(docker, "a", name) == []


def test_versions_in_the_engine_keep_prune_info_absent(docker, checkpoint, names):
    name = names()
    docker.run_counter("a", name)
    created = []
    for method in ("engine", "runc", "auto"):
        result = checkpoint(container=name, keep=2, method=method, diff=True)
        assert result["changed"] and result["rc"] == 0, result
        created.append(result["checkpoint"]["name"])
        assert result["checkpoint"]["method"] == ("runc" if method == "auto" else method)
    assert result["removed"] == [created[0]]
    assert result["diff"]["before"]["versions"] == [created[1], created[0]]
    assert result["diff"]["after"]["versions"] == [created[2], created[1]]
    assert cli_checkpoints(docker, "a", name) == sorted(created[1:])
    assert result["timings"]["freeze_seconds"] > 0 and result["criu_stats"]["pages_written"] > 0
    assert docker.cli("a", "inspect", "-f", "{{.State.Running}}", name).strip() == "true"

    info = checkpoint(container=name, state="query")
    assert not info["changed"] and [v["name"] for v in info["versions"]] == [created[2], created[1]]
    assert info["latest"]["name"] == created[2] and info["container"]["running"]
    assert info["capabilities"]["criu"]["usable"] and info["capabilities"]["criu"]["version"]

    one = checkpoint(container=name, state="absent", name=created[1])
    assert one["changed"] and one["removed"] == [created[1]]
    assert cli_checkpoints(docker, "a", name) == [created[2]]
    assert not checkpoint(container=name, state="absent", name=created[1])["changed"]
    rest = checkpoint(container=name, state="absent", check=True)
    assert rest["changed"] and cli_checkpoints(docker, "a", name) == [created[2]]
    assert checkpoint(container=name, state="absent")["removed"] == [created[2]]
    assert cli_checkpoints(docker, "a", name) == []


def test_named_checkpoint_stops_then_restores_in_place(docker, checkpoint, names):
    """Stopped by runc, a container with restart policy 'always' stays stopped, and keeps its policy."""
    name = names()
    docker.cli("a", "run", "-d", "--restart", "always", "--name", name, docker.tiny, "sh", "-c", docker.COUNTER)
    docker.wait_lines("a", name, 5)
    first = checkpoint(container=name, name="cp1", leave_running=False, method="runc")
    assert first["changed"] and first["checkpoint"]["name"] == "cp1", first
    assert first["container"]["running"] is False
    time.sleep(1.5)
    assert docker.cli("a", "inspect", "-f", "{{.State.Running}} {{.HostConfig.RestartPolicy.Name}}", name).strip() == "false always"
    assert not checkpoint(container=name, name="cp1", leave_running=False)["changed"]

    stopped_at = int(docker.lines("a", name)[-1][0])
    restored = checkpoint(container=name, state="restored", name="cp1", diff=True)
    assert restored["changed"] and restored["container"]["running"], restored
    assert restored["diff"] == {"before": {"container": name, "running": False}, "after": {"container": name, "running": True}}
    numbers = [int(line[0]) for line in docker.wait_lines("a", name, stopped_at + 10)]
    assert_counts_on(numbers, first=0)   # one log across checkpoint and restore: no restart, no gap
    assert not checkpoint(container=name, state="restored", name="cp1")["changed"]


def test_interval_skips_a_new_version_while_the_newest_is_young(docker, checkpoint, names):
    name = names()
    docker.run_counter("a", name)
    assert checkpoint(container=name, interval=3600)["changed"]
    again = checkpoint(container=name, interval=3600)
    assert not again["changed"] and "younger than interval" in again["skipped_reason"]
    assert len(cli_checkpoints(docker, "a", name)) == 1


@pytest.mark.parametrize("fmt", ["directory", "archive", "dedup"])
def test_store_versions_have_manifests_and_are_verified(docker, checkpoint, names, tmp_path, fmt):
    name = names()
    store = tmp_path / "store"
    docker.run_counter("a", name)
    made = [checkpoint(container=name, store_path=str(store), store_format=fmt, keep=2) for unused in range(3)]
    assert all(r["changed"] and r["rc"] == 0 for r in made), made
    assert made[-1]["removed"] == [made[0]["checkpoint"]["name"]]
    on_disk = sorted(p.name for p in (store / name).iterdir() if not p.name.startswith("."))
    assert on_disk == sorted(r["checkpoint"]["name"] for r in made[1:])

    newest = store / name / made[-1]["checkpoint"]["name"]
    manifest = json.loads((newest / "manifest.json").read_text())
    inspect = json.loads(docker.cli("a", "inspect", name))[0]
    assert manifest["format"] == fmt and manifest["container"]["id"] == inspect["Id"]
    assert manifest["container"]["image_id"] == inspect["Image"] and manifest["container"]["create"]["Cmd"] == inspect["Config"]["Cmd"]
    assert manifest["criu"]["version"] == docker.env.get("CRIU_VERSION", manifest["criu"]["version"])
    assert manifest["host"]["kernel"] == os.uname().release and manifest["checkpoint"]["created"]
    assert manifest["checksum"].startswith("sha256:") and manifest["size"] == sum(f["size"] for f in manifest["files"])
    assert any(f["name"].startswith("pages-") for f in manifest["files"])
    assert (store / manifest["image_archive"]).stat().st_size > 0

    info = checkpoint(container=name, store_path=str(store), state="query")
    assert [v["valid"] for v in info["versions"]] == [True, True], info["versions"]

    # Damage the newest version: info says so, and restoring "latest" falls back to the older one.
    if fmt == "directory":
        page = next((newest / "images").glob("pages-*.img"))
        with open(page, "r+b") as handle:
            handle.seek(100)
            handle.write(b"\xff" * 8 if handle.read(8) != b"\xff" * 8 else b"\x00" * 8)
    elif fmt == "archive":
        archive = newest / "images.tar"
        archive.write_bytes(archive.read_bytes()[:-20000])
    else:
        (store / ".pages" / (manifest["pack"] + ".pack")).unlink()   # the pages only the newest version has
    info = checkpoint(container=name, store_path=str(store), state="query")
    assert [v["valid"] for v in info["versions"]] == [False, True] and info["versions"][0]["problems"]

    docker.cli("a", "rm", "-f", name)
    restored = checkpoint(container=name, store_path=str(store), state="restored", engine="b")
    assert restored["changed"] and restored["rc"] == 0, restored
    assert restored["checkpoint"]["name"] == made[1]["checkpoint"]["name"]
    assert [s["name"] for s in restored["skipped_versions"]] == [made[2]["checkpoint"]["name"]]
    assert docker.cli("b", "inspect", "-f", "{{.State.Running}}", name).strip() == "true"
    numbers = [int(line[0]) for line in docker.wait_lines("b", name, 5)]
    assert numbers[0] > 0
    assert_counts_on(numbers)
    assert not checkpoint(container=name, store_path=str(store), state="restored", engine="b")["changed"]


def test_dedup_keeps_only_packs_a_version_uses(docker, checkpoint, names, tmp_path):
    name = names()
    store = tmp_path / "store"
    docker.run_counter("a", name)
    docker.wait_lines("a", name, 5)
    made = [checkpoint(container=name, store_path=str(store), store_format="dedup", keep=2) for unused in range(3)]
    assert all(r["rc"] == 0 for r in made), made
    sizes = [(r["checkpoint"]["stored_bytes"], r["checkpoint"]["size"]) for r in made]
    assert all(stored < size / 2 for stored, size in sizes[1:]), sizes       # later versions store only pages that changed
    referenced = set()
    for manifest in (store / name).glob("*/manifest.json"):
        for item in json.loads(manifest.read_text())["files"]:
            referenced.update(extent[0] for extent in item["extents"])
    assert {p.name.split(".")[0] for p in (store / ".pages").iterdir()} == referenced
    assert checkpoint(container=name, store_path=str(store), state="absent")["changed"]
    assert not list((store / ".pages").iterdir())


def test_an_image_missing_on_the_target_comes_from_the_store(docker, checkpoint, names, tmp_path, unique):
    name = names()
    image = "%s/busybox:1" % unique
    store = tmp_path / "store"
    docker.cli("a", "run", "--name", name + "-build", docker.tiny, "sh", "-c", "echo %s > /marker" % unique)
    docker.cli("a", "commit", name + "-build", image)
    docker.cli("a", "rm", name + "-build")
    try:
        docker.cli("a", "run", "-d", "--name", name, image, "sh", "-c", docker.COUNTER)
        assert checkpoint(container=name, store_path=str(store))["changed"]
        docker.cli("a", "rm", "-f", name)
        restored = checkpoint(container=name, store_path=str(store), state="restored", engine="b")
        assert restored["changed"] and restored["restore"]["image_bytes"] > 0, restored
        assert any("load image" in a for a in restored["actions"])
        assert docker.cli("b", "exec", name, "cat", "/marker").strip() == unique
    finally:
        docker.remove(name)
        for engine in ("a", "b"):
            docker.cli(engine, "rmi", "-f", image, check=False)


def test_clear_errors(docker, checkpoint, names, tmp_path):
    name = names()
    missing = checkpoint(container=name)
    assert missing["failed"] and missing["msg"] == "No container named %s on the Docker engine at %s." % (name, docker.a)

    docker.cli("a", "create", "--name", name, docker.tiny, "sleep", "60")
    stopped = checkpoint(container=name)
    assert stopped["failed"] and "is not running (created)" in stopped["msg"]
    docker.cli("a", "start", name)

    nowhere = checkpoint(container=name, criu_path=str(tmp_path / "no-criu"))
    assert nowhere["failed"] and nowhere["msg"].startswith("CRIU was not found at %s" % (tmp_path / "no-criu"))

    old = tmp_path / "old-criu"
    old.write_text("#!/bin/sh\necho 'Version: 3.10'\n")
    old.chmod(0o755)
    too_old = checkpoint(container=name, criu_path=str(old))
    assert too_old["failed"] and too_old["msg"] == "CRIU 3.10.0 at %s is too old: checkpoints need CRIU 3.11.0 or newer." % old

    broken = tmp_path / "broken-criu"
    broken.write_text("#!/bin/sh\n[ \"$1\" = check ] && { echo 'Error (criu/vdso.c:123): vdso: Unexpected rt vDSO area bounds' >&2; exit 1; }\n"
                      "echo 'Version: 3.17'\n")
    broken.chmod(0o755)
    failing = checkpoint(container=name, criu_path=str(broken))
    assert failing["failed"] and "fails `criu check` on this kernel (vdso: Unexpected rt vDSO area bounds)" in failing["msg"]

    empty = checkpoint(container=name, store_path=str(tmp_path), state="restored", engine="b")
    assert empty["failed"] and empty["msg"] == "The store %s holds no valid version of container %s." % (tmp_path, name)

    gone = checkpoint(container=name, state="query", engine="unix://%s" % (tmp_path / "none.sock"))
    assert gone["failed"] and gone["msg"].startswith("Cannot reach the Docker engine (docker_host) at unix://")
    assert "Traceback" not in json.dumps([missing, stopped, nowhere, too_old, failing, empty, gone])


def test_failover_engine_a_stopped_newest_valid_version_restored_on_b(docker, checkpoint, names, tmp_path):
    """The stateful workload keeps its counter and its memory across a failover; engine A is killed outright."""
    name = names("ha")
    store = tmp_path / "store"
    docker.run_workload("a", name, 192)
    docker.wait_lines("a", name, 10)
    versions = []
    for unused in range(3):
        before = int(docker.lines("a", name)[-1][0])
        result = checkpoint(container=name, store_path=str(store), store_format="dedup", keep=3)
        assert result["changed"] and result["rc"] == 0, result
        after = int(docker.lines("a", name)[-1][0])
        versions.append((result["checkpoint"]["name"], before, after))
    # The newest version gets damaged: the failover must take the one before it.
    newest = json.loads((store / name / versions[-1][0] / "manifest.json").read_text())
    (store / ".pages" / (newest["pack"] + ".pack")).unlink()
    subprocess.run([str(LAB_DOCKER), "stop-engine", "a", "--kill"], check=True, timeout=120)
    try:
        info = checkpoint(container=name, store_path=str(store), state="query")
        assert info["rc"] == 0 and info["engine"]["reachable"] is False, info
        restored = checkpoint(container=name, store_path=str(store), state="restored", engine="b", verify_seconds=2)
        assert restored["changed"] and restored["rc"] == 0, restored
        assert restored["checkpoint"]["name"] == versions[1][0]
        lines = docker.wait_lines("b", name, 40)
        numbers = [int(line[0]) for line in lines]
        assert versions[1][1] < numbers[0] <= versions[1][2] + 1, (versions[1], numbers[:3])
        assert_counts_on(numbers)
        assert all(line[1] == "ok" for line in lines), [line for line in lines if line[1] != "ok"][:3]
        assert int(lines[-1][2]) - int(lines[0][2]) >= 1   # at least one full sweep of the 192 MB since the restore
        assert not checkpoint(container=name, store_path=str(store), state="restored", engine="b")["changed"]
    finally:
        subprocess.run([str(LAB_DOCKER), "start-engine", "a"], check=True, timeout=300)


def _container_files(docker, engine, name):
    """Every path under the container's folder in the engine's data root (where a traversal would write)."""
    cid = docker.cli(engine, "inspect", "-f", "{{.Id}}", name).strip()
    base = Path(docker.data_root[engine]) / "containers" / cid
    return sorted(str(p.relative_to(base)) for p in base.rglob("*"))


HOSTILE = ["../x", "bad/x", "..", ".", "/abs", "x\ny", "x\x00y", "a" * 129, "café", "-dash", ".hidden", "x y", "ckpt\\1"]


@pytest.mark.parametrize("where", ["engine", "store"])
def test_hostile_names_are_refused_before_any_side_effect(docker, checkpoint, names, tmp_path, where):
    """A name that is not one safe path component is refused with the rule, before the container is frozen or anything is
    written: no CRIU files beside config.v2.json, no entry in `docker checkpoint ls`, no store created."""
    name = names()
    docker.run_counter("a", name)
    docker.wait_lines("a", name, 3)
    files = _container_files(docker, "a", name)
    store = tmp_path / "store"
    extra = dict(store_path=str(store)) if where == "store" else {}
    results = []
    for bad in HOSTILE:
        for method in ("runc", "engine"):
            result = checkpoint(container=name, name=bad, method=method, **extra)
            results.append(result)
            assert result.get("failed") and result["rc"] != 0, (bad, method, result)
            assert "letters, digits" in result["msg"] and "starting with a letter or digit" in result["msg"], result["msg"]
        predicted = checkpoint(container=name, name=bad, check=True, **extra)
        assert predicted.get("failed"), (bad, predicted)
    for bad in ("../x", "bad/", "a" * 120):
        result = checkpoint(container=name, prefix=bad, **extra)
        assert result.get("failed") and "prefix" in result["msg"], (bad, result)
    for state in ("present", "restored", "absent", "query"):
        result = checkpoint(container="../" + name, state=state, **extra)
        assert result.get("failed") and "Container name" in result["msg"], (state, result)
    assert _container_files(docker, "a", name) == files
    assert cli_checkpoints(docker, "a", name) == []
    assert not store.exists() and sorted(os.listdir(tmp_path)) == []
    assert docker.cli("a", "inspect", "-f", "{{.State.Running}}", name).strip() == "true"
    assert "Traceback" not in json.dumps(results)


@pytest.fixture
def small_fs(tmp_path):
    """make(bytes): a tmpfs of that size (a store that runs out of space half way through a version)."""
    mounts = []

    def make(size):
        path = tmp_path / ("fs%d" % len(mounts))
        path.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0700" % size, "tmpfs", str(path)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            pytest.skip("cannot mount a tmpfs here (%s)" % proc.stderr.strip())
        mounts.append(path)
        return path
    yield make
    for path in mounts:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _blocks(path):
    """Bytes a file or a tree takes on disk."""
    path = Path(path)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_blocks * 512 for p in files)


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*"))


@pytest.mark.parametrize("fmt", ["archive", "dedup"])
def test_a_failure_after_the_dump_leaves_nothing_of_the_run_in_the_store(docker, checkpoint, names, tmp_path, small_fs, fmt):
    """The store fills up after CRIU's dump (while the version is archived or packed): the run fails in one sentence, and
    what it wrote (the dump, the image archive, the container's folder, the store itself) is gone; the container runs on."""
    name = names()
    docker.run_counter("a", name)
    docker.wait_lines("a", name, 3)
    scratch = tmp_path / "scratch"
    sized = checkpoint(container=name, store_path=str(scratch), method="runc")
    assert sized["changed"] and sized["rc"] == 0, sized
    dump = _blocks(scratch / name / sized["checkpoint"]["name"] / "images")
    image = _blocks(scratch / ".images")
    assert dump > 64 * 1024 and image > 0, (dump, image)

    # 1. a new store: nothing at all may be left
    fresh = small_fs(image + dump + dump // 2)
    failed = checkpoint(container=name, store_path=str(fresh / "store"), store_format=fmt, method="runc")
    assert failed.get("failed") and "nothing of this run was kept in the store" in failed["msg"], failed
    assert "Traceback" not in failed["msg"] and "Unexpected" not in failed["msg"] and "\n" not in failed["msg"]
    assert _tree(fresh) == []

    # 2. a store holding a version already: it stays as it was, valid
    used = small_fs(image + 2 * dump + dump // 2)
    store = used / "store"
    kept = checkpoint(container=name, store_path=str(store), store_format="directory", method="runc")
    assert kept["changed"] and kept["rc"] == 0, kept
    before = _tree(store)
    failed = checkpoint(container=name, store_path=str(store), store_format=fmt, method="runc")
    assert failed.get("failed") and "nothing of this run was kept in the store" in failed["msg"], failed
    assert _tree(store) == before
    info = checkpoint(container=name, store_path=str(store), state="query")
    assert [(v["name"], v["valid"]) for v in info["versions"]] == [(kept["checkpoint"]["name"], True)], info["versions"]

    assert docker.cli("a", "inspect", "-f", "{{.State.Running}}", name).strip() == "true"
    seen = len(docker.lines("a", name))
    docker.wait_lines("a", name, seen + 3)


def test_check_mode_with_a_store_predicts_the_store_and_the_image_and_writes_nothing(docker, checkpoint, names, tmp_path):
    name = names()
    docker.run_counter("a", name)
    store = tmp_path / "store"
    missing = checkpoint(container=name + "-nosuch", store_path=str(store))
    assert missing.get("failed") and not store.exists(), missing     # no store made for a container that is not there
    predicted = checkpoint(container=name, store_path=str(store), check=True)
    assert predicted["changed"] and predicted["rc"] == 0, predicted
    assert predicted["actions"][0] == "create the checkpoint store %s" % store
    assert predicted["actions"][1].startswith("save image %s (sha256:" % docker.tiny) and predicted["actions"][1].endswith(") into the store")
    assert predicted["actions"][2].startswith("checkpoint container %s as ckpt-" % name)
    assert not store.exists()
    real = checkpoint(container=name, store_path=str(store))
    assert real["changed"] and real["actions"][:2] == predicted["actions"][:2], (real["actions"], predicted["actions"])
    again = checkpoint(container=name, store_path=str(store), check=True)
    assert [a for a in again["actions"] if "save image" in a or "create the checkpoint store" in a] == [], again["actions"]


def test_a_missing_runc_is_named_and_nothing_is_created(docker, checkpoint, names, tmp_path):
    """method=runc with runc_path=/nonexistent/runc said "Error executing command." and left an empty checkpoint."""
    name = names()
    docker.run_counter("a", name)
    docker.wait_lines("a", name, 3)
    files = _container_files(docker, "a", name)
    store = tmp_path / "store"
    for extra in ({}, dict(store_path=str(store))):
        for check in (True, False):
            result = checkpoint(container=name, method="runc", runc_path="/nonexistent/runc", check=check, **extra)
            assert result.get("failed") and result["msg"].startswith("runc was not found at /nonexistent/runc (runc_path)"), result
    not_on_path = checkpoint(container=name, method="runc", runc_path="no-such-runc")
    assert not_on_path.get("failed") and "runc (no-such-runc, runc_path) was not found on this host's PATH" in not_on_path["msg"]
    assert _container_files(docker, "a", name) == files and cli_checkpoints(docker, "a", name) == [] and not store.exists()
    assert docker.cli("a", "inspect", "-f", "{{.State.Running}}", name).strip() == "true"
    auto = checkpoint(container=name, runc_path="/nonexistent/runc")        # method=auto: through the engine instead, said
    assert auto["changed"] and auto["rc"] == 0 and auto["checkpoint"]["method"] == "engine", auto
    assert "method=auto takes the Engine API: runc was not found at /nonexistent/runc" in json.dumps(auto.get("warnings"))


def test_docker_host_comes_from_the_environment_then_the_default_socket(docker, module, names, tmp_path):
    name = names()
    docker.run_counter("a", name)
    from_env = module("docker_checkpoint", dict(container=name, state="query"), env={"DOCKER_HOST": docker.a})
    assert from_env["rc"] == 0 and from_env["container"]["running"] and from_env["engine"]["docker_host"] == docker.a, from_env
    if not os.path.exists("/var/run/docker.sock"):
        default = module("docker_checkpoint", dict(container=name, state="query"), env={"DOCKER_HOST": None})
        assert default.get("failed") and "unix:///var/run/docker.sock" in default["msg"], default


def test_restored_lists_the_versions_and_an_unknown_name_fails_even_when_it_runs(docker, checkpoint, names, tmp_path):
    """state=restored returned versions: [] though the store held versions, and name=nosuch returned OK silently."""
    name = names()
    store = tmp_path / "store"
    docker.run_counter("a", name)
    taken = [checkpoint(container=name, store_path=str(store))["checkpoint"]["name"] for unused in range(2)]
    runs = checkpoint(container=name, store_path=str(store), state="restored")
    assert not runs["changed"] and runs["rc"] == 0 and [v["name"] for v in runs["versions"]] == taken[::-1], runs
    for check in (False, True):
        nosuch = checkpoint(container=name, store_path=str(store), state="restored", name="nosuch", check=check)
        assert nosuch.get("failed") and nosuch["msg"] == "The store %s holds no version nosuch of %s (it holds %s)." % (
            store, name, ", ".join(taken[::-1])), nosuch
    engine = checkpoint(container=name, name="cp1", leave_running=True)
    assert engine["changed"], engine
    in_engine = checkpoint(container=name, state="restored")
    assert not in_engine["changed"] and [v["name"] for v in in_engine["versions"]] == ["cp1"], in_engine
    nosuch = checkpoint(container=name, state="restored", name="nosuch")
    assert nosuch.get("failed") and nosuch["msg"] == "Container %s on %s has no checkpoint nosuch (it has cp1)." % (name, docker.a)
