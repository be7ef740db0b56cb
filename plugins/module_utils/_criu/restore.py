# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restoring a checkpoint into an engine: the image, the container, the checkpoint where the engine
reads it, the restore itself, and the check that it runs.

The engine refuses ``docker start --checkpoint-dir`` ("custom checkpointdir is not supported"), so
a checkpoint restores only from ``<data-root>/containers/<id>/checkpoints/<name>``: this module
must run on a host that sees the target engine's data root (its own host). The checkpoint goes
there as a stub (``images.make_restore_stub``): page images linked, not copied.
"""

from __future__ import annotations

import os
import shutil
import time

from ansible_collections.streamops.day2.plugins.module_utils._docker import DockerError, EngineUnreachable
from ansible_collections.streamops.day2.plugins.module_utils._criu import container as ctr
from ansible_collections.streamops.day2.plugins.module_utils._criu import images as criu_images

# Errors of a restore whose stub had linked pages that a copied stub may cure (pages unreadable by CRIU).
LINK_SUSPECT = ("criu failed", "Can't read pages", "restore failed")


def find_image(engine, wanted, ref=None):
    """The reference to create from on engine for the wanted image identity, or None when it lacks it.

    The tag is used when it names the same image there; else the id of an image with the wanted id or
    the same layers (two engines that imported the same root filesystem hold it under different ids).
    """
    if ref:
        found = ctr.image_identity(engine.image(ref))
        if ctr.same_image(wanted, found):
            return ref
    if wanted.get("id"):
        found = ctr.image_identity(engine.image(wanted["id"]))
        if ctr.same_image(wanted, found):
            return found["id"]
    for image in engine.images():
        candidate = ctr.image_identity(engine.image(image["Id"]))
        if ctr.same_image(wanted, candidate):
            return candidate["id"]
    return None


def ensure_image(target, wanted, ref, source=None, archive=None, check_mode=False):
    """Make sure target holds the wanted image; returns (reference to create from, action or None, bytes moved).

    Transfers it from source (docker save -> docker load, streamed) when source answers, else loads the
    image archive kept in the checkpoint store, else fails.
    """
    found = find_image(target, wanted, ref)
    if found:
        return found, None, 0
    if source is not None:
        action = "transfer image %s (%s) from %s to %s by save/load" % (ref, (wanted.get("id") or "")[:19], source.host, target.host)
        if check_mode:
            return ref, action, 0
        moved = _Counter(source.save_image(saveable_reference(source, wanted.get("id"), ref)))
        target.load_image(moved)
        if ref and wanted.get("id") and not target.image(ref):
            target.tag_image(wanted["id"], ref)
        return (ref if ref and target.image(ref) else wanted["id"]), action, moved.bytes
    if archive and os.path.isfile(archive):
        action = "load image %s from the store's archive %s" % (ref, archive)
        if check_mode:
            return ref, action, 0
        size = os.path.getsize(archive)
        with open(archive, "rb") as handle:
            target.load_image(_file_chunks(handle))
        if ref and wanted.get("id") and not target.image(ref) and target.image(wanted["id"]):
            target.tag_image(wanted["id"], ref)
        found = find_image(target, wanted, ref)
        if not found:
            raise DockerError("Loading %s into %s did not give image %s." % (archive, target.host, wanted.get("id")))
        return found, action, size
    raise DockerError("Image %s (%s) is not on the target engine %s and cannot be transferred (no source engine answers and the "
                      "store keeps no archive of it); load it there first." % (ref, wanted.get("id"), target.host))


def saveable_reference(engine, image_id, ref):
    """Save by tag when the tag names the image (the archive then carries the tag), else by id."""
    if ref and image_id and (engine.image(ref) or {}).get("Id") == image_id:
        return ref
    return image_id or ref


class _Counter:
    """Iterates a stream of chunks and counts the bytes (image transfer size)."""

    def __init__(self, stream):
        self.stream = stream
        self.bytes = 0

    def __iter__(self):
        for chunk in self.stream:
            self.bytes += len(chunk)
            yield chunk


def _file_chunks(handle, size=1 << 20):
    yield from iter(lambda: handle.read(size), b"")


def save_image_archive(engine, image_id, path, ref=None):
    """docker save of an image into a file (written aside, then renamed); returns its bytes."""
    image_ref = saveable_reference(engine, image_id, ref)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = "%s.tmp-%d" % (path, os.getpid())
    written = 0
    try:
        with open(tmp, "wb") as handle:
            for chunk in engine.save_image(image_ref):
                handle.write(chunk)
                written += len(chunk)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return written


def checkpoints_dir(data_root, container_id):
    return os.path.join(data_root, "containers", container_id, "checkpoints")


def require_data_root(engine, data_root, container_id):
    """The engine's data root as seen from this host; fails clearly when this host cannot see it."""
    root = data_root or engine.data_root
    if not root or not os.path.isdir(os.path.join(root, "containers", container_id)):
        raise DockerError("The data root of the engine at %s (%s) is not visible from this host, and a checkpoint can only be "
                          "restored from inside it: run this task on the engine's host (or give its path as data_root)."
                          % (engine.host, root))
    return root


def place_stub(images_dir, data_root, container_id, checkpoint, link_pages=True):
    """Put the checkpoint where the engine restores from; returns (stub path, bytes copied)."""
    stub = os.path.join(checkpoints_dir(data_root, container_id), checkpoint)
    if os.path.lexists(stub):
        shutil.rmtree(stub)
    copied = criu_images.make_restore_stub(images_dir, stub, link_pages=link_pages)
    return stub, copied


def restore(engine, name, container_id, checkpoint, images_dir, data_root, link_pages=True, verify_seconds=1.0):
    """Restore container `name` from the images; returns a dict of what happened (seconds, mode, bytes).

    A failure with linked pages is retried once with a full copy (slower, but independent of how the
    engine unpacks checkpoints). The stub is removed afterwards either way.
    """
    modes = ["link", "copy"] if link_pages else ["copy"]
    first_error = None
    for mode in modes:
        stub, copied = place_stub(images_dir, data_root, container_id, checkpoint, link_pages=(mode == "link"))
        started = time.monotonic()
        try:
            retries = engine.start(container_id, checkpoint=checkpoint)
            seconds = time.monotonic() - started
        except EngineUnreachable:
            raise
        except DockerError as e:
            first_error = first_error or e
            if mode == "link" and any(s in str(e) for s in LINK_SUSPECT) and not _running(engine, container_id):
                continue
            raise DockerError(str(first_error) if mode == "copy" and first_error is not e else str(e))
        finally:
            shutil.rmtree(stub, ignore_errors=True)
        inspect = engine.wait_running(container_id, verify_seconds)
        return dict(restore_seconds=round(seconds, 3), mode=mode, bytes_copied=copied, retries=retries,
                    link_error=str(first_error) if first_error else None, inspect=inspect)
    raise first_error


def _running(engine, container_id):
    found = engine.container(container_id)
    return bool(found and found["State"].get("Running"))
