# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The logic of docker_checkpoint: create / keep N / prune / export, remove, list, restore.

Versions live either in the engine (``<data-root>/containers/<id>/checkpoints/``, what
``docker checkpoint ls`` shows) or in a checkpoint store on shared storage (``store.Store``).
"""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile

from ansible_collections.streamops.day2.plugins.module_utils._docker import DockerError, EngineUnreachable
from ansible_collections.streamops.day2.plugins.module_utils._criu import capability
from ansible_collections.streamops.day2.plugins.module_utils._criu import common
from ansible_collections.streamops.day2.plugins.module_utils._criu import container as ctr
from ansible_collections.streamops.day2.plugins.module_utils._criu import failover
from ansible_collections.streamops.day2.plugins.module_utils._criu import images as criu_images
from ansible_collections.streamops.day2.plugins.module_utils._criu import names
from ansible_collections.streamops.day2.plugins.module_utils._criu import restore as criu_restore
from ansible_collections.streamops.day2.plugins.module_utils._criu.store import MARKER, Store, StoreError, utc_now, version_name

IMAGES_FOLDER = ".images"


class CheckpointTask:
    """One run of docker_checkpoint."""

    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.engine = module.engine
        self.actions = []
        self.result = {}
        self.store = None
        # An existing store is opened; a missing one is created only when a version is written into it (_open_store).
        if self.p["store_path"] and os.path.isdir(self.p["store_path"]):
            try:
                self.store = Store(self.p["store_path"])
            except (StoreError, OSError) as e:
                raise DockerError("The checkpoint store %s cannot be used: %s." % (self.p["store_path"], e))
        elif self.p["store_path"] and os.path.exists(self.p["store_path"]):
            raise DockerError("The checkpoint store %s is not a directory." % self.p["store_path"])

    @property
    def location(self):
        return "store" if self.p["store_path"] else "engine"

    # -- listing ----------------------------------------------------------------------------

    def engine_versions(self, inspect, prefix=""):
        """Checkpoints the engine keeps for the container, newest first (by folder time when visible)."""
        if inspect is None:
            return []
        names = [n for n in self.engine.checkpoints(inspect["Id"]) if n.startswith(prefix)]
        folder = self._engine_checkpoints_dir(inspect)
        out = []
        for name in names:
            entry = dict(name=name, container=ctr.container_name(inspect), location="engine", created=None, size=None, path=None)
            if folder and os.path.isdir(os.path.join(folder, name)):
                path = os.path.join(folder, name)
                stat = os.stat(path)
                entry.update(path=path, size=criu_images.dir_size(path),
                             created=datetime.datetime.fromtimestamp(stat.st_mtime, datetime.timezone.utc).isoformat(),
                             created_ts=stat.st_mtime)
            out.append(entry)
        out.sort(key=lambda v: (v.get("created_ts") or 0, v["name"]), reverse=True)
        for entry in out:
            entry.pop("created_ts", None)
        return out

    def _engine_checkpoints_dir(self, inspect):
        root = self.p["data_root"]
        if not root and self.engine.is_local:
            root = self.engine.data_root
        return criu_restore.checkpoints_dir(root, inspect["Id"]) if root else None

    def store_versions(self, container, prefix=""):
        if self.store is None:
            return []
        return self.store.versions(container, prefix)

    def versions(self, inspect, container, prefix=""):
        if self.location == "store":
            return [v.as_dict() for v in self.store_versions(container, prefix)]
        return self.engine_versions(inspect, prefix)

    # -- state=present ----------------------------------------------------------------------

    def present(self):
        p = self.p
        inspect = self.engine.container(p["container"])
        if inspect is None:
            raise DockerError("No container named %s on the Docker engine at %s." % (p["container"], self.engine.host))
        name = ctr.container_name(inspect)
        before = self.versions(inspect, name)
        managed = [v for v in before if v["name"].startswith(p["prefix"])]
        wanted = p["name"]
        create = True
        if wanted and any(v["name"] == wanted for v in before):
            create = False
        elif not wanted and p["interval"] and managed:
            age = _age_seconds(managed[0].get("created"))
            if age is not None and age < p["interval"]:
                create = False
                self.result["skipped_reason"] = ("the newest version %s is %ds old, younger than interval=%ds"
                                                 % (managed[0]["name"], age, p["interval"]))
        created = None
        if create:
            checkpoint = wanted or version_name(p["prefix"])
            created = self.create(inspect, name, checkpoint)
        removed = self.prune(inspect, name, adding=1 if (create and self.module.check_mode) else 0)
        if create and not self.module.check_mode:
            inspect = self.engine.container(inspect["Id"]) or inspect
        after = self.versions(inspect, name) if not self.module.check_mode else _predict(before, created, removed)
        self.result.update(checkpoint=created or next((v for v in after if v["name"] == wanted), None) if wanted else created,
                           removed=[v["name"] for v in removed])
        self.result["msg"] = self._present_summary(name, created, wanted, after, removed)
        return self.finish(before, after, changed=bool(create or removed), inspect=inspect)

    def _present_summary(self, name, created, wanted, after, removed):
        """One line for the play's output: what was (or would be) taken and kept."""
        where = "the store %s" % self.p["store_path"] if self.location == "store" else "the engine"
        if created:
            freeze = (self.result.get("timings") or {}).get("freeze_seconds")
            size = created.get("size")
            text = "%s version %s of %s into %s%s" % (
                "Would take" if self.module.check_mode else "Took", created["name"], name, where,
                " (frozen %.2fs, %.1f MB)" % (freeze, size / 1e6) if freeze is not None and size else
                " (%.1f MB)" % (size / 1e6) if size else "")
        elif wanted:
            text = "Version %s of %s exists already in %s" % (wanted, name, where)
        else:
            text = "No new version of %s: %s" % (name, self.result.get("skipped_reason") or "nothing to do")
        kept = [v["name"] for v in after]
        text += "; %d version%s kept%s" % (len(kept), "" if len(kept) == 1 else "s", " (newest %s)" % kept[0] if kept else "")
        if removed:
            text += "; %s %s" % ("would remove" if self.module.check_mode else "removed", ", ".join(v["name"] for v in removed))
        return text + "."

    def create(self, inspect, name, checkpoint):
        p = self.p
        state = inspect.get("State") or {}
        if not state.get("Running") or state.get("Paused"):
            self.engine.require_container(p["container"], running=True)   # the clear error
        self.engine.require_experimental()
        method, runc_root = common.choose_method(self.module, self.engine, inspect, p["method"])
        criu_info = None
        if method == "runc" or self.engine.is_local:
            criu_info = common.probe_criu(self.module)
        where = "the engine"
        if p["store_path"]:
            where = "the store %s (%s%s)" % (p["store_path"], p["store_format"], ", compressed" if p["compress"] else "")
            if not self.store:
                self.actions.append("create the checkpoint store %s" % p["store_path"])
            if p["store_image"] and self._image_archive(inspect)[1]:
                self.actions.append(self._image_action(inspect))
        self.actions.append("checkpoint container %s as %s into %s, %s, by %s" % (
            name, checkpoint, where, "leaving it running" if p["leave_running"] else "stopping it", method))
        entry = dict(name=checkpoint, container=name, location=self.location, method=method, leave_running=p["leave_running"])
        if self.module.check_mode:
            return entry
        # runc stopping the container looks like a crash to the engine, which would restart it by its policy.
        policy = (inspect.get("HostConfig") or {}).get("RestartPolicy") or {}
        hold = method == "runc" and not p["leave_running"] and policy.get("Name") not in (None, "", "no")
        if hold:
            self.engine.update_restart_policy(inspect["Id"], {"Name": "no", "MaximumRetryCount": 0})
        try:
            if self.location == "store":
                entry.update(self._create_in_store(inspect, name, checkpoint, method, runc_root, criu_info))
            else:
                entry.update(self._create_in_engine(inspect, checkpoint, method, runc_root, criu_info))
        finally:
            if hold:
                self.engine.update_restart_policy(inspect["Id"], policy)
        self.result["criu"] = criu_info.as_dict() if criu_info else None
        return entry

    def _create_in_engine(self, inspect, checkpoint, method, runc_root, criu_info):
        folder = self._engine_checkpoints_dir(inspect)
        images_dir = None
        if method == "runc":
            if not folder:
                raise DockerError("The engine's data root is not visible from this host; use method=engine.")
            images_dir = os.path.join(folder, checkpoint)
        try:
            dumped = common.dump(self.module, self.engine, inspect, checkpoint, images_dir, self.p["leave_running"], method,
                                 runc_root, criu_info)
        except BaseException:
            if images_dir:
                shutil.rmtree(images_dir, ignore_errors=True)
            raise
        self.result["timings"] = dict(checkpoint_seconds=dumped["checkpoint_seconds"], freeze_seconds=dumped["freeze_seconds"])
        self.result["criu_stats"] = dumped["criu_stats"]
        out = dict(created=utc_now().isoformat(), freeze_seconds=dumped["freeze_seconds"])
        path = os.path.join(folder, checkpoint) if folder else None
        if path and os.path.isdir(path):
            out.update(path=path, size=criu_images.dir_size(path))
        return out

    def _open_store(self, written):
        """The store, created now when missing (the folders this run made noted in `written`, to be undone on failure)."""
        root = os.path.abspath(self.p["store_path"])
        missing = [path for path in _parents(root) + [os.path.join(root, MARKER)] if not os.path.exists(path)]
        written.extend(sorted(missing, key=len, reverse=True))   # deepest first
        try:
            self.store = Store(root, create=True)
        except (StoreError, OSError) as e:
            raise DockerError("The checkpoint store %s cannot be created: %s." % (root, e))
        return self.store

    def _create_in_store(self, inspect, name, checkpoint, method, runc_root, criu_info):
        """Dump into a staging folder of the store, then file it as a version. On any failure, what this run wrote
        into the store (the dump, the image archive, the container's folder, the store itself) is removed."""
        p = self.p
        written = []   # paths this run created, removed (newest first) if it fails
        staging = None
        try:
            store = self._open_store(written)
            folder = os.path.join(store.root, name)
            if not os.path.isdir(folder):
                written.insert(0, folder)
            staging = store.new_tmp(name, "dump")
            archive = None
            if p["store_image"]:
                archive, missing = self._image_archive(inspect)
                if missing:
                    images = os.path.dirname(os.path.join(store.root, archive))
                    if not os.path.isdir(images):
                        written.insert(0, images)
                    written.insert(0, os.path.join(store.root, archive))
                    criu_restore.save_image_archive(self.engine, inspect.get("Image") or "", os.path.join(store.root, archive),
                                                    ref=(inspect.get("Config") or {}).get("Image"))
            images_dir = os.path.join(staging, checkpoint)
            dumped = common.dump(self.module, self.engine, inspect, checkpoint, images_dir, p["leave_running"], method, runc_root,
                                 criu_info, engine_dir=staging)
            if not os.path.isdir(images_dir):
                raise DockerError("The engine wrote no checkpoint into %s: is the store mounted at the same path on the engine's "
                                  "host as on this one?" % staging)
            manifest = common.manifest_for(self.engine, inspect, checkpoint, p["leave_running"], dumped, criu_info, archive)
            started = utc_now()
            version = store.add(name, checkpoint, images_dir, manifest, fmt=p["store_format"], compress=p["compress"], move=True)
            store_seconds = (utc_now() - started).total_seconds()
        except BaseException as e:
            if staging:
                shutil.rmtree(staging, ignore_errors=True)
            _undo(written)
            if isinstance(e, StoreError):
                raise DockerError("%s Nothing of this run was kept in the store." % e)
            if isinstance(e, OSError):
                raise DockerError("Writing version %s of %s into the store %s failed (%s); nothing of this run was kept in the store%s."
                                  % (checkpoint, name, p["store_path"], e.strerror or e,
                                     "" if p["leave_running"] else ", and the container was stopped by the checkpoint"))
            raise
        shutil.rmtree(staging, ignore_errors=True)
        self.result["timings"] = dict(checkpoint_seconds=dumped["checkpoint_seconds"], freeze_seconds=dumped["freeze_seconds"],
                                      store_seconds=round(store_seconds, 3))
        self.result["criu_stats"] = dumped["criu_stats"]
        self._record_home(name, "checkpoint", version=checkpoint, container_id=inspect.get("Id"))
        return version.as_dict()

    def _record_home(self, name, how, version=None, container_id=None):
        """The store's record of where the container now runs (failover_plan and the restore guard read it)."""
        try:
            self.store.set_home(name, self.engine.host, how, engine_id=self.engine.info().get("ID"), version=version,
                                container_id=container_id)
        except (StoreError, OSError, DockerError) as e:
            self.module.warn("Where %s runs could not be recorded in the store %s (%s): a failover may take an older engine "
                             "for its home." % (name, self.store.root, e))

    def _image_archive(self, inspect):
        """(path of the image's archive relative to the store, whether the store lacks it)."""
        image_id = inspect.get("Image") or ""
        relative = os.path.join(IMAGES_FOLDER, image_id.replace("sha256:", "") + ".tar")
        return relative, not (self.store and os.path.exists(os.path.join(self.store.root, relative)))

    @staticmethod
    def _image_action(inspect):
        image_id = inspect.get("Image") or ""
        return "save image %s (%s) into the store" % ((inspect.get("Config") or {}).get("Image"), image_id[:19])

    def prune(self, inspect, name, adding=0):
        keep = self.p["keep"]
        if not keep:
            return []
        managed = self.versions(inspect, name, self.p["prefix"])
        doomed = managed[max(keep - adding, 0):]
        for version in doomed:
            self.actions.append("remove version %s of %s (keep %d)" % (version["name"], name, keep))
        if doomed and not self.module.check_mode:
            self._remove(inspect, name, doomed)
        return doomed

    def _remove(self, inspect, name, doomed):
        if self.location == "store":
            by_name = {v.name: v for v in self.store.versions(name)}
            for version in doomed:
                if version["name"] in by_name:
                    self.store.remove(by_name[version["name"]], collect=False)
            if any(v.get("format") == "dedup" for v in doomed):
                self.result["collected"] = self.store.collect()
            self.store.clean_stale(name)
        else:
            for version in doomed:
                self.engine.delete_checkpoint(inspect["Id"], version["name"])

    # -- state=absent -----------------------------------------------------------------------

    def absent(self):
        p = self.p
        inspect = self._inspect_optional()
        name = ctr.container_name(inspect) if inspect else p["container"]
        if self.location == "engine" and inspect is None:
            return self.finish([], [], changed=False, inspect=None)
        before = self.versions(inspect, name)
        if p["name"]:
            doomed = [v for v in before if v["name"] == p["name"]]
        else:
            doomed = [v for v in before if v["name"].startswith(p["prefix"])]
        for version in doomed:
            self.actions.append("remove version %s of %s" % (version["name"], name))
        if doomed and not self.module.check_mode:
            self._remove(inspect, name, doomed)
        after = self.versions(inspect, name) if not self.module.check_mode else [v for v in before if v not in doomed]
        self.result["removed"] = [v["name"] for v in doomed]
        return self.finish(before, after, changed=bool(doomed), inspect=inspect)

    def _inspect_optional(self):
        """The container, or None when it is absent or (with a store) when its engine does not answer."""
        try:
            return self.engine.container(self.p["container"])
        except EngineUnreachable as e:
            if self.location == "store":
                self.result["engine"] = dict(docker_host=self.engine.host, reachable=False, error=str(e))
                return None
            raise

    # -- state=query ------------------------------------------------------------------------

    def info(self):
        p = self.p
        inspect = self._inspect_optional()
        name = ctr.container_name(inspect) if inspect else p["container"]
        if "engine" not in self.result:
            engine = dict(reachable=True)
            engine.update(self.engine.summary())
            self.result["engine"] = engine
        versions = self.versions(inspect, name)
        if p["name"]:
            versions = [v for v in versions if v["name"] == p["name"]]
        if self.location == "store" and p["verify"]:
            by_name = {v.name: v for v in self.store_versions(name)}
            for entry in versions:
                problems = self.store.verify(by_name[entry["name"]])
                entry.update(valid=not problems, problems=problems)
        if self.location == "store":
            self.result["home"] = self.store.home(name) if self.store else None
        self.result.update(versions=versions, latest=versions[0] if versions else None,
                           container=ctr.summary(inspect, self.engine.host if inspect else None), changed=False,
                           capabilities=self._capabilities(), actions=[], location=self.location)
        return self.result

    def _capabilities(self):
        """CRIU and kernel features, reported, never failing the info."""
        path = common.criu_binary(self.module)
        try:
            info = capability.probe(common.runner(self.module), path)
        except capability.CriuProblem as e:
            return dict(criu=dict(path=path, usable=False, problem=str(e)))
        capability.probe_features(common.runner(self.module), info)
        out = info.as_dict()
        out["usable"] = True
        out["pre_dump"] = capability.pre_dump_skip_reason(info) or "available"
        return dict(criu=out)

    # -- state=restored ---------------------------------------------------------------------

    def restored(self):
        p = self.p
        inspect = self.engine.container(p["container"])
        name = ctr.container_name(inspect) if inspect else p["container"]
        # The versions there are, whatever happens next (the result lists them, as state=query does).
        self.result["versions"] = self.versions(inspect, name) if (self.location == "store" or inspect is not None) else []
        wanted = p["name"] if p["name"] not in (None, "latest") else None
        held = ", ".join(v["name"] for v in self.result["versions"][:5]) or "none"
        if wanted and not any(v["name"] == wanted for v in self.result["versions"]):
            if self.location == "store":
                raise DockerError("The store %s holds no version %s of %s (it holds %s)." % (p["store_path"], wanted, name, held))
            if inspect is not None:
                raise DockerError("Container %s on %s has no checkpoint %s (it has %s)." % (name, self.engine.host, wanted, held))
        if inspect and inspect["State"].get("Running"):
            self.result["msg"] = "Container %s already runs on %s." % (p["container"], self.engine.host)
            return self.finish([], [], changed=False, inspect=inspect)
        if self.location == "engine":
            return self._restore_from_engine(inspect)
        return self._restore_from_store(inspect)

    def _restore_from_engine(self, inspect):
        p = self.p
        if inspect is None:
            raise DockerError("No container named %s on %s to restore a checkpoint into (without store_path, checkpoints live in "
                              "the container itself)." % (p["container"], self.engine.host))
        versions = self.engine_versions(inspect, "" if p["name"] not in (None, "latest") else p["prefix"])
        wanted = p["name"] if p["name"] not in (None, "latest") else (versions[0]["name"] if versions else None)
        if not wanted or not any(v["name"] == wanted for v in versions):
            raise DockerError("Container %s on %s has no checkpoint %s." % (p["container"], self.engine.host, wanted or "(none at all)"))
        self.engine.require_experimental()
        self.actions.append("restore container %s from its checkpoint %s" % (p["container"], wanted))
        if not self.module.check_mode:
            seconds = _timed(lambda: self.engine.start(inspect["Id"], checkpoint=wanted))
            inspect = self.engine.wait_running(inspect["Id"], p["verify_seconds"])
            self.result["timings"] = dict(restore_seconds=round(seconds, 3))
        self.result["checkpoint"] = next(v for v in versions if v["name"] == wanted)
        self.result["msg"] = self._restore_summary(p["container"], wanted, None, None)
        return self.finish([], [], changed=True, inspect=inspect, restored=True)

    def _restore_summary(self, name, version, created, engine):
        seconds = (self.result.get("timings") or {}).get("restore_seconds")
        return "%s %s on %s from version %s%s%s." % (
            "Would restore" if self.module.check_mode else "Restored", name, self.engine.host, version,
            " (taken %s%s)" % (created, " on %s" % engine if engine and engine != self.engine.host else "") if created else "",
            " in %.2fs" % seconds if seconds is not None else "")

    def _restore_from_store(self, inspect):
        p = self.p
        name = p["container"]
        if self.store is None:
            raise DockerError("The checkpoint store %s does not exist." % p["store_path"])
        if p["name"] in (None, "latest"):
            version, skipped = self.store.newest_valid(name, checksums=p["verify"])
            for skipped_name, problems in skipped:
                self.module.warn("Version %s of %s skipped as damaged: %s." % (skipped_name, name, "; ".join(problems)))
            self.result["skipped_versions"] = [dict(name=n, problems=pr) for n, pr in skipped]
        else:
            version = self.store.find(name, p["name"])
            problems = self.store.verify(version, checksums=p["verify"]) if version else []
            if problems:
                raise DockerError("Version %s of %s is damaged: %s." % (p["name"], name, "; ".join(problems)))
        if version is None:
            which = "valid " if p["name"] in (None, "latest") else "%s " % p["name"]
            raise DockerError("The store %s holds no %sversion of container %s." % (p["store_path"], which, name))
        manifest = version.manifest
        original = manifest.get("container") or {}
        home = self.store.home(name)
        self.result["home"] = home
        stale = failover.refusal(home, version.name, version.created, (manifest.get("engine") or {}).get("docker_host"),
                                 self.engine.host, self._engine_id(), container=name)
        if stale and not p["force"]:
            raise DockerError(stale)
        if stale:
            self.module.warn("force=true: %s" % stale)
        if inspect is not None and inspect["Id"] != original.get("id") and not p["force"]:
            raise DockerError("Another container named %s (%s) exists on %s; remove it or set force=true to replace it."
                              % (name, inspect["Id"][:12], self.engine.host))
        self.engine.require_experimental()
        self.result["checkpoint"] = version.as_dict()
        archive = os.path.join(self.store.root, manifest["image_archive"]) if manifest.get("image_archive") else None
        wanted_image = dict(id=original.get("image_id"), layers=original.get("image_layers") or [])
        ref, image_action, unused = criu_restore.ensure_image(self.engine, wanted_image, original.get("image"), archive=archive,
                                                              check_mode=True)
        if image_action:
            self.actions.append(image_action)
        reuse = inspect is not None and inspect["Id"] == original.get("id")
        if inspect is not None and not reuse:
            self.actions.append("remove the other container %s (%s)" % (name, inspect["Id"][:12]))
        if not reuse:
            self.actions.append("create container %s on %s with the configuration of %s" % (name, self.engine.host, version.name))
        self.actions.append("restore container %s from version %s (%s)" % (name, version.name, version.created))
        self.actions.append("record in the store that %s runs on %s" % (name, self.engine.host))
        version_engine = (manifest.get("engine") or {}).get("docker_host")
        if self.module.check_mode:
            self.result["msg"] = self._restore_summary(name, version.name, version.created, version_engine)
            return self.finish([], [], changed=True, inspect=inspect, restored=True)
        ref, unused, image_bytes = criu_restore.ensure_image(self.engine, wanted_image, original.get("image"), archive=archive)
        created_id = None
        work = tempfile.mkdtemp(prefix="streamops-restore-", dir=p["work_dir"])
        try:
            if reuse:
                container_id = inspect["Id"]
            else:
                if inspect is not None:
                    self.engine.remove_container(inspect["Id"])
                body = dict(original.get("create") or {}, Image=ref)
                container_id = created_id = self.engine.create_container(name, body)
            data_root = criu_restore.require_data_root(self.engine, p["data_root"], container_id)
            images_dir, rebuilt = self.store.materialise(version, os.path.join(work, "images"))
            outcome = criu_restore.restore(self.engine, name, container_id, version.name, images_dir, data_root,
                                           link_pages=p["link_pages"], verify_seconds=p["verify_seconds"])
        except BaseException:
            if created_id:
                self.engine.remove_container(created_id)
            raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self.result["timings"] = dict(restore_seconds=outcome["restore_seconds"])
        self.result["restore"] = dict(mode=outcome["mode"], bytes_rebuilt=rebuilt, image_bytes=image_bytes,
                                      link_error=outcome["link_error"])
        self._record_home(name, "restore", version=version.name, container_id=container_id)
        self.result["home"] = self.store.home(name)
        self.result["msg"] = self._restore_summary(name, version.name, version.created, version_engine)
        return self.finish([], [], changed=True, inspect=outcome["inspect"], restored=True)

    def _engine_id(self):
        try:
            return self.engine.info().get("ID")
        except DockerError:
            return None

    # -- result -----------------------------------------------------------------------------

    def finish(self, before, after, changed, inspect, restored=False):
        result = self.result
        result.setdefault("versions", after)
        result.update(changed=changed, actions=self.actions, location=self.location)
        if inspect is not None or "container" not in result:
            result["container"] = ctr.summary(inspect, self.engine.host if inspect else None)
        if self.module._diff:
            if restored:
                result["diff"] = dict(before=dict(container=self.p["container"], running=False),
                                      after=dict(container=self.p["container"], running=True))
            else:
                result["diff"] = dict(before=dict(versions=[v["name"] for v in before]), after=dict(versions=[v["name"] for v in after]))
        return result


def _parents(path):
    """path and its parents, deepest first."""
    out = []
    while True:
        out.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            return out
        path = parent


def _undo(paths):
    """Remove what a failed run created, in the order given: files, and folders (whole when they are the run's own)."""
    for path in paths:
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.unlink(path)
        except OSError:
            pass


def _predict(before, created, removed):
    gone = {v["name"] for v in removed}
    after = [v for v in before if v["name"] not in gone]
    if created:
        after.insert(0, created)
    return after


def _age_seconds(created):
    if not created:
        return None
    try:
        when = datetime.datetime.fromisoformat(created)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return (utc_now() - when).total_seconds()


def _timed(fn):
    started = datetime.datetime.now().timestamp()
    fn()
    return datetime.datetime.now().timestamp() - started


def check_names(params):
    """Every user-given name that becomes a path, checked before anything is done (names.py has the rule)."""
    try:
        params["container"] = names.check_container(params["container"])
        if params.get("name") and not (params["state"] == "restored" and params["name"] == "latest"):
            names.check_name("Checkpoint name", params["name"])
        names.check_prefix(params.get("prefix") or "")
    except names.BadName as e:
        raise DockerError(str(e))


def run(module):
    check_names(module.params)
    task = CheckpointTask(module)
    state = module.params["state"]
    if state == "present":
        return task.present()
    if state == "absent":
        return task.absent()
    if state == "query":
        return task.info()
    return task.restored()
