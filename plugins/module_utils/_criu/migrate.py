# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The logic of docker_container_migrate: move a running container from engine A to engine B by
checkpoint, transfer and restore, with its state.

Order of the steps, chosen so the container is frozen as briefly as possible:

1. while it runs on A: the image onto B (save/load streamed when B lacks it), the same container
   created on B, an optional pre-dump (where the kernel tracks dirty pages);
2. frozen: the checkpoint on A (runc directly when A is on this host, else the Engine API) into the
   transfer directory, the files it changed in its writable layer copied to B, the checkpoint put
   where B restores from (page files linked), the restore on B;
3. running again on B: the check that it keeps running, then A's container removed.

A failed restore on B removes B's container and brings the container back on A: from the same
checkpoint when A's data root is on this host (its state kept), else by a plain start; the task
fails and says which.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

from ansible_collections.streamops.day2.plugins.module_utils._docker import DockerError, Engine, EngineUnreachable, connection_of
from ansible_collections.streamops.day2.plugins.module_utils._criu import capability
from ansible_collections.streamops.day2.plugins.module_utils._criu import common
from ansible_collections.streamops.day2.plugins.module_utils._criu import container as ctr
from ansible_collections.streamops.day2.plugins.module_utils._criu import images as criu_images
from ansible_collections.streamops.day2.plugins.module_utils._criu import names
from ansible_collections.streamops.day2.plugins.module_utils._criu import restore as criu_restore
from ansible_collections.streamops.day2.plugins.module_utils._criu import runc as criu_runc
from ansible_collections.streamops.day2.plugins.module_utils._criu.store import Store, StoreError, version_name

MAX_ROOTFS_ENTRIES = 2000
# Paths the engine mounts into every container itself: never copied from the writable layer.
ENGINE_MANAGED = ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/dev", "/proc", "/sys")


class Migration:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.source = module.engine
        self.source.label = "source"
        self.target = Engine(connection_of(self.p["target"]), label="target")
        self.actions = []
        self.result = dict(timings={}, bytes={})
        self.rollback = None

    def run(self):
        p = self.p
        name = p["container"]
        try:
            src = self.source.container(name)
        except EngineUnreachable as e:
            raise DockerError("%s A live migration needs the source engine; to bring the container back from a stored checkpoint "
                              "use streamops.day2.docker_checkpoint with state=restored (or the container_failover role)." % e)
        dst = self.target.container(name)
        if self.source.info().get("ID") and self.source.info().get("ID") == self.target.info().get("ID") and \
                self.source.data_root == self.target.data_root:
            raise DockerError("The source and the target are the same engine (%s)." % self.target.host)
        if dst is not None and dst["State"].get("Running"):
            if src is not None and src["State"].get("Running"):
                raise DockerError("Container %s runs on both engines (%s and %s); decide which one to keep and remove the other."
                                  % (name, self.source.host, self.target.host))
            return self.already_there(src, dst)
        if src is None:
            raise DockerError("No container named %s on the source engine at %s (nor running on the target %s)."
                              % (name, self.source.host, self.target.host))
        if not src["State"].get("Running") or src["State"].get("Paused"):
            self.source.require_container(name, running=True)
        if dst is not None and not p["force"]:
            raise DockerError("A container named %s already exists on the target engine %s (%s); remove it or set force=true."
                              % (name, self.target.host, dst["State"].get("Status")))
        return self.migrate(src, dst)

    def already_there(self, src, dst):
        self.result["msg"] = "Container %s already runs on the target engine %s." % (self.p["container"], self.target.host)
        changed = False
        if src is not None and self.p["remove_source"]:
            self.actions.append("remove the stopped container %s left on the source engine %s" % (self.p["container"], self.source.host))
            changed = True
            if not self.module.check_mode:
                self.source.remove_container(src["Id"])
        return self.finish(changed, src, dst, moved=False)

    # -- the migration ----------------------------------------------------------------------

    def plan(self, src):
        """Checks, method, and the actions a run would take (all of it before anything changes)."""
        p = self.p
        self.source.require_experimental()
        self.target.require_experimental()
        method, runc_root = common.choose_method(self.module, self.source, src, p["method"])
        criu_info = None
        if method == "runc" or self.source.is_local or self.target.is_local:
            criu_info = common.probe_criu(self.module, features=("mem_dirty_track",) if p["pre_dump"] else ())
        pre_dump = False
        if p["pre_dump"]:
            reason = capability.pre_dump_skip_reason(criu_info) if criu_info else "pre-dump skipped: CRIU on the engine's host unknown"
            if method != "runc":
                reason = "pre-dump skipped: it needs the direct runc path (the Engine API has no pre-dump)"
            if reason:
                self.module.warn(reason)
                self.result["pre_dump"] = dict(used=False, reason=reason)
            else:
                pre_dump = True
        for network in ctr.user_networks(ctr.create_body(src)):
            if not self.target_network_exists(network):
                raise DockerError("Network %s of container %s does not exist on the target engine %s; create it there first."
                                  % (network, self.p["container"], self.target.host))
        volumes = ctr.local_volumes(src)
        if volumes:
            self.module.warn("Container %s uses local volumes (%s): their data stays on the source host; the target gets volumes of "
                             "the same names, which must hold the same data for the restored processes." % (p["container"], ", ".join(volumes)))
        if (src.get("HostConfig") or {}).get("AutoRemove"):
            self.module.warn("Container %s was started with --rm: once checkpointed the source engine removes it, so a failed restore "
                             "cannot bring it back on the source." % p["container"])
        if p["store_path"] and os.path.exists(p["store_path"]) and not os.path.isdir(p["store_path"]):
            raise DockerError("The checkpoint store %s is not a directory." % p["store_path"])
        wanted = dict(id=src.get("Image"), layers=ctr.image_identity(self.source.image(src.get("Image"))).get("layers", []))
        ref = (src.get("Config") or {}).get("Image")
        unused, image_action, unused_bytes = criu_restore.ensure_image(self.target, wanted, ref, source=self.source if p["image_transfer"] else None,
                                                                       check_mode=True)
        return dict(method=method, runc_root=runc_root, criu=criu_info, pre_dump=pre_dump, wanted=wanted, ref=ref, image_action=image_action)

    def target_network_exists(self, network):
        try:
            self.target.call(self.target.client.inspect_network, network, what="inspect network %s" % network)
            return True
        except DockerError:
            return False

    def migrate(self, src, dst):
        p = self.p
        name = p["container"]
        plan = self.plan(src)
        if plan["image_action"]:
            self.actions.append(plan["image_action"])
        if dst is not None:
            self.actions.append("remove the stopped container %s from the target engine (force)" % name)
        self.actions.append("create container %s on %s with the configuration it has on %s" % (name, self.target.host, self.source.host))
        if plan["pre_dump"]:
            self.actions.append("pre-dump the memory of %s while it runs" % name)
        self.actions.append("checkpoint %s on %s by %s (it stops there)" % (name, self.source.host, plan["method"]))
        if p["rootfs_changes"]:
            self.actions.append("copy the files %s changed in its writable layer to the target" % name)
        self.actions.append("restore %s on %s and check it keeps running for %gs" % (name, self.target.host, p["verify_seconds"]))
        self.actions.append("remove %s from %s" % (name, self.source.host) if p["remove_source"] else "leave %s stopped on %s" % (name, self.source.host))
        if p["store_path"]:
            self.actions.append("record in the store %s that %s runs on %s" % (os.path.abspath(p["store_path"]), name, self.target.host))
        self.result["method"] = plan["method"]
        if self.module.check_mode:
            return self.finish(True, src, dst, moved=True)

        started = time.monotonic()
        transfer = tempfile.mkdtemp(prefix="streamops-migrate-%s-" % name, dir=p["transfer_dir"])
        checkpoint = version_name("migrate-")
        images_dir = os.path.join(transfer, checkpoint)
        target_id = None
        policy = (src.get("HostConfig") or {}).get("RestartPolicy") or {}
        policy_changed = False
        timings, sizes = self.result["timings"], self.result["bytes"]
        try:
            # 1. while it runs on A
            mark = time.monotonic()
            image_source = self.source if p["image_transfer"] else None
            ref, unused, sizes["image"] = criu_restore.ensure_image(self.target, plan["wanted"], plan["ref"], source=image_source)
            timings["image_seconds"] = _since(mark)
            mark = time.monotonic()
            if dst is not None:
                self.target.remove_container(dst["Id"])
            target_id = self.target.create_container(name, dict(ctr.create_body(src), Image=ref))
            data_root = criu_restore.require_data_root(self.target, p["target"].get("data_root"), target_id)
            timings["create_seconds"] = _since(mark)
            parent = None
            if plan["pre_dump"]:
                parent = self.pre_dump(src, plan, transfer, checkpoint)
            if policy.get("Name") not in (None, "", "no"):
                self.source.update_restart_policy(src["Id"], {"Name": "no", "MaximumRetryCount": 0})
                policy_changed = True

            # 2. frozen
            frozen_at = time.monotonic()
            dumped = self.dump(src, plan, images_dir, transfer, checkpoint, parent)
            timings.update(checkpoint_seconds=dumped["checkpoint_seconds"], freeze_seconds=dumped["freeze_seconds"])
            self.result["criu_stats"] = dumped["criu_stats"]
            sizes["checkpoint"] = criu_images.dir_size(images_dir)
            sizes["pages"] = criu_images.page_bytes(images_dir)
            self.rollback = dict(src=src, images_dir=images_dir, checkpoint=checkpoint)
            mark = time.monotonic()
            sizes["rootfs"] = self.copy_rootfs_changes(src, target_id) if p["rootfs_changes"] else 0
            timings["rootfs_seconds"] = _since(mark)
            outcome = criu_restore.restore(self.target, name, target_id, checkpoint, images_dir, data_root,
                                           link_pages=p["link_pages"], verify_seconds=0)
            timings["restore_seconds"] = outcome["restore_seconds"]
            timings["downtime_seconds"] = _since(frozen_at)
            sizes["copied_into_engine"] = outcome["bytes_copied"]
            self.result["restore"] = dict(mode=outcome["mode"], link_error=outcome["link_error"], retries=outcome["retries"])

            # 3. running on B
            dst = self.target.wait_running(target_id, p["verify_seconds"])
        except DockerError as e:
            raise self.fail_back(e, src, target_id, policy if policy_changed else None)
        finally:
            if not p["keep_checkpoint"]:
                shutil.rmtree(transfer, ignore_errors=True)
            else:
                self.result["checkpoint_path"] = images_dir
        if p["remove_source"]:
            self.source.remove_container(src["Id"])
        elif policy_changed:
            self.source.update_restart_policy(src["Id"], policy)
        if p["store_path"]:
            self.record_home(name, target_id)
        timings["total_seconds"] = _since(started)
        sizes["transferred"] = sizes.get("checkpoint", 0) + sizes.get("image", 0) + sizes.get("rootfs", 0)
        return self.finish(True, self.source.container(src["Id"]), dst, moved=True)

    def record_home(self, name, target_id):
        """The store's record that the container now runs on the target (what failover_plan and docker_checkpoint read)."""
        try:
            store = Store(self.p["store_path"], create=True)
            self.result["home"] = store.set_home(name, self.target.host, "migration", engine_id=self.target.info().get("ID"),
                                                 from_engine=self.source.host, container_id=target_id)
        except (StoreError, OSError, DockerError) as e:
            self.module.warn("The move of %s could not be recorded in the store %s (%s): a failover may take %s for its home."
                             % (name, self.p["store_path"], e, self.source.host))

    def pre_dump(self, src, plan, transfer, checkpoint):
        """One pre-copy round while the container runs; returns the parent path for the final dump (relative)."""
        pre = checkpoint + "-pre"
        work = tempfile.mkdtemp(prefix="streamops-criu-work-")
        try:
            seconds, stats = criu_runc.checkpoint(common.runner(self.module), common.runc_binary(self.module), plan["runc_root"],
                                                  src["Id"], os.path.join(transfer, pre), work, plan["criu"].path,
                                                  leave_running=True, pre_dump=True,
                                                  systemd_cgroup=self.source.info().get("CgroupDriver") == "systemd")
        except criu_runc.RuncProblem as e:
            raise DockerError(str(e))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self.result["pre_dump"] = dict(used=True, seconds=round(seconds, 3), pages_written=stats.get("pages_written"))
        return os.path.join("..", pre)

    def dump(self, src, plan, images_dir, transfer, checkpoint, parent):
        if plan["method"] == "engine" or not parent:
            return common.dump(self.module, self.source, src, checkpoint, images_dir, False, plan["method"], plan["runc_root"],
                               plan["criu"], engine_dir=transfer)
        work = tempfile.mkdtemp(prefix="streamops-criu-work-")
        try:
            seconds, stats = criu_runc.checkpoint(common.runner(self.module), common.runc_binary(self.module), plan["runc_root"],
                                                  src["Id"], images_dir, work, plan["criu"].path, leave_running=False,
                                                  parent_path=parent,
                                                  systemd_cgroup=self.source.info().get("CgroupDriver") == "systemd")
        except criu_runc.RuncProblem as e:
            raise DockerError(str(e))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        frozen = stats.get("frozen_time")
        return dict(method="runc", checkpoint_seconds=round(seconds, 3), freeze_seconds=round(frozen, 3) if frozen else None,
                    criu_stats=stats)

    def copy_rootfs_changes(self, src, target_id):
        """Copy the files the container added, changed or deleted in its writable layer into B's container.

        With both engines on this host using overlay2, A's upper directory is copied into B's (whiteouts, that is
        deletions, included) before B's container first starts. Otherwise through the API (docker diff, then
        get/put archive of the deepest changed paths); deletions cannot be replayed that way and are reported.
        """
        dst = self.target.container(target_id) or {}
        upper_a = _upper_dir(src)
        upper_b = _upper_dir(dst)
        if upper_a and upper_b and os.path.isdir(upper_a) and os.path.isdir(upper_b):
            entries = os.listdir(upper_a)
            if entries:
                rc, out, err = self.module.run_command(["cp", "-a", "--", *[os.path.join(upper_a, e) for e in entries], upper_b])
                if rc != 0:
                    raise DockerError("Copying the writable layer of %s from %s to %s failed: %s"
                                      % (self.p["container"], upper_a, upper_b, (err or out).strip()))
            size = criu_images.dir_size(upper_a)
            self.result["rootfs_changes"] = dict(mode="overlay", copied=sorted("/" + e for e in entries), deleted=[])
            return size
        mounts = [m.get("Destination") for m in src.get("Mounts") or []] + list(ENGINE_MANAGED)
        changes = [c for c in self.source.changes(src["Id"]) if not _under_any(c["Path"], mounts)]
        paths = sorted(c["Path"] for c in changes if c.get("Kind") in (0, 1))
        deleted = sorted(c["Path"] for c in changes if c.get("Kind") == 2)
        leaves = [path for index, path in enumerate(paths) if not (index + 1 < len(paths) and paths[index + 1].startswith(path + "/"))]
        if len(leaves) > MAX_ROOTFS_ENTRIES:
            raise DockerError("Container %s changed %d paths in its writable layer, more than the %d this module copies; keep such data in "
                              "a volume, or set rootfs_changes=false." % (self.p["container"], len(leaves), MAX_ROOTFS_ENTRIES))
        copied = 0
        for path in leaves:
            stream, unused = self.source.get_archive(src["Id"], path)
            data = b"".join(stream)
            copied += len(data)
            self.target.put_archive(target_id, os.path.dirname(path) or "/", data)
        if deleted:
            self.module.warn("Files deleted from the image's content by %s are present again on the target: %s"
                             % (self.p["container"], ", ".join(deleted[:10]) + (" ..." if len(deleted) > 10 else "")))
        self.result["rootfs_changes"] = dict(mode="api", copied=leaves, deleted=deleted)
        return copied

    def fail_back(self, error, src, target_id, policy):
        """Undo after a failure: B's container removed, the container running on A again; returns the DockerError to raise."""
        name = self.p["container"]
        notes = []
        if target_id:
            try:
                self.target.remove_container(target_id)
                notes.append("its container on the target was removed")
            except DockerError as e:
                notes.append("its container on the target could not be removed (%s)" % e)
        try:
            current = self.source.container(src["Id"])
        except DockerError:
            current = None
        if current is not None and current["State"].get("Running"):
            notes.append("it still runs on the source %s (the checkpoint did not stop it)" % self.source.host)
        elif current is None:
            notes.append("it is gone from the source %s too (--rm); recreate it" % self.source.host)
        else:
            notes.append(self.restart_on_source(current))
        if policy:
            try:
                self.source.update_restart_policy(src["Id"], policy)
            except DockerError:
                pass
        after = "; ".join(notes)
        message = "Migration of %s from %s to %s failed: %s. %s." % (name, self.source.host, self.target.host, error, after[:1].upper() + after[1:])
        return DockerError(message, actions=self.actions, timings=self.result["timings"], rolled_back=True)

    def restart_on_source(self, current):
        rb = self.rollback
        if rb and os.path.isdir(rb["images_dir"]) and self.source.is_local:
            try:
                data_root = criu_restore.require_data_root(self.source, None, current["Id"])
                criu_restore.restore(self.source, self.p["container"], current["Id"], rb["checkpoint"], rb["images_dir"], data_root,
                                     link_pages=self.p["link_pages"], verify_seconds=0.5)
                return "it was restored on the source %s from the same checkpoint, its state kept" % self.source.host
            except DockerError as e:
                first = str(e)
        else:
            first = None
        try:
            self.source.start(current["Id"])
            return ("it was restarted on the source %s from scratch (%s), so its in-memory state was lost"
                    % (self.source.host, "restoring the checkpoint there failed too: %s" % first if first else "no checkpoint to restore"))
        except DockerError as e:
            return "it could not be started again on the source %s either (%s)" % (self.source.host, e)

    def summary(self):
        """One line for the play's output: the move, its freeze time, downtime and bytes."""
        name, source, target = self.p["container"], self.source.host, self.target.host
        if self.module.check_mode:
            return "Would move %s from %s to %s by %s." % (name, source, target, self.result.get("method"))
        timings, sizes = self.result["timings"], self.result["bytes"]
        freeze = timings.get("freeze_seconds")
        return "Moved %s from %s to %s by %s: frozen %s, down %.2fs, %.1f MB moved, %.2fs in all." % (
            name, source, target, self.result.get("method"), "%.2fs" % freeze if freeze is not None else "(unknown through the engine)",
            timings.get("downtime_seconds") or 0, (sizes.get("transferred") or 0) / 1e6, timings.get("total_seconds") or 0)

    def finish(self, changed, src, dst, moved):
        result = self.result
        if moved:
            result["msg"] = self.summary()
        result.update(changed=changed, actions=self.actions,
                      source=ctr.summary(src, self.source.host if src else None),
                      target=ctr.summary(dst, self.target.host if dst else None))
        if self.module._diff:
            result["diff"] = dict(
                before=dict(container=self.p["container"], engine=self.source.host if moved else self.target.host),
                after=dict(container=self.p["container"], engine=self.target.host))
        return result


def _upper_dir(inspect):
    driver = inspect.get("GraphDriver") or {}
    if driver.get("Name") not in ("overlay2", "overlay"):
        return None
    return (driver.get("Data") or {}).get("UpperDir")


def _under_any(path, roots):
    return any(root and (path == root or path.startswith(root.rstrip("/") + "/")) for root in roots)


def _since(mark):
    return round(time.monotonic() - mark, 3)


def check_input(params):
    """What the user gives that becomes a path, checked before anything is done."""
    try:
        params["container"] = names.check_container(params["container"])
    except names.BadName as e:
        raise DockerError(str(e))
    transfer = params.get("transfer_dir")
    if transfer:
        if not os.path.isdir(transfer):
            raise DockerError("transfer_dir %s %s: create it (shared storage that both engines' hosts see at this path), or leave "
                              "it unset for the system's temporary directory." % (
                                  transfer, "is not a directory" if os.path.exists(transfer) else "does not exist"))
        if not os.access(transfer, os.W_OK | os.X_OK):
            raise DockerError("transfer_dir %s is not writable by this module." % transfer)


def run(module):
    check_input(module.params)
    migration = Migration(module)
    try:
        return migration.run()
    finally:
        migration.target.close()
