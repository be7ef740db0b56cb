# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The direct path: ``runc checkpoint`` of a container an engine runs, on the engine's own host.

``POST /containers/{id}/checkpoints`` makes CRIU dump into containerd's temporary directory, then
containerd tars the images into its content store and dockerd unpacks them again: for 256 MB of
memory that copying is ~5 s of the ~5.5 s the call takes, while CRIU's own dump (its statistics:
``frozen_time``) is ~0.4-0.8 s. Calling runc with the engine's runc state directory skips the
copying; CRIU writes the images straight where they are wanted, with its statistics next to them.
The engine still owns the container: with ``--leave-running`` it never notices, without it the
container exits as if killed and the engine records that.
"""

from __future__ import annotations

import json
import os
import time

from ansible_collections.streamops.day2.plugins.module_utils._criu import images as criu_images
from ansible_collections.streamops.day2.plugins.module_utils._criu.capability import last_error

DEFAULT_RUNC_ROOTS = ("/run/docker/runtime-runc/moby",)


class RuncProblem(Exception):
    """The direct path is not possible or failed: one sentence for the user."""


def shim_address(pid, proc="/proc"):
    """containerd's socket from the command line of the shim that is the parent of a container's init."""
    try:
        with open(os.path.join(proc, str(pid), "status")) as handle:
            ppid = next(int(line.split()[1]) for line in handle if line.startswith("PPid:"))
        with open(os.path.join(proc, str(ppid), "cmdline"), "rb") as handle:
            argv = handle.read().decode("utf-8", "replace").split("\0")
    except (OSError, StopIteration, ValueError, IndexError):
        return None, None
    address = namespace = None
    for index, arg in enumerate(argv[:-1]):
        if arg in ("-address", "--address"):
            address = argv[index + 1]
        if arg in ("-namespace", "--namespace"):
            namespace = argv[index + 1]
    return address, namespace


def candidate_roots(pid, proc="/proc"):
    """runc state directories that may hold the container: next to the engine's containerd first."""
    roots = []
    address, namespace = shim_address(pid, proc)
    if address:
        exec_root = os.path.dirname(os.path.dirname(address))   # <exec-root>/containerd/containerd.sock
        roots.append(os.path.join(exec_root, "runtime-runc", namespace or "moby"))
    roots.extend(root for root in DEFAULT_RUNC_ROOTS if root not in roots)
    return roots


def find_runc_root(container_id, pid, explicit=None, proc="/proc"):
    """The runc state directory of the container, proven by its state.json naming the same init pid.

    Raises RuncProblem when there is none on this host (the engine runs elsewhere, or another runtime).
    """
    roots = [explicit] if explicit else candidate_roots(pid, proc)
    for root in roots:
        state = os.path.join(root, container_id, "state.json")
        try:
            with open(state) as handle:
                init_pid = json.load(handle).get("init_process_pid")
        except (OSError, ValueError):
            continue
        if init_pid == pid:
            return root
    raise RuncProblem("The runc state of container %s is not on this host (looked in %s): the direct runc path needs the module "
                      "to run on the engine's host; use method=engine otherwise." % (container_id[:12], ", ".join(roots) or "nowhere"))


def checkpoint_argv(runc, root, container_id, image_dir, work_dir, leave_running, systemd_cgroup=False, pre_dump=False,
                    parent_path=None):
    argv = [runc, "--root", root]
    if systemd_cgroup:
        argv.append("--systemd-cgroup")
    argv += ["checkpoint", "--image-path", image_dir, "--work-path", work_dir]
    if leave_running or pre_dump:
        argv.append("--leave-running")
    if pre_dump:
        argv.append("--pre-dump")
    if parent_path:
        argv += ["--parent-path", parent_path]
    argv.append(container_id)
    return argv


def checkpoint(run, runc, root, container_id, image_dir, work_dir, criu_path, leave_running, systemd_cgroup=False,
               pre_dump=False, parent_path=None):
    """runc checkpoint with the given CRIU first on PATH; returns (seconds, CRIU dump statistics)."""
    os.makedirs(image_dir, exist_ok=True)
    os.makedirs(work_dir, exist_ok=True)
    argv = checkpoint_argv(runc, root, container_id, image_dir, work_dir, leave_running, systemd_cgroup, pre_dump, parent_path)
    env = {"PATH": "%s:%s" % (os.path.dirname(criu_path), os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"))}
    started = time.monotonic()
    rc, out, err = run(argv, env)
    seconds = time.monotonic() - started
    if rc != 0:
        log = os.path.join(work_dir, "pre-dump.log" if pre_dump else "dump.log")
        detail = last_error(_tail(log)) if os.path.exists(log) else last_error(err or out)
        raise RuncProblem("runc checkpoint%s of %s failed: %s" % (" --pre-dump" if pre_dump else "", container_id[:12], detail))
    stats = criu_images.read_stats(os.path.join(work_dir, "stats-dump")).get("dump", {})
    return seconds, stats


def _tail(path, size=16384):
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - size))
        return handle.read().decode("utf-8", "replace")
