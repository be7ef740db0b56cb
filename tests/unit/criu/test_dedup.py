"""Content-defined chunking of page images: exact cover, bounds, re-synchronisation after a shift."""

import os
import random

from hypothesis import given, settings, strategies as st

from ansible_collections.streamops.day2.plugins.module_utils._criu import dedup

PAGE = dedup.PAGE


def pages(count, seed):
    rng = random.Random(seed)
    return b"".join(rng.randbytes(PAGE) for unused in range(count))


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=300), st.integers(min_value=0, max_value=PAGE - 1), st.integers())
def test_chunks_cover_the_data_exactly_within_bounds(count, tail, seed):
    data = pages(count, seed) + bytes(tail)
    bounds = dedup.chunk_bounds(data)
    assert sum(length for unused, length in bounds) == len(data)
    position = 0
    for offset, length in bounds:
        assert offset == position and length > 0
        position += length
    for offset, length in bounds[:-1]:
        assert dedup.MIN_PAGES * PAGE <= length <= dedup.MAX_PAGES * PAGE and length % PAGE == 0


def test_a_shift_by_whole_pages_keeps_most_chunks():
    data = pages(2048, 1)
    shifted = pages(3, 2) + data[:1000 * PAGE] + data[1001 * PAGE:]   # 3 pages in front, one page dropped mid-way
    before = {dedup.digest(data[o:o + n]) for o, n in dedup.chunk_bounds(data)}
    after = [dedup.digest(shifted[o:o + n]) for o, n in dedup.chunk_bounds(shifted)]
    shared = sum(1 for d in after if d in before)
    assert shared >= len(after) - 6, (shared, len(after))


def test_average_chunk_is_near_the_target():
    bounds = dedup.chunk_bounds(pages(4096, 3))
    average = 4096 / len(bounds)
    assert dedup.AVG_PAGES * 0.6 <= average <= dedup.AVG_PAGES * 1.6


def test_chunk_file_small_and_large(tmp_path):
    small = tmp_path / "small"
    small.write_bytes(b"x" * 100)
    assert list(dedup.chunk_file(str(small))) == [(dedup.digest(b"x" * 100), b"x" * 100)]
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert not list(dedup.chunk_file(str(empty)))
    large = tmp_path / "large"
    content = os.urandom(300 * PAGE + 17)
    large.write_bytes(content)
    pieces = list(dedup.chunk_file(str(large)))
    assert b"".join(data for unused, data in pieces) == content
    assert all(sha == dedup.digest(data) for sha, data in pieces)


def test_encode_decode():
    data = pages(4, 5)
    assert dedup.decode(dedup.encode(data, True), True) == data
    assert dedup.encode(data, False) is data
