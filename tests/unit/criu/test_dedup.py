"""Page-granular dedup: units, index records, extent coalescing (pure)."""

import os

from hypothesis import given, strategies as st

from ansible_collections.streamops.day2.plugins.module_utils._criu import dedup


@given(st.integers(min_value=0, max_value=5 * dedup.UNIT))
def test_units_cover_a_buffer_exactly(size):
    bounds = dedup.units(b"x" * size)
    assert sum(length for unused, length in bounds) == size
    assert all(length == dedup.UNIT for unused, length in bounds[:-1])
    assert [offset for offset, unused in bounds] == list(range(0, size, dedup.UNIT))


def test_index_records_round_trip_and_a_torn_tail_is_ignored():
    entries = [(os.urandom(32), 0, 4096), (os.urandom(32), 4096, 100)]
    data = dedup.encode_index(entries)
    assert len(data) == 2 * dedup.RECORD.size
    assert dedup.decode_index(data) == entries
    assert dedup.decode_index(data + b"\x01\x02") == entries


def test_coalesce_merges_runs_of_one_pack_only():
    extents = [["p1", 0, 4096], ["p1", 4096, 4096], ["p2", 0, 4096], ["p1", 8192, 4096], ["p1", 0, 4096], ["p1", 4096, 10]]
    assert dedup.coalesce(extents) == [["p1", 0, 8192], ["p2", 0, 4096], ["p1", 8192, 4096], ["p1", 0, 4106]]
    assert dedup.coalesce([]) == []


def test_unit_digest_is_sha256():
    assert dedup.unit_digest(b"abc").hex() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
