# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""CRIU image directories: what is in them, CRIU's dump statistics, and the restore stub.

The restore stub is how a checkpoint reaches an engine fast. ``docker start --checkpoint NAME`` makes
the engine tar ``<data-root>/containers/<id>/checkpoints/NAME`` into containerd's content store,
hash it, and untar it again into a temporary directory for ``runc restore``: for a 256 MB
checkpoint that is seconds of copying while the container is down. The stub holds copies of the
small image files only; every page image (``pages-*.img``, nearly all the bytes) is a *relative*
symbolic link that climbs to ``/`` and goes down to the real file. It survives the tar/untar as a
link, and CRIU opens it relative to its images directory, on the host's root (an absolute link
would be resolved inside the container's root, where the file is not).
"""

from __future__ import annotations

import os
import re
import shutil
import struct

PAGE_FILE = re.compile(r"^pages-\d+\.img$")
# Enough "../" to reach "/" from wherever containerd unpacks a checkpoint ("../" above "/" stays at "/").
CLIMB = "../" * 48

IMG_SERVICE_MAGIC = 0x55105940
STATS_MAGIC = 0x57093306

DUMP_STATS = {1: "freezing_time", 2: "frozen_time", 3: "memdump_time", 4: "memwrite_time", 5: "pages_scanned",
              6: "pages_skipped_parent", 7: "pages_written", 8: "irmap_resolve", 9: "pages_lazy", 10: "page_pipes",
              11: "page_pipe_bufs", 12: "shpages_scanned", 13: "shpages_skipped_parent", 14: "shpages_written"}
RESTORE_STATS = {1: "pages_compared", 2: "pages_skipped_cow", 3: "forking_time", 4: "restore_time", 5: "pages_restored"}
MICROSECONDS = ("freezing_time", "frozen_time", "memdump_time", "memwrite_time", "irmap_resolve", "forking_time", "restore_time")


def is_page_file(name):
    return bool(PAGE_FILE.match(name))


def image_files(images_dir):
    """Names of the regular files of an image directory, sorted (links such as 'parent' excluded)."""
    return sorted(entry.name for entry in os.scandir(images_dir) if entry.is_file(follow_symlinks=False))


def dir_size(path):
    """Bytes of the regular files below path (links not followed)."""
    total = 0
    for base, dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(base, name)
            if not os.path.islink(full):
                total += os.path.getsize(full)
    return total


def page_bytes(images_dir):
    return sum(os.path.getsize(os.path.join(images_dir, n)) for n in image_files(images_dir) if is_page_file(n))


def relative_to_root(path):
    """A relative link target that resolves to the absolute `path` from any directory of the host."""
    return CLIMB + os.path.abspath(path).lstrip("/")


def make_restore_stub(images_dir, stub_dir, link_pages=True):
    """Fill stub_dir so an engine restores from it: small files copied, page files linked (or copied).

    A 'parent' link (pre-dump chain) is re-pointed at the absolute location of the parent images.
    Returns the bytes copied into the stub.
    """
    os.makedirs(stub_dir, exist_ok=True)
    copied = 0
    for entry in sorted(os.scandir(images_dir), key=lambda e: e.name):
        target = os.path.join(stub_dir, entry.name)
        if entry.is_symlink():
            if entry.name == "parent":
                os.symlink(relative_to_root(os.path.realpath(entry.path)), target)
            continue
        if not entry.is_file():
            continue
        if link_pages and is_page_file(entry.name):
            os.symlink(relative_to_root(os.path.realpath(entry.path)), target)
        else:
            shutil.copyfile(entry.path, target)
            copied += entry.stat().st_size
    return copied


# -- CRIU statistics (stats-dump / stats-restore in the work directory) ----------------------------

def _varint(data, pos):
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, pos


def _fields(data):
    """A protobuf message as {field number: value}; nested messages stay bytes (wire type 2)."""
    pos, out = 0, {}
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos:pos + size], pos + size
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", data, pos)[0], pos + 8
        elif wire == 5:
            value, pos = struct.unpack_from("<I", data, pos)[0], pos + 4
        else:
            raise ValueError("unsupported protobuf wire type %d" % wire)
        out[number] = value
    return out


def parse_stats(data):
    """CRIU's stats-dump/stats-restore file: {"dump": {...}} and/or {"restore": {...}}, times in seconds.

    Format: service magic, stats magic, then one length-prefixed stats_entry {dump = 1; restore = 2}.
    """
    if len(data) < 12:
        raise ValueError("stats file too short")
    magic, kind = struct.unpack_from("<II", data, 0)
    if magic != IMG_SERVICE_MAGIC or kind != STATS_MAGIC:
        raise ValueError("not a CRIU stats file")
    size = struct.unpack_from("<I", data, 8)[0]
    entry = _fields(data[12:12 + size])
    out = {}
    for number, key, names in ((1, "dump", DUMP_STATS), (2, "restore", RESTORE_STATS)):
        if number in entry:
            raw = _fields(entry[number])
            out[key] = {names.get(n, "field_%d" % n): (v / 1e6 if names.get(n) in MICROSECONDS else v) for n, v in raw.items()}
    return out


def read_stats(path):
    """parse_stats of a file, or {} when it is missing or unreadable (statistics are a bonus, never a failure)."""
    try:
        with open(path, "rb") as handle:
            return parse_stats(handle.read())
    except (OSError, ValueError, IndexError, struct.error):
        return {}
