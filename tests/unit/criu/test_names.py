"""The one rule for names that become paths (names.py): a property test with hostile names (pure)."""

import os

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.streamops.day2.plugins.module_utils._criu import names
from ansible_collections.streamops.day2.plugins.module_utils._criu.store import Store, StoreError, version_name

HOSTILE_PIECES = ["..", ".", "/", "\\", "\x00", "\n", "\r", "\t", " ", "~", "$", "*", "é", "\u202e", "\U0001F600", "٣", "a", "Z", "0",
                  "_", "-", "ckpt", "x" * 130]
hostile = st.one_of(
    st.lists(st.sampled_from(HOSTILE_PIECES), max_size=6).map("".join),
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="ascii"), max_size=140),
)


def safe_component(name, root="/store"):
    """What a name accepted by the rule must be: one plain path component directly under root."""
    path = os.path.normpath(os.path.join(root, name))
    return (os.path.dirname(path) == root and os.path.basename(path) == name and name not in (".", "..")
            and not name.startswith((".", "-")) and name.isascii() and name.isprintable() and " " not in name
            and 0 < len(name) <= names.NAME_MAX)


@settings(max_examples=3000, deadline=None)
@given(hostile)
def test_a_name_is_accepted_only_when_it_is_one_safe_path_component(name):
    try:
        accepted = names.check_name("Checkpoint name", name)
    except names.BadName as e:
        message = str(e)
        assert message.startswith("Checkpoint name ") and message.endswith("starting with a letter or digit.")
        assert "\n" not in message and "\x00" not in message and len(message) < 200
        return
    assert accepted == name and safe_component(name)


@settings(max_examples=1000, deadline=None)
@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", fullmatch=True))
def test_every_name_the_docs_allow_is_accepted(name):
    assert names.check_name("Checkpoint name", name) == name


@settings(max_examples=1000, deadline=None)
@given(hostile)
def test_a_prefix_is_accepted_only_when_every_version_name_it_makes_follows_the_rule(prefix):
    try:
        names.check_prefix(prefix)
    except names.BadName as e:
        assert str(e).startswith("The prefix ")
        return
    assert safe_component(version_name(prefix))


@settings(max_examples=500, deadline=None)
@given(hostile)
def test_store_paths_never_leave_the_store(tmp_path_factory, name):
    root = tmp_path_factory.mktemp("store")
    store = Store(str(root), create=True)
    try:
        path = store.container_dir(name)
    except StoreError:
        return
    assert os.path.dirname(path) == str(root)


@pytest.mark.parametrize("name", ["/counter", "counter", "0123abcdef" * 6 + "abcd"])
def test_container_names_as_docker_prints_them(name):
    assert names.check_container(name) == name.lstrip("/")


@pytest.mark.parametrize("name", ["//counter", "../counter", "/", "", None, "a/b"])
def test_container_names_that_are_not_one_component(name):
    with pytest.raises(names.BadName, match="^Container name .* is not usable: a name is 1 to 128 ASCII letters"):
        names.check_container(name)


def test_the_old_pattern_let_a_trailing_newline_and_a_long_name_through():
    with pytest.raises(names.BadName):
        names.check_name("Version name", "ckpt\n")
    with pytest.raises(names.BadName):
        names.check_name("Version name", "a" * 129)
    assert names.check_name("Version name", "a" * 128)
