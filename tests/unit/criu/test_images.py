"""CRIU image directories: dump statistics, and the restore stub whose page files are relative links to '/'."""

import os
import struct
import tarfile

import pytest

from ansible_collections.streamops.day2.plugins.module_utils._criu import images

# stats-dump written by CRIU 4.1.1 for a 256 MB container (runc checkpoint in the lab).
REAL_STATS_DUMP = bytes.fromhex(
    "4059105506330957290000000a2708e72310edaa30188ee61e20abad1728f58904300038a489044000480050085808600068007000")


def test_parse_real_stats_dump():
    stats = images.parse_stats(REAL_STATS_DUMP)
    dump = stats["dump"]
    assert dump["frozen_time"] == pytest.approx(0.791917)
    assert dump["memdump_time"] == pytest.approx(0.50459) and dump["memwrite_time"] == pytest.approx(0.382635)
    assert dump["pages_scanned"] == 66805 and dump["pages_written"] == 66724 and dump["pages_lazy"] == 0
    assert "restore" not in stats


def _varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def test_parse_restore_stats_and_refuse_other_files():
    restore = _varint(3 << 3) + _varint(1500) + _varint(4 << 3) + _varint(250000) + _varint(5 << 3) + _varint(4096)
    entry = _varint((2 << 3) | 2) + _varint(len(restore)) + restore
    data = struct.pack("<III", images.IMG_SERVICE_MAGIC, images.STATS_MAGIC, len(entry)) + entry
    assert images.parse_stats(data) == {"restore": {"forking_time": 0.0015, "restore_time": 0.25, "pages_restored": 4096}}
    with pytest.raises(ValueError):
        images.parse_stats(b"\x00" * 16)


def test_read_stats_is_never_a_failure(tmp_path):
    assert images.read_stats(tmp_path / "missing") == {}
    (tmp_path / "junk").write_bytes(b"junk")
    assert images.read_stats(tmp_path / "junk") == {}


@pytest.fixture
def dumped(tmp_path):
    """An image directory shaped like CRIU's: small files, page files, and a 'parent' link of a pre-dump chain."""
    pre = tmp_path / "dump" / "pre"
    final = tmp_path / "dump" / "final"
    pre.mkdir(parents=True)
    final.mkdir()
    (pre / "pages-1.img").write_bytes(b"p" * 8192)
    for name, size in (("core-1.img", 300), ("pagemap-1.img", 40), ("pages-1.img", 3 * 4096), ("pages-2.img", 4096)):
        (final / name).write_bytes(os.urandom(size))
    os.symlink("../pre", final / "parent")
    return final


def test_stub_copies_small_files_and_links_pages(dumped, tmp_path):
    stub = tmp_path / "engine" / "checkpoints" / "cp1"
    copied = images.make_restore_stub(str(dumped), str(stub))
    assert copied == 340
    assert sorted(os.listdir(stub)) == ["core-1.img", "pagemap-1.img", "pages-1.img", "pages-2.img", "parent"]
    for name in ("pages-1.img", "pages-2.img", "parent"):
        target = os.readlink(stub / name)
        assert not os.path.isabs(target) and target.startswith(images.CLIMB)
    assert (stub / "pages-1.img").read_bytes() == (dumped / "pages-1.img").read_bytes()
    assert (stub / "parent" / "pages-1.img").read_bytes() == b"p" * 8192
    assert not (stub / "core-1.img").is_symlink()


def test_stub_links_survive_a_tar_round_trip_to_another_directory(dumped, tmp_path):
    """What containerd does to a checkpoint: tar it, untar it elsewhere; the links still reach the pages."""
    stub = tmp_path / "stub"
    images.make_restore_stub(str(dumped), str(stub))
    with tarfile.open(tmp_path / "cp.tar", "w") as tar:
        tar.add(stub, arcname=".")
    unpacked = tmp_path / "deep" / "er" / "ctrd-checkpoint123"
    unpacked.mkdir(parents=True)
    with tarfile.open(tmp_path / "cp.tar") as tar:
        tar.extractall(unpacked, filter="fully_trusted")
    assert (unpacked / "pages-2.img").read_bytes() == (dumped / "pages-2.img").read_bytes()


def test_stub_with_copies_only(dumped, tmp_path):
    stub = tmp_path / "stub"
    copied = images.make_restore_stub(str(dumped), str(stub), link_pages=False)
    assert copied == 340 + 4 * 4096 and not (stub / "pages-1.img").is_symlink()


def test_sizes(dumped):
    assert images.page_bytes(str(dumped)) == 4 * 4096
    assert images.dir_size(str(dumped)) == 340 + 4 * 4096
    assert images.image_files(str(dumped)) == ["core-1.img", "pagemap-1.img", "pages-1.img", "pages-2.img"]
    assert images.is_page_file("pages-12.img") and not images.is_page_file("pagemap-1.img")
