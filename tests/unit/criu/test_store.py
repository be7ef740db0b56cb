"""The checkpoint store: versions with manifests, formats, verification, pruning, chunk collection, rebuilding."""

import json
import os
import random

import pytest

from ansible_collections.streamops.day2.plugins.module_utils._criu import store as criu_store
from ansible_collections.streamops.day2.plugins.module_utils._criu.store import Store, StoreError


def make_images(path, seed, pages=64, changed=0):
    """A fake CRIU image directory: small files, and page images where `changed` pages differ from seed's."""
    rng = random.Random(seed)
    path.mkdir(parents=True)
    (path / "core-1.img").write_bytes(b"core" * 50)
    (path / "pagemap-1.img").write_bytes(b"map" * 10)
    base = [random.Random(1000 + i).randbytes(4096) for i in range(pages)]
    for index in rng.sample(range(pages), changed):
        base[index] = rng.randbytes(4096)
    (path / "pages-1.img").write_bytes(b"".join(base))
    return path


def add(store, tmp_path, name, fmt, seed=1, changed=0, created_ts=None, compress=False):
    images = make_images(tmp_path / ("src-" + name), seed, changed=changed)
    checkpoint = dict(created="2025-01-01T00:00:00+00:00", created_ts=created_ts or 0)
    manifest = dict(container=dict(name="web", id="abc"), checkpoint=checkpoint)
    return store.add("web", name, str(images), manifest, fmt=fmt, compress=compress)


@pytest.mark.parametrize("fmt, compress", [("directory", False), ("archive", False), ("archive", True), ("dedup", False)])
def test_add_list_verify_rebuild(tmp_path, fmt, compress):
    store = Store(str(tmp_path / "store"), create=True)
    version = add(store, tmp_path, "v1", fmt, compress=compress, created_ts=10)
    assert [v.name for v in store.versions("web")] == ["v1"]
    manifest = json.loads((tmp_path / "store" / "web" / "v1" / "manifest.json").read_text())
    assert manifest["format"] == fmt and manifest["size"] == 200 + 30 + 64 * 4096
    assert manifest["checksum"] == criu_store.files_checksum(manifest["files"])
    assert store.verify(version) == []
    rebuilt, written = store.materialise(version, str(tmp_path / "work"))
    original = tmp_path / "src-v1"
    for name in ("core-1.img", "pagemap-1.img", "pages-1.img"):
        source = original / name if fmt != "directory" else tmp_path / "store" / "web" / "v1" / "images" / name
        assert (tmp_path / "work" / name if fmt != "directory" else source).read_bytes() == source.read_bytes()
    assert written == (0 if fmt == "directory" else manifest["size"])
    assert store.find("web", "latest").name == "v1" and store.find("web", "nope") is None
    assert os.path.isdir(rebuilt)


def test_damage_is_found_and_newest_valid_skips_it(tmp_path):
    store = Store(str(tmp_path / "store"), create=True)
    add(store, tmp_path, "v1", "directory", created_ts=1)
    newest = add(store, tmp_path, "v2", "directory", created_ts=2)
    pages = tmp_path / "store" / "web" / "v2" / "images" / "pages-1.img"
    data = bytearray(pages.read_bytes())
    data[5] ^= 0xFF
    pages.write_bytes(bytes(data))
    assert store.verify(newest) == ["pages-1.img does not match its checksum"]
    assert store.verify(newest, checksums=False) == []
    version, skipped = store.newest_valid("web")
    assert version.name == "v1" and skipped == [("v2", ["pages-1.img does not match its checksum"])]
    pages.write_bytes(bytes(data[:-10]))
    assert "pages-1.img has" in store.verify(newest, checksums=False)[0]


def test_dedup_stores_only_new_pages_and_collects_unused_packs(tmp_path):
    store = Store(str(tmp_path / "store"), create=True)
    first = add(store, tmp_path, "v1", "dedup", seed=1, created_ts=1)
    second = add(store, tmp_path, "v2", "dedup", seed=2, changed=2, created_ts=2)
    third = add(store, tmp_path, "v3", "dedup", seed=2, changed=2, created_ts=3)     # the same content again
    assert first.manifest["stored_bytes"] == 200 + 30 + 64 * 4096
    assert second.manifest["stored_bytes"] == 2 * 4096                              # the two pages that changed
    assert third.manifest["stored_bytes"] == 0 and third.manifest["pack"] is None
    pages = next(f for f in second.manifest["files"] if f["name"] == "pages-1.img")
    assert len(pages["extents"]) <= 5                                               # runs of the first pack, coalesced
    assert store.usage()["pages"] == first.manifest["stored_bytes"] + second.manifest["stored_bytes"] + \
        (tmp_path / "store" / ".pages" / (first.manifest["pack"] + ".idx")).stat().st_size + \
        (tmp_path / "store" / ".pages" / (second.manifest["pack"] + ".idx")).stat().st_size
    assert [v.name for v in store.prune("web", keep=2)] == ["v1"]
    assert store.verify(store.find("web", "v2")) == [] and store.verify(store.find("web", "v3")) == []
    assert (tmp_path / "store" / ".pages" / (first.manifest["pack"] + ".pack")).exists()   # still used by v2 and v3
    store.remove(store.find("web", "v2"))
    store.remove(store.find("web", "v3"))
    assert not list((tmp_path / "store" / ".pages").iterdir())


def test_dedup_damage_and_loss_are_found(tmp_path):
    store = Store(str(tmp_path / "store"), create=True)
    version = add(store, tmp_path, "v1", "dedup")
    pack = tmp_path / "store" / ".pages" / (version.manifest["pack"] + ".pack")
    data = bytearray(pack.read_bytes())
    data[300] ^= 0xFF
    pack.write_bytes(bytes(data))
    assert store.verify(version) == ["pages-1.img does not match its checksum"]
    pack.write_bytes(bytes(data[:1000]))
    assert "is too short" in store.verify(version, checksums=False)[0]
    pack.unlink()
    assert "which is missing" in store.verify(version, checksums=False)[0]


def test_dedup_refuses_compression(tmp_path):
    store = Store(str(tmp_path / "store"), create=True)
    with pytest.raises(StoreError, match="compress applies to the archive format"):
        add(store, tmp_path, "v1", "dedup", compress=True)
    assert store.versions("web") == []


def test_prune_counts_only_prefixed_versions_and_plan_predicts(tmp_path):
    store = Store(str(tmp_path / "store"), create=True)
    for index, name in enumerate(["keepme", "ckpt-1", "ckpt-2", "ckpt-3"]):
        add(store, tmp_path, name, "directory", created_ts=index + 1)
    assert [v.name for v in store.plan_prune("web", 2, "ckpt-", adding=1)] == ["ckpt-2", "ckpt-1"]
    assert [v.name for v in store.prune("web", 2, "ckpt-")] == ["ckpt-1"]
    assert [v.name for v in store.versions("web")] == ["ckpt-3", "ckpt-2", "keepme"]
    assert store.prune("web", 0) == []


def test_half_written_versions_are_never_listed_and_names_are_checked(tmp_path):
    store = Store(str(tmp_path / "store"), create=True)
    tmp = store.new_tmp("web", "v9")
    (tmp_path / "store" / "web" / "v8").mkdir()          # no manifest: not a version
    assert store.versions("web") == [] and os.path.isdir(tmp)
    os.utime(tmp, (1, 1))
    store.clean_stale("web")
    assert not os.path.exists(tmp)
    with pytest.raises(StoreError, match="is not usable: a name is 1 to 128 ASCII letters"):
        store.container_dir("../etc")
    add(store, tmp_path, "v1", "directory")
    with pytest.raises(StoreError, match="already exists"):
        add(store, tmp_path, "v1", "directory", seed=3)
    with pytest.raises(StoreError, match="does not exist"):
        Store(str(tmp_path / "nowhere"))


def test_version_names_sort_by_time_and_suit_docker():
    import datetime
    early = criu_store.version_name("ckpt-", datetime.datetime(2025, 1, 1, 12, 0, 0, 5000, datetime.timezone.utc))
    late = criu_store.version_name("ckpt-", datetime.datetime(2025, 1, 1, 12, 0, 1, 0, datetime.timezone.utc))
    assert early == "ckpt-20250101T120000.005Z" and early < late
    assert criu_store.check_name("Version name", early) == early


@pytest.mark.parametrize("fmt", ["directory", "archive", "dedup"])
def test_nothing_in_the_store_is_readable_by_others_whatever_the_umask(tmp_path, fmt):
    """Checkpoints hold a process's memory: CRIU's images (0644 here), archives, packs and manifests end up 0600, folders 0700."""
    old = os.umask(0o022)
    try:
        store = Store(str(tmp_path / "store"), create=True)
        add(store, tmp_path, "v1", fmt)
        store.set_home("c1", engine="a", how="checkpoint")
    finally:
        os.umask(old)
    opened = []
    for folder, dirs, files in os.walk(store.root):
        for name in dirs + files:
            mode = os.lstat(os.path.join(folder, name)).st_mode & 0o777
            if mode & 0o077:
                opened.append("%s %o" % (os.path.relpath(os.path.join(folder, name), store.root), mode))
    assert os.stat(store.root).st_mode & 0o077 == 0
    assert not opened, opened
