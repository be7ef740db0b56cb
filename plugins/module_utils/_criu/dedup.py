# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Content-defined chunking of CRIU images for de-duplicated, content-addressed storage (pure).

Successive checkpoints of one container share most of their memory pages, and containers of one
image share their libraries' pages, but the pages do not sit at the same offsets of ``pages-N.img``
from one dump to the next (a new mapping shifts everything after it). Chunk boundaries are
therefore chosen by content, at page granularity: a chunk ends after a page whose CRC32 has its
low bits set (about one page in ``avg_pages``), never before ``min_pages`` pages and always at
``max_pages``. A shifted run of pages re-synchronises at the next boundary page, and equal chunks
get equal SHA-256 names, so each distinct chunk is stored once. Without soft-dirty tracking in the
kernel this is how storage across versions shrinks (see docs/checkpoint.md for measurements).
"""

from __future__ import annotations

import hashlib
import mmap
import zlib

PAGE = 4096
AVG_PAGES = 16      # 64 KiB chunks on average
MIN_PAGES = 4
MAX_PAGES = 64      # 256 KiB at most
SMALL_FILE = MIN_PAGES * PAGE


def chunk_bounds(data, avg_pages=AVG_PAGES, min_pages=MIN_PAGES, max_pages=MAX_PAGES, page=PAGE):
    """(offset, length) of the content-defined chunks of a bytes-like object, in order, covering it exactly."""
    if avg_pages & (avg_pages - 1):
        raise ValueError("avg_pages must be a power of two")
    mask = avg_pages - 1
    view = memoryview(data)
    size = len(view)
    bounds = []
    start = pos = 0
    while pos < size:
        end = min(pos + page, size)
        pages = (end - start + page - 1) // page
        if end == size or pages >= max_pages or (pages >= min_pages and zlib.crc32(view[pos:end]) & mask == mask):
            bounds.append((start, end - start))
            start = end
        pos = end
    return bounds


def digest(data):
    return hashlib.sha256(data).hexdigest()


def chunk_file(path, avg_pages=AVG_PAGES, min_pages=MIN_PAGES, max_pages=MAX_PAGES):
    """Yield (sha256 hex, bytes) for each chunk of the file at path; one chunk for a small file."""
    with open(path, "rb") as handle:
        data = handle.read(SMALL_FILE + 1)
        if len(data) <= SMALL_FILE:
            if data:
                yield digest(data), bytes(data)
            return
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            try:
                bounds = chunk_bounds(view, avg_pages, min_pages, max_pages)
            finally:
                view.release()
            for offset, length in bounds:
                data = mapped[offset:offset + length]
                yield digest(data), data


def encode(data, compress):
    return zlib.compress(data, 1) if compress else data


def decode(data, compressed):
    return zlib.decompress(data) if compressed else data
