"""CRIU detection: version parsing, `criu check`, features, and the pre-dump decision (no CRIU needed)."""

import pytest

from ansible_collections.streamops.day2.plugins.module_utils._criu import capability
from ansible_collections.streamops.day2.plugins.module_utils._criu.capability import CriuProblem


@pytest.fixture
def criu_file(tmp_path):
    path = tmp_path / "criu"
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


def fake_run(answers):
    """A run(argv) that answers by the argv's tail, like CRIU would."""
    def run(argv, env=None):
        return answers[tuple(argv[1:])]
    return run


@pytest.mark.parametrize("text, expected", [
    ("Version: 4.1.1\nGitID: v4.1.1\n", (4, 1, 1)),
    ("Version: 3.17\n", (3, 17, 0)),
    ("4.0", (4, 0, 0)),
    ("no version here", None),
])
def test_parse_version(text, expected):
    assert capability.parse_version(text) == expected


def test_last_error_drops_timestamps_and_source_locations():
    log = "(00.1) Dumping\n(00.308240) pie: 1: Error (criu/pie/restorer.c:1835): Can't read pages data (-9)\n(00.4) Unlocking\n"
    assert capability.last_error(log) == "Can't read pages data (-9)"
    assert capability.last_error("Warn  (criu/cr-check.c:824): Dirty tracking is OFF.") == "Dirty tracking is OFF."
    assert capability.last_error("") == "no output"


def test_probe_accepts_a_working_criu(criu_file):
    info = capability.probe(fake_run({("--version",): (0, "Version: 4.1.1\n", ""), ("check",): (0, "Looks good.\n", "")}), criu_file)
    assert info.version == "4.1.1" and info.check_ok and info.version_tuple == (4, 1, 1)


def test_probe_refuses_missing_old_and_failing_criu(criu_file, tmp_path):
    with pytest.raises(CriuProblem, match="CRIU was not found: install CRIU 3.11.0 or newer"):
        capability.probe(fake_run({}), None)
    with pytest.raises(CriuProblem, match="CRIU was not found at .*/nowhere"):
        capability.probe(fake_run({}), str(tmp_path / "nowhere"))
    with pytest.raises(CriuProblem, match=r"CRIU 3.10.0 at .* is too old: checkpoints need CRIU 3.11.0 or newer\."):
        capability.probe(fake_run({("--version",): (0, "Version: 3.10\n", "")}), criu_file)
    failing = fake_run({("--version",): (0, "Version: 3.17\n", ""),
                        ("check",): (1, "", "Error (criu/vdso.c:123): vdso: Unexpected rt vDSO area bounds\n")})
    with pytest.raises(CriuProblem, match=r"fails `criu check` on this kernel \(vdso: Unexpected rt vDSO area bounds\)"):
        capability.probe(failing, criu_file)
    with pytest.raises(CriuProblem, match="does not run"):
        capability.probe(fake_run({("--version",): (126, "", "Permission denied")}), criu_file)


def test_features_and_the_pre_dump_decision(criu_file):
    run = fake_run({("check", "--feature", "mem_dirty_track"): (1, "", "Warn  (criu/cr-check.c:824): Dirty tracking is OFF.\n"),
                    ("check", "--feature", "uffd"): (0, "uffd is supported\n", ""),
                    ("check", "--feature", "uffd-noncoop"): (0, "uffd-noncoop is supported\n", "")})
    info = capability.probe_features(run, capability.CriuInfo(path=criu_file, version="4.1.1", check_ok=True))
    assert info.features["uffd"] == (True, "uffd is supported")
    assert info.features["mem_dirty_track"] == (False, "Dirty tracking is OFF.")
    reason = capability.pre_dump_skip_reason(info)
    assert reason.startswith("pre-dump skipped: this kernel has no soft-dirty page tracking") and "Dirty tracking is OFF." in reason
    assert info.as_dict()["features"]["uffd-noncoop"] == {"supported": True, "detail": "uffd-noncoop is supported"}

    info.features["mem_dirty_track"] = (True, "mem_dirty_track is supported")
    assert capability.pre_dump_skip_reason(info) is None


def test_pre_dump_is_never_assumed_when_not_probed():
    assert "not probed" in capability.pre_dump_skip_reason(capability.CriuInfo(path="/x"))
