"""docker_container_migrate between the lab's two real Docker engines (B in its own network namespace).

The proof: a stateful workload (a counter, and 192 MB of memory it keeps checking) continues on
engine B exactly where it stopped on A. Also: check mode and diff, idempotence, the image carried
over by save/load, the Engine API path, files of the writable layer, a failed restore brought
back on A with its state, pre-dump refused with the kernel's reason, and clear refusals.
Observed with the engines' own docker CLI.
"""

import json
import os

import pytest


@pytest.fixture
def migrate(docker, module):
    """docker_container_migrate from engine A to engine B."""
    def call(check=False, diff=False, source="a", target="b", **args):
        args.setdefault("target", dict(docker_host=docker.host(target)))
        return module("docker_container_migrate", dict(docker_host=docker.host(source), **args), check=check, diff=diff)
    return call


def running(docker, engine, name):
    out = docker.cli(engine, "ps", "-a", "--filter", "name=^/%s$" % name, "--format", "{{.State}}").strip()
    return out or "absent"


def numbers_of(lines):
    return [int(line[0]) for line in lines]


def no_gaps(numbers):
    return [(a, b) for a, b in zip(numbers, numbers[1:]) if b != a + 1]


def test_check_mode_and_diff_predict_without_moving(docker, migrate, names):
    name = names()
    docker.run_counter("a", name)
    result = migrate(container=name, check=True, diff=True)
    assert result["changed"] and result["rc"] == 0, result
    assert result["diff"] == {"before": {"container": name, "engine": docker.a}, "after": {"container": name, "engine": docker.b}}
    assert result["actions"][0].startswith("create container %s on %s" % (name, docker.b))
    assert any(a.startswith("checkpoint %s on %s by runc" % (name, docker.a)) for a in result["actions"])
    assert running(docker, "a", name) == "running" and running(docker, "b", name) == "absent"


def test_stateful_workload_continues_on_b_with_its_memory(docker, migrate, names):
    name = names("state")
    docker.run_workload("a", name, 192)
    docker.wait_lines("a", name, 10)
    result = migrate(container=name, verify_seconds=1)
    assert result["changed"] and result["rc"] == 0, result
    assert running(docker, "a", name) == "absent" and running(docker, "b", name) == "running"

    last_on_a = result["source"]
    assert last_on_a == {"exists": False, "running": False}
    lines = docker.wait_lines("b", name, 40)
    numbers = numbers_of(lines)
    assert numbers[0] > 10 and not no_gaps(numbers), numbers[:5]
    assert all(line[1] == "ok" for line in lines), [line for line in lines if line[1] != "ok"][:3]
    assert int(lines[-1][2]) - int(lines[0][2]) >= 1      # a full sweep over the 192 MB on B

    timings, sizes = result["timings"], result["bytes"]
    assert result["method"] == "runc" and 0 < timings["freeze_seconds"] <= timings["checkpoint_seconds"] < timings["downtime_seconds"]
    assert timings["downtime_seconds"] < timings["total_seconds"]
    assert sizes["pages"] > 192 * 2 ** 20 and sizes["transferred"] >= sizes["checkpoint"] and sizes["image"] == 0
    assert sizes["copied_into_engine"] < 2 ** 20            # page files linked, not copied
    assert result["restore"]["mode"] == "link"

    again = migrate(container=name)
    assert not again["changed"] and again["msg"] == "Container %s already runs on the target engine %s." % (name, docker.b)


def test_engine_api_path_carries_a_missing_image_over(docker, migrate, names, unique):
    name = names("img")
    image = "%s/counter:1" % unique
    docker.cli("a", "run", "--name", name + "-build", docker.tiny, "sh", "-c", "echo %s > /marker" % unique)
    docker.cli("a", "commit", name + "-build", image)
    docker.cli("a", "rm", name + "-build")
    try:
        docker.cli("a", "run", "-d", "--name", name, image, "sh", "-c", docker.COUNTER)
        docker.wait_lines("a", name, 5)
        result = migrate(container=name, method="engine", verify_seconds=0.5, diff=True)
        assert result["changed"] and result["rc"] == 0, result
        assert result["method"] == "engine" and result["timings"]["freeze_seconds"] is None
        assert result["bytes"]["image"] > 0 and any(a.startswith("transfer image %s" % image) for a in result["actions"])
        assert docker.cli("b", "image", "inspect", "-f", "{{.Id}}", image).strip() == docker.cli("a", "image", "inspect", "-f", "{{.Id}}", image).strip()
        assert docker.cli("b", "exec", name, "cat", "/marker").strip() == unique
        numbers = numbers_of(docker.wait_lines("b", name, 10))
        assert numbers[0] > 3 and not no_gaps(numbers)
    finally:
        docker.remove(name)
        for engine in ("a", "b"):
            docker.cli(engine, "rmi", "-f", image, check=False)


OPEN_FILE_COUNTER = "exec 3>>/tmp/counter.log; i=0; while true; do echo $i; echo $i >&3; i=$((i+1)); sleep 0.1; done"


def test_files_of_the_writable_layer_come_along(docker, migrate, names):
    name = names("rootfs")
    docker.cli("a", "run", "-d", "--name", name, docker.tiny, "sh", "-c", OPEN_FILE_COUNTER)
    docker.wait_lines("a", name, 5)
    result = migrate(container=name, verify_seconds=0.5)
    assert result["changed"] and result["rc"] == 0, result
    assert "/tmp" in result["rootfs_changes"]["copied"]
    numbers = numbers_of(docker.wait_lines("b", name, 10))
    logged = [int(n) for n in docker.cli("b", "exec", name, "cat", "/tmp/counter.log").split()]
    assert logged[0] == 0 and not no_gaps(logged) and logged[-1] >= numbers[0]   # one file, written on A then on B


def test_failed_restore_brings_the_container_back_on_a_with_its_state(docker, migrate, names):
    """Without its writable layer the restore on B cannot reopen /tmp/counter.log: the container comes back on A."""
    name = names("rollback")
    docker.cli("a", "run", "-d", "--name", name, docker.tiny, "sh", "-c", OPEN_FILE_COUNTER)
    docker.wait_lines("a", name, 5)
    result = migrate(container=name, rootfs_changes=False, verify_seconds=0.5)
    assert result["failed"] and result["rolled_back"], result
    assert result["msg"].startswith("Migration of %s from %s to %s failed: " % (name, docker.a, docker.b))
    assert "it was restored on the source %s from the same checkpoint, its state kept" % docker.a in result["msg"]
    assert running(docker, "b", name) == "absent" and running(docker, "a", name) == "running"
    numbers = numbers_of(docker.wait_lines("a", name, len(docker.lines("a", name)) + 5))
    assert numbers[0] == 0 and not no_gaps(numbers)             # one log on A, no restart in it
    assert docker.cli("a", "inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", name).strip() == "no"


def test_pre_dump_is_refused_with_the_kernels_reason(docker, migrate, names):
    name = names("pre")
    docker.run_counter("a", name)
    docker.wait_lines("a", name, 3)
    result = migrate(container=name, pre_dump=True, verify_seconds=0.5)
    assert result["rc"] == 0 and result["changed"], result
    if result["pre_dump"]["used"]:
        pytest.skip("this kernel tracks dirty pages; the refusal path cannot be seen here")
    assert result["pre_dump"]["reason"].startswith("pre-dump skipped: this kernel has no soft-dirty page tracking")
    assert "pre-dump skipped: this kernel has no soft-dirty page tracking" in json.dumps(result.get("warnings"))
    assert running(docker, "b", name) == "running"


def test_refusals_are_clear(docker, migrate, names, tmp_path):
    name = names("refuse")
    missing = migrate(container=name)
    assert missing["failed"] and missing["msg"] == "No container named %s on the source engine at %s (nor running on the target %s)." % (
        name, docker.a, docker.b)

    docker.run_counter("a", name)
    docker.cli("b", "create", "--name", name, docker.tiny, "sleep", "60")
    occupied = migrate(container=name)
    assert occupied["failed"] and "already exists on the target engine %s (created)" % docker.b in occupied["msg"]
    docker.cli("b", "start", name)
    both = migrate(container=name)
    assert both["failed"] and both["msg"].startswith("Container %s runs on both engines" % name)

    same = migrate(container=name, target="a")
    assert same["failed"] and same["msg"] == "The source and the target are the same engine (%s)." % docker.a

    unreachable = migrate(container=name, target="unix://%s" % (tmp_path / "none.sock"))
    assert unreachable["failed"] and unreachable["msg"].startswith("Cannot reach the Docker engine (target) at unix://")
    source_down = migrate(container=name, source="unix://%s" % (tmp_path / "none.sock"))
    assert source_down["failed"] and "use streamops.day2.docker_checkpoint with state=restored" in source_down["msg"]
    assert "Traceback" not in json.dumps([missing, occupied, both, same, unreachable, source_down])


def test_hostile_container_names_are_refused_before_anything_happens(migrate, tmp_path):
    for bad in ("../x", "a/b", "x\x00y", "..", "a" * 129, "naïve"):
        result = migrate(container=bad, transfer_dir=str(tmp_path))
        assert result.get("failed") and result["msg"].startswith("Container name ") and "starting with a letter or digit" in result["msg"], (
            bad, result)
    assert os.listdir(tmp_path) == []


def test_a_missing_transfer_dir_or_runc_is_one_sentence_in_check_mode_too(docker, migrate, names, tmp_path):
    """A missing transfer_dir gave "Unexpected error: [Errno 2] ..." and check mode predicted success."""
    name = names("paths")
    docker.run_counter("a", name)
    missing = tmp_path / "missing"
    for check in (True, False):
        result = migrate(container=name, transfer_dir=str(missing), check=check)
        assert result.get("failed") and result["msg"] == (
            "transfer_dir %s does not exist: create it (shared storage that both engines' hosts see at this path), or leave it unset "
            "for the system's temporary directory." % missing), result
        runc = migrate(container=name, method="runc", runc_path="/nonexistent/runc", check=check)
        assert runc.get("failed") and runc["msg"].startswith("runc was not found at /nonexistent/runc (runc_path)"), runc
    afile = tmp_path / "afile"
    afile.write_text("")
    assert "is not a directory" in migrate(container=name, transfer_dir=str(afile))["msg"]
    assert running(docker, "a", name) == "running" and running(docker, "b", name) == "absent"
    assert not missing.exists()
