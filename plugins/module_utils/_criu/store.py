# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The checkpoint store: versions of container checkpoints on (shared) storage, with manifests.

Layout under the store root (a directory every engine host mounts at the same path)::

    <root>/.streamops-checkpoint-store        marker (store format)
    <root>/.lock                              flock: shared while adding, exclusive while collecting packs
    <root>/.pages/<pack>.pack, <pack>.idx     de-duplicated 4 KiB units (format dedup): one pack of new units
                                              per version, and its index (see dedup.py)
    <root>/<container>/<version>/manifest.json
    <root>/<container>/<version>/images/      CRIU images as dumped (format directory)
    <root>/<container>/<version>/images.tar   or images.tar.gz (format archive)
    <root>/<container>/.tmp-*                 versions being written (never listed; cleaned when stale)
    <root>/<container>/.home.json             where the container last ran: the engine of its last checkpoint,
                                              restore or migration (see home())

A version exists once its directory has its final name, and that rename is the last step, after
its manifest was written: a crash leaves a ``.tmp-*`` directory, never a half version. The
manifest records the container (name, id, image, the body that recreates it), the engine, CRIU's
version, the kernel, the time, per-file sizes and SHA-256 checksums, and one checksum over them.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import shutil
import tarfile
import time
import uuid
from dataclasses import dataclass

from ansible_collections.streamops.day2.plugins.module_utils._criu import dedup
from ansible_collections.streamops.day2.plugins.module_utils._criu import names

MANIFEST = "manifest.json"
HOME = ".home.json"
HOW = ("checkpoint", "restore", "migration")
MANIFEST_VERSION = 1
FORMATS = ("directory", "archive", "dedup")
MARKER = ".streamops-checkpoint-store"
STALE_TMP_SECONDS = 3600
READ_BLOCK = 1 << 20


class StoreError(Exception):
    """A store problem worth one sentence to the user."""


# Checkpoints hold a process's memory (and manifests its environment, secrets included): nothing in a store is
# readable by anyone but its owner, whatever the umask.
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600


def open_private(path, mode):
    """open() for writing a new file created 0600."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE), mode)


def make_private(top):
    """Directories 0700 and files 0600 under top (top included)."""
    os.chmod(top, PRIVATE_DIR)
    for folder, dirs, files in os.walk(top):
        for name in dirs:
            os.chmod(os.path.join(folder, name), PRIVATE_DIR)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, PRIVATE_FILE)


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def version_name(prefix, when=None):
    """A timestamped version name that sorts by time and is a valid Docker checkpoint name."""
    when = when or utc_now()
    return "%s%s" % (prefix, when.strftime("%Y%m%dT%H%M%S.%f")[:-3] + "Z")


def check_name(kind, name):
    """The name, when it follows the one rule of names.py; else StoreError."""
    try:
        return names.check_name(kind, name)
    except names.BadName as e:
        raise StoreError(str(e))


def files_checksum(files):
    """One checksum over the names, sizes and checksums of a version's files."""
    canonical = json.dumps([[f["name"], f["size"], f["sha256"]] for f in sorted(files, key=lambda f: f["name"])], separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(READ_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_files(images_dir):
    """[{name, size, sha256}] of the regular files of an images directory."""
    out = []
    for entry in sorted(os.scandir(images_dir), key=lambda e: e.name):
        if entry.is_file(follow_symlinks=False):
            out.append(dict(name=entry.name, size=entry.stat().st_size, sha256=file_sha256(entry.path)))
    return out


def _pieces(path):
    """The 4 KiB units of a file, read sequentially."""
    with open(path, "rb") as handle:
        while True:
            block = handle.read(READ_BLOCK)
            if not block:
                return
            view = memoryview(block)
            for offset, length in dedup.units(view):
                yield view[offset:offset + length]


@dataclass
class Version:
    container: str
    name: str
    path: str
    manifest: dict

    @property
    def created(self):
        return self.manifest.get("checkpoint", {}).get("created")

    @property
    def created_ts(self):
        return float(self.manifest.get("checkpoint", {}).get("created_ts") or 0)

    @property
    def format(self):
        return self.manifest.get("format")

    @property
    def size(self):
        return int(self.manifest.get("size") or 0)

    def as_dict(self):
        checkpoint = self.manifest.get("checkpoint", {})
        return dict(name=self.name, container=self.container, location="store", path=self.path, created=self.created,
                    format=self.format, compression=self.manifest.get("compression", "none"), size=self.size,
                    stored_bytes=int(self.manifest.get("stored_bytes") or 0), checksum=self.manifest.get("checksum"),
                    leave_running=checkpoint.get("leave_running"), method=checkpoint.get("method"),
                    freeze_seconds=checkpoint.get("freeze_seconds"), criu_version=(self.manifest.get("criu") or {}).get("version"),
                    image=(self.manifest.get("container") or {}).get("image"),
                    engine=(self.manifest.get("engine") or {}).get("docker_host"))


class Store:
    """A checkpoint store rooted at a directory (see the module docstring for the layout)."""

    def __init__(self, root, create=False):
        self.root = os.path.abspath(root)
        if not os.path.isdir(self.root):
            if not create:
                raise StoreError("The checkpoint store %s does not exist." % self.root)
            os.makedirs(self.root, mode=PRIVATE_DIR, exist_ok=True)
        if create and not os.path.exists(os.path.join(self.root, MARKER)):
            self._write_json(os.path.join(self.root, MARKER), dict(store_version=MANIFEST_VERSION))

    # -- paths and locks --------------------------------------------------------------------

    def container_dir(self, container):
        check_name("Container name", container)
        return os.path.join(self.root, container)

    @property
    def pages_dir(self):
        return os.path.join(self.root, ".pages")

    def pack_path(self, pack, kind="pack"):
        return os.path.join(self.pages_dir, "%s.%s" % (pack, kind))

    @contextlib.contextmanager
    def lock(self, exclusive=False):
        """flock on <root>/.lock: adders share it, pack collection takes it alone."""
        path = os.path.join(self.root, ".lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def new_tmp(self, container, label="new"):
        """A fresh private directory inside the container's folder (same filesystem as its versions)."""
        base = self.container_dir(container)
        os.makedirs(base, mode=PRIVATE_DIR, exist_ok=True)
        path = os.path.join(base, ".tmp-%s-%s" % (label, uuid.uuid4().hex[:8]))
        os.mkdir(path, PRIVATE_DIR)
        return path

    # -- reading ----------------------------------------------------------------------------

    def containers(self):
        if not os.path.isdir(self.root):
            return []
        return sorted(entry.name for entry in os.scandir(self.root) if entry.is_dir() and not entry.name.startswith("."))

    def versions(self, container, prefix=""):
        """Complete versions of a container, newest first (by creation time, then name)."""
        base = self.container_dir(container)
        if not os.path.isdir(base):
            return []
        found = []
        for entry in os.scandir(base):
            if entry.name.startswith(".") or not entry.is_dir() or not entry.name.startswith(prefix):
                continue
            manifest = self._read_json(os.path.join(entry.path, MANIFEST))
            if manifest is not None:
                found.append(Version(container, entry.name, entry.path, manifest))
        found.sort(key=lambda v: (v.created_ts, v.name), reverse=True)
        return found

    def find(self, container, name):
        """A version by name; "latest" is the newest one. None when absent."""
        versions = self.versions(container)
        if name == "latest":
            return versions[0] if versions else None
        for version in versions:
            if version.name == name:
                return version
        return None

    def verify(self, version, checksums=True):
        """Problems of a version (missing files, wrong sizes, wrong checksums); [] when it is sound."""
        problems = []
        files = version.manifest.get("files") or []
        if not files:
            return ["manifest lists no files"]
        if files_checksum(files) != version.manifest.get("checksum"):
            problems.append("manifest checksum does not match its file list")
        fmt = version.format
        if fmt == "directory":
            for item in files:
                path = os.path.join(version.path, "images", item["name"])
                if not os.path.isfile(path):
                    problems.append("%s is missing" % item["name"])
                elif os.path.getsize(path) != item["size"]:
                    problems.append("%s has %d bytes, the manifest says %d" % (item["name"], os.path.getsize(path), item["size"]))
                elif checksums and file_sha256(path) != item["sha256"]:
                    problems.append("%s does not match its checksum" % item["name"])
        elif fmt == "archive":
            archive = os.path.join(version.path, self._archive_name(version.manifest))
            if not os.path.isfile(archive):
                problems.append("%s is missing" % os.path.basename(archive))
            elif checksums:
                problems.extend(self._verify_archive(archive, files))
        elif fmt == "dedup":
            problems.extend(self._verify_extents(files, checksums))
        else:
            problems.append("unknown format %r" % fmt)
        return problems

    def newest_valid(self, container, checksums=True):
        """(newest sound version or None, [(name, problems)] of the newer ones skipped as damaged)."""
        skipped = []
        for version in self.versions(container):
            problems = self.verify(version, checksums=checksums)
            if not problems:
                return version, skipped
            skipped.append((version.name, problems))
        return None, skipped

    def home(self, container):
        """The container's home record (where it last ran), or None: {engine, engine_id, how, since, since_ts, version,
        from_engine, container_id}."""
        record = self._read_json(os.path.join(self.container_dir(container), HOME))
        if not record or record.get("how") not in HOW or not record.get("engine"):
            return None
        return record

    # -- writing ----------------------------------------------------------------------------

    def set_home(self, container, engine, how, engine_id=None, version=None, from_engine=None, container_id=None, when=None):
        """Record that the container now runs on `engine` (a docker_host), since `when`, because of `how`."""
        if how not in HOW:
            raise StoreError("Unknown reason %r for a home record (one of %s)." % (how, ", ".join(HOW)))
        when = when or utc_now()
        base = self.container_dir(container)
        os.makedirs(base, mode=PRIVATE_DIR, exist_ok=True)
        record = dict(engine=engine, engine_id=engine_id, how=how, since=when.isoformat(), since_ts=when.timestamp(),
                      version=version, from_engine=from_engine, container_id=container_id)
        self._write_json(os.path.join(base, HOME), record)
        return record

    def add(self, container, name, images_dir, manifest, fmt="directory", compress=False, move=True):
        """Store the CRIU images of images_dir as version `name`; returns the Version.

        `manifest` is completed with format, files, sizes and checksums. With move=True and the directory
        format the images directory is renamed into the store (it must be on the same filesystem).
        """
        if fmt not in FORMATS:
            raise StoreError("Unknown store format %r (one of %s)." % (fmt, ", ".join(FORMATS)))
        check_name("Version name", name)
        final = os.path.join(self.container_dir(container), name)
        if os.path.exists(final):
            raise StoreError("Version %s of %s already exists in %s." % (name, container, self.root))
        manifest = dict(manifest, manifest_version=MANIFEST_VERSION, format=fmt)
        with self.lock():
            tmp = self.new_tmp(container, name)
            try:
                if fmt == "directory":
                    files = describe_files(images_dir)
                    if move:
                        os.rename(images_dir, os.path.join(tmp, "images"))
                    else:
                        shutil.copytree(images_dir, os.path.join(tmp, "images"), symlinks=True)
                    stored = sum(f["size"] for f in files)
                    manifest["compression"] = "none"
                elif fmt == "archive":
                    files = describe_files(images_dir)
                    manifest["compression"] = "gzip" if compress else "none"
                    archive = os.path.join(tmp, self._archive_name(manifest))
                    options = dict(mode="w:gz", compresslevel=1) if compress else dict(mode="w")
                    with tarfile.open(archive, **options) as tar:
                        for item in files:
                            tar.add(os.path.join(images_dir, item["name"]), arcname=item["name"], recursive=False)
                    stored = os.path.getsize(archive)
                else:
                    if compress:
                        raise StoreError("compress applies to the archive format; de-duplicated pages are stored raw.")
                    manifest["compression"] = "none"
                    files, stored, manifest["pack"] = self._add_pages(images_dir)
                manifest["files"] = files
                manifest["size"] = sum(f["size"] for f in files)
                manifest["stored_bytes"] = stored
                manifest["checksum"] = files_checksum(files)
                self._write_json(os.path.join(tmp, MANIFEST), manifest)
                make_private(tmp)   # CRIU's images keep the modes CRIU (or copytree) gave them
                os.rename(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                if manifest.get("pack"):   # the pack this version wrote: no other version uses it yet
                    self._unlink_pack(manifest["pack"])
                    with contextlib.suppress(OSError):
                        os.rmdir(self.pages_dir)   # only when empty
                raise
        return Version(container, name, final, manifest)

    def _index(self):
        """Where every stored unit is: {sha256: (pack, offset, length)} from the indexes of the packs."""
        index = {}
        if not os.path.isdir(self.pages_dir):
            return index
        for entry in os.scandir(self.pages_dir):
            if entry.name.endswith(".idx"):
                pack = entry.name[:-4]
                with open(entry.path, "rb") as handle:
                    for sha, offset, length in dedup.decode_index(handle.read()):
                        index.setdefault(sha, (pack, offset, length))
        return index

    def _add_pages(self, images_dir):
        """Cut the files into units, write the units no pack has into a new pack; returns (files, bytes written, pack)."""
        index = self._index()
        made = not os.path.isdir(self.pages_dir)
        os.makedirs(self.pages_dir, mode=PRIVATE_DIR, exist_ok=True)
        pack = uuid.uuid4().hex[:16]
        try:
            return self._write_pack(images_dir, index, pack)
        except BaseException:
            self._unlink_pack(pack)
            if made:
                with contextlib.suppress(OSError):
                    os.rmdir(self.pages_dir)   # only when empty: another version may have filled it meanwhile
            raise

    def _unlink_pack(self, pack):
        for kind in ("idx", "idx.tmp", "pack", "pack.tmp"):
            with contextlib.suppress(OSError):
                os.unlink(self.pack_path(pack, kind))

    def _write_pack(self, images_dir, index, pack):
        tmp = self.pack_path(pack, "pack.tmp")
        files, new, written = [], [], 0
        with open_private(tmp, "wb") as out:
            for entry in sorted(os.scandir(images_dir), key=lambda e: e.name):
                if not entry.is_file(follow_symlinks=False):
                    continue
                digest = hashlib.sha256()
                extents = []
                for piece in _pieces(entry.path):
                    digest.update(piece)
                    sha = dedup.unit_digest(piece)
                    where = index.get(sha)
                    if where is None:
                        out.write(piece)
                        where = index[sha] = (pack, written, len(piece))
                        new.append((sha, written, len(piece)))
                        written += len(piece)
                    extents.append(list(where))
                files.append(dict(name=entry.name, size=entry.stat().st_size, sha256=digest.hexdigest(), extents=dedup.coalesce(extents)))
            out.flush()
            os.fsync(out.fileno())
        if not new:
            os.unlink(tmp)
            return files, 0, None
        os.rename(tmp, self.pack_path(pack))
        index_tmp = self.pack_path(pack, "idx.tmp")
        with open_private(index_tmp, "wb") as handle:
            handle.write(dedup.encode_index(new))
        os.rename(index_tmp, self.pack_path(pack, "idx"))   # the index last: an index always has its pack
        return files, written, pack

    def _verify_extents(self, files, checksums):
        problems = []
        sizes = {}
        for item in files:
            total = 0
            digest = hashlib.sha256()
            for pack, offset, length in item.get("extents", []):
                if pack not in sizes:
                    path = self.pack_path(pack)
                    sizes[pack] = os.path.getsize(path) if os.path.isfile(path) else None
                if sizes[pack] is None or sizes[pack] < offset + length:
                    problems.append("%s needs pack %s, which is %s" % (item["name"], pack, "missing" if sizes[pack] is None else "too short"))
                    break
                if checksums:
                    for block in self._read_extent(pack, offset, length):
                        digest.update(block)
                total += length
            else:
                if total != item["size"]:
                    problems.append("%s: its extents hold %d bytes, the manifest says %d" % (item["name"], total, item["size"]))
                elif checksums and digest.hexdigest() != item["sha256"]:
                    problems.append("%s does not match its checksum" % item["name"])
        return problems

    def _read_extent(self, pack, offset, length):
        with open(self.pack_path(pack), "rb") as handle:
            handle.seek(offset)
            left = length
            while left:
                block = handle.read(min(left, READ_BLOCK))
                if not block:
                    raise StoreError("pack %s ends before offset %d" % (pack, offset + length))
                left -= len(block)
                yield block

    def remove(self, version, collect=True):
        """Remove a version (renamed away first, so it is never seen half removed); then collect its packs."""
        trash = os.path.join(os.path.dirname(version.path), ".tmp-removed-%s-%s" % (version.name, uuid.uuid4().hex[:8]))
        os.rename(version.path, trash)
        shutil.rmtree(trash, ignore_errors=True)
        if collect and version.format == "dedup":
            return self.collect()
        return dict(packs=0, bytes=0)

    def prune(self, container, keep, prefix=""):
        """Remove the versions named with prefix beyond the newest `keep`; returns the removed Versions."""
        if keep <= 0:
            return []
        removed = self.versions(container, prefix)[keep:]
        for version in removed:
            self.remove(version, collect=False)
        if any(v.format == "dedup" for v in removed):
            self.collect()
        self.clean_stale(container)
        return removed

    def plan_prune(self, container, keep, prefix="", adding=0):
        """The versions prune() would remove once `adding` new versions are added (check mode)."""
        if keep <= 0:
            return []
        return self.versions(container, prefix)[max(keep - adding, 0):]

    def collect(self):
        """Delete the packs no manifest references (mark and sweep, under the exclusive lock)."""
        if not os.path.isdir(self.pages_dir):
            return dict(packs=0, bytes=0)
        with self.lock(exclusive=True):
            live = set()
            for container in self.containers():
                for version in self.versions(container):
                    if version.format == "dedup":
                        for item in version.manifest.get("files") or []:
                            live.update(extent[0] for extent in item.get("extents", []))
            count = freed = 0
            for entry in os.scandir(self.pages_dir):
                pack = entry.name.split(".", 1)[0]
                if pack not in live:   # also the .tmp files of adders that died (no adder runs: the lock is ours)
                    freed += entry.stat().st_size
                    os.unlink(entry.path)
                    count += entry.name.endswith(".pack")
        return dict(packs=count, bytes=freed)

    def clean_stale(self, container, older_than=STALE_TMP_SECONDS):
        """Remove .tmp-* leftovers of interrupted runs older than an hour."""
        base = self.container_dir(container)
        if not os.path.isdir(base):
            return
        now = time.time()
        for entry in os.scandir(base):
            if entry.name.startswith(".tmp-") and now - entry.stat(follow_symlinks=False).st_mtime > older_than:
                shutil.rmtree(entry.path, ignore_errors=True)

    # -- restoring --------------------------------------------------------------------------

    def materialise(self, version, work_dir):
        """A directory holding the version's CRIU images: the stored one itself (directory format), or
        files rebuilt under work_dir (archive, dedup). Returns (path, bytes written)."""
        fmt = version.format
        if fmt == "directory":
            return os.path.join(version.path, "images"), 0
        os.makedirs(work_dir, mode=PRIVATE_DIR, exist_ok=True)
        written = 0
        if fmt == "archive":
            with tarfile.open(os.path.join(version.path, self._archive_name(version.manifest)), "r:*") as tar:
                for member in tar.getmembers():
                    if not member.isfile() or "/" in member.name or member.name.startswith("."):
                        raise StoreError("Archive of version %s holds an unexpected entry %r." % (version.name, member.name))
                    source = tar.extractfile(member)
                    with open(os.path.join(work_dir, member.name), "wb") as handle:
                        shutil.copyfileobj(source, handle, READ_BLOCK)
                    written += member.size
            return work_dir, written
        for item in version.manifest.get("files") or []:
            with open(os.path.join(work_dir, item["name"]), "wb") as handle:
                for pack, offset, length in item.get("extents", []):
                    for block in self._read_extent(pack, offset, length):
                        handle.write(block)
                        written += len(block)
        return work_dir, written

    def usage(self):
        """Bytes on disk: per container (its version directories) and the shared page packs."""
        out = dict(pages=0, containers={})
        for base, dirs, names in os.walk(self.pages_dir):
            out["pages"] += sum(os.path.getsize(os.path.join(base, n)) for n in names)
        for container in self.containers():
            total = 0
            for base, dirs, names in os.walk(os.path.join(self.root, container)):
                total += sum(os.path.getsize(os.path.join(base, n)) for n in names if not os.path.islink(os.path.join(base, n)))
            out["containers"][container] = total
        out["total"] = out["pages"] + sum(out["containers"].values())
        return out

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _archive_name(manifest):
        return "images.tar.gz" if manifest.get("compression") == "gzip" else "images.tar"

    @staticmethod
    def _verify_archive(archive, files):
        expected = {f["name"]: f for f in files}
        seen = set()
        problems = []
        try:
            with tarfile.open(archive, "r:*") as tar:
                for member in tar:
                    item = expected.get(member.name)
                    if item is None or not member.isfile():
                        continue
                    seen.add(member.name)
                    digest = hashlib.sha256()
                    source = tar.extractfile(member)
                    for block in iter(lambda: source.read(READ_BLOCK), b""):
                        digest.update(block)
                    if member.size != item["size"] or digest.hexdigest() != item["sha256"]:
                        problems.append("%s in the archive does not match its checksum" % member.name)
        except (tarfile.TarError, OSError, EOFError) as e:
            return ["archive unreadable: %s" % e]
        problems.extend("%s is missing from the archive" % name for name in sorted(set(expected) - seen))
        return problems

    @staticmethod
    def _read_json(path):
        try:
            with open(path) as handle:
                data = json.load(handle)
            return data if isinstance(data, dict) else None
        except (OSError, ValueError):
            return None

    @staticmethod
    def _write_json(path, data):
        tmp = "%s.tmp-%s" % (path, uuid.uuid4().hex[:8])
        with open_private(tmp, "w") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(tmp, path)
