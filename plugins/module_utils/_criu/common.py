# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What docker_checkpoint and docker_container_migrate share: CRIU lookup, the choice of the dump
method, the dump itself (through the engine or runc), and the manifest of a checkpoint."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import tempfile
import time

from ansible_collections.streamops.day2.plugins.module_utils._docker import DockerError
from ansible_collections.streamops.day2.plugins.module_utils._criu import capability
from ansible_collections.streamops.day2.plugins.module_utils._criu import container as ctr
from ansible_collections.streamops.day2.plugins.module_utils._criu import runc as criu_runc
from ansible_collections.streamops.day2.plugins.module_utils._criu.store import utc_now


def runner(module):
    """run(argv, env=None) -> (rc, stdout, stderr) on the module's host.

    A program that cannot be started is rc 127 with the reason in stderr (not Ansible's exit with "Error executing
    command."), so the caller still cleans up and says which program."""
    def run(argv, env=None):
        try:
            return module.run_command(argv, environ_update=env or {}, handle_exceptions=False)
        except OSError as e:
            return 127, "", "cannot run %s: %s" % (argv[0], e.strerror or e)
    return run


def criu_binary(module):
    path = module.params.get("criu_path")
    if path:
        return path
    return module.get_bin_path("criu", opt_dirs=["/usr/local/sbin", "/usr/sbin", "/sbin"])


def probe_criu(module, features=()):
    """CriuInfo of the CRIU this host uses; DockerError with a clear sentence when missing/too old/failing."""
    try:
        info = capability.probe(runner(module), criu_binary(module))
    except capability.CriuProblem as e:
        raise DockerError(str(e))
    capability.probe_features(runner(module), info, features)
    return info


def choose_method(module, engine, inspect, method):
    """'runc' or 'engine' for a dump of this container (auto: runc when its runc state and runc are on this host)."""
    if method == "engine":
        return "engine", None
    pid = (inspect.get("State") or {}).get("Pid")
    try:
        if not engine.is_local or not pid:
            raise criu_runc.RuncProblem("The engine at %s is not on this host (or the container has no process), so the direct runc "
                                        "path is not possible; use method=engine." % engine.host)
        root = criu_runc.find_runc_root(inspect["Id"], pid, module.params.get("runc_root"))
    except criu_runc.RuncProblem as e:
        if method == "runc":
            raise DockerError(str(e))
        return "engine", None
    try:
        runc_binary(module)
    except DockerError as e:
        if method == "runc":
            raise
        module.warn("method=auto takes the Engine API: %s" % e)
        return "engine", None
    return "runc", root


def runc_binary(module):
    """The runc binary of runc_path, checked: a missing or unusable one is named (before anything is done)."""
    path = module.params.get("runc_path") or "runc"
    if os.path.isabs(path) or os.sep in path:
        if not os.path.isfile(path):
            raise DockerError("runc was not found at %s (runc_path): the direct runc path (method=runc) needs the engine's runc "
                              "binary; give its path, or use method=engine." % path)
        if not os.access(path, os.X_OK):
            raise DockerError("runc at %s (runc_path) is not executable." % path)
        return path
    found = module.get_bin_path(path, opt_dirs=["/usr/local/sbin", "/usr/sbin", "/sbin"])
    if not found:
        raise DockerError("runc (%s, runc_path) was not found on this host's PATH: the direct runc path (method=runc) needs the "
                          "engine's runc binary; give its path, or use method=engine." % path)
    return found


def dump(module, engine, inspect, checkpoint, images_dir, leave_running, method, runc_root, criu_info, engine_dir=None):
    """Checkpoint the container into images_dir; returns a dict of timings and CRIU statistics.

    method 'engine': POST /containers/{id}/checkpoints with CheckpointDir=engine_dir (the engine writes
    engine_dir/checkpoint, which must be images_dir). method 'runc': runc checkpoint straight into images_dir.
    """
    if method == "engine":
        started = time.monotonic()
        engine.create_checkpoint(inspect["Id"], checkpoint, directory=engine_dir, leave_running=leave_running)
        seconds = time.monotonic() - started
        return dict(method="engine", checkpoint_seconds=round(seconds, 3), freeze_seconds=None, criu_stats={})
    work = tempfile.mkdtemp(prefix="streamops-criu-work-")
    try:
        systemd = (engine.info().get("CgroupDriver") == "systemd")
        seconds, stats = criu_runc.checkpoint(runner(module), runc_binary(module), runc_root, inspect["Id"], images_dir, work,
                                              criu_info.path, leave_running, systemd_cgroup=systemd)
    except criu_runc.RuncProblem as e:
        raise DockerError(str(e))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    frozen = stats.get("frozen_time")
    return dict(method="runc", checkpoint_seconds=round(seconds, 3), freeze_seconds=round(frozen, 3) if frozen is not None else None,
                criu_stats=stats)


def manifest_for(engine, inspect, checkpoint, leave_running, dumped, criu_info, image_archive=None):
    """The manifest of a stored version (the store adds format, files, sizes and checksums)."""
    now = utc_now()
    image = engine.image(inspect.get("Image")) or {}
    return dict(
        container=dict(name=ctr.container_name(inspect), id=inspect.get("Id"), image=(inspect.get("Config") or {}).get("Image"),
                       image_id=inspect.get("Image"), image_layers=ctr.image_identity(image).get("layers", []),
                       create=ctr.create_body(inspect), local_volumes=ctr.local_volumes(inspect), binds=ctr.bind_sources(inspect)),
        checkpoint=dict(version=checkpoint, created=now.isoformat(), created_ts=now.timestamp(), leave_running=leave_running,
                        method=dumped.get("method"), checkpoint_seconds=dumped.get("checkpoint_seconds"),
                        freeze_seconds=dumped.get("freeze_seconds"), criu_stats=dumped.get("criu_stats") or {}),
        engine=_engine_summary(engine),
        criu=dict(version=criu_info.version, path=criu_info.path) if criu_info else None,
        host=dict(hostname=socket.gethostname(), kernel=platform.release()),
        image_archive=image_archive,
    )


def _engine_summary(engine):
    try:
        return engine.summary()
    except DockerError:
        return dict(docker_host=engine.host)
