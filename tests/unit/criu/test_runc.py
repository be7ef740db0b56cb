"""The direct runc path: argument lists and finding the engine's runc state from the container's shim."""

import json

import pytest

from ansible_collections.streamops.day2.plugins.module_utils._criu import runc


def test_checkpoint_argv():
    assert runc.checkpoint_argv("runc", "/run/docker/runtime-runc/moby", "abc", "/img", "/work", leave_running=False) == [
        "runc", "--root", "/run/docker/runtime-runc/moby", "checkpoint", "--image-path", "/img", "--work-path", "/work", "abc"]
    argv = runc.checkpoint_argv("runc", "/r", "abc", "/img", "/w", leave_running=False, systemd_cgroup=True, pre_dump=True)
    assert argv[:4] == ["runc", "--root", "/r", "--systemd-cgroup"] and "--pre-dump" in argv and "--leave-running" in argv
    argv = runc.checkpoint_argv("runc", "/r", "abc", "/img", "/w", leave_running=True, parent_path="../pre")
    assert argv[-4:] == ["--leave-running", "--parent-path", "../pre", "abc"]


@pytest.fixture
def proc(tmp_path):
    """A fake /proc: container init 4242 whose parent 4200 is a containerd shim of engine A."""
    root = tmp_path / "proc"
    (root / "4242").mkdir(parents=True)
    (root / "4200").mkdir()
    (root / "4242" / "status").write_text("Name:\tpython3\nPPid:\t4200\n")
    shim = ["/usr/bin/containerd-shim-runc-v2", "-namespace", "moby", "-id", "abc", "-address",
            str(tmp_path / "exec-a" / "containerd" / "containerd.sock")]
    (root / "4200" / "cmdline").write_bytes(("\0".join(shim) + "\0").encode())
    state = tmp_path / "exec-a" / "runtime-runc" / "moby" / "abc"
    state.mkdir(parents=True)
    (state / "state.json").write_text(json.dumps({"init_process_pid": 4242}))
    return root


def test_runc_root_is_found_next_to_the_engines_containerd(proc, tmp_path):
    assert runc.shim_address(4242, str(proc)) == (str(tmp_path / "exec-a" / "containerd" / "containerd.sock"), "moby")
    assert runc.find_runc_root("abc", 4242, proc=str(proc)) == str(tmp_path / "exec-a" / "runtime-runc" / "moby")


def test_runc_root_must_name_the_same_init(proc, tmp_path):
    with pytest.raises(runc.RuncProblem, match="is not on this host"):
        runc.find_runc_root("abc", 9999, proc=str(proc))
    with pytest.raises(runc.RuncProblem, match="use method=engine"):
        runc.find_runc_root("other", 4242, proc=str(proc))
    assert runc.shim_address(1, str(proc)) == (None, None)
