# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""De-duplicated, content-addressed page storage for checkpoint versions (the pure parts).

Successive checkpoints of one container share most of their memory pages, and containers of one
image share their libraries' pages; without soft-dirty tracking in the kernel (no incremental
pre-dumps) this is how storage across versions still shrinks. Every image file is cut into 4 KiB
units (CRIU's ``pages-N.img`` holds whole pages, so a unit is a page); a unit is named by its
SHA-256 and stored once. A version writes one *pack* with the units no earlier version had, and an
index of it (``sha256, offset, length`` records); its manifest describes each file as *extents*
(pack, offset, length) over packs, consecutive units of one pack coalesced into one extent.

Page granularity matters: measured on the lab (docs/checkpoint.md), a workload rewriting random
pages at 2 MB/s kept 10 versions of 64 MB in 119 MB with page units, 483 MB with 64 KiB
content-defined chunks (one changed page spoils a whole chunk), 680 MB as plain directories.
"""

from __future__ import annotations

import hashlib
import struct

UNIT = 4096
RECORD = struct.Struct("<32sQI")   # sha256, offset in the pack, length


def units(view, size=UNIT):
    """(offset, length) of the fixed-size units of a buffer of len(view) bytes (the last one may be short)."""
    total = len(view)
    return [(offset, min(size, total - offset)) for offset in range(0, total, size)]


def unit_digest(data):
    return hashlib.sha256(data).digest()


def encode_index(entries):
    """Index records for [(sha256 bytes, offset, length)]."""
    return b"".join(RECORD.pack(sha, offset, length) for sha, offset, length in entries)


def decode_index(data):
    """[(sha256 bytes, offset, length)] of an index file's bytes (a torn last record is ignored)."""
    usable = len(data) - len(data) % RECORD.size
    return list(RECORD.iter_unpack(data[:usable]))


def coalesce(extents):
    """Merge extents [pack, offset, length] that continue each other in the same pack."""
    out = []
    for pack, offset, length in extents:
        if out and out[-1][0] == pack and out[-1][1] + out[-1][2] == offset:
            out[-1][2] += length
        else:
            out.append([pack, offset, length])
    return out
