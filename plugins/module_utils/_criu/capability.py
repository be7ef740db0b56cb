# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which CRIU is there, is it new enough, does it work on this kernel, which features does the kernel offer.

Capabilities are detected, never assumed: ``criu check`` for the basics, ``criu check --feature NAME``
for the optional ones. The parsing is pure (unit-tested); ``probe``/``feature`` take a ``run(argv)``
callable returning ``(rc, stdout, stderr)`` (``AnsibleModule.run_command`` fits).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

# runc 1.1 refuses CRIU older than 3.0; 3.11 is the first release that reads runc's per-container
# configuration file, and older releases fail on the kernels engines run today. Below it: "too old".
MIN_CRIU_VERSION = (3, 11, 0)

# The optional kernel features the collection uses, and what for.
FEATURES = {
    "mem_dirty_track": "soft-dirty page tracking, needed by pre-dump and --track-mem (incremental, pre-copy dumps)",
    "uffd": "userfaultfd, needed by lazy pages (post-copy restore)",
    "uffd-noncoop": "non-cooperative userfaultfd, needed by lazy pages of processes that fork or remap memory",
}


class CriuProblem(Exception):
    """CRIU is missing, too old or fails its own check: one sentence for the user."""


@dataclass
class CriuInfo:
    path: str | None
    version: str | None = None
    check_ok: bool = False
    check_output: str = ""
    features: dict = field(default_factory=dict)

    @property
    def version_tuple(self):
        return parse_version(self.version or "")

    def as_dict(self):
        return dict(path=self.path, version=self.version, check_ok=self.check_ok,
                    features={name: dict(supported=ok, detail=detail) for name, (ok, detail) in sorted(self.features.items())})


def parse_version(text):
    """(major, minor, patch) from ``criu --version`` output or a bare "4.1.1"; None when absent."""
    match = re.search(r"(?:Version:\s*)?\b(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if not match:
        return None
    return tuple(int(p or 0) for p in match.groups())


def version_text(version):
    return ".".join(str(p) for p in version) if version else "unknown"


def last_error(text):
    """The most telling line of CRIU's output: the last one naming an error, else the last line."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "error" in line or "fail" in line.lower():
            return _plain(line)
    return _plain(lines[-1]) if lines else "no output"


def _plain(line):
    """A CRIU log line without its timestamp and source location: "(00.1) Error (criu/x.c:12): text" -> "text"."""
    line = re.sub(r"^\(\s*[\d.]+\)\s*", "", line)
    return re.sub(r"^(?:\d+:\s*)?(?:pie:\s*\d+:\s*)?(Error|Warn)\s*\([^)]*\):\s*", "", line)


def check_passed(rc, stdout, stderr):
    """``criu check`` prints "Looks good." (to stdout or stderr depending on the release) and exits 0."""
    return rc == 0 and "Looks good" in "%s\n%s" % (stdout, stderr)


def probe(run, path):
    """Version and ``criu check`` of the CRIU at path; raises CriuProblem when it is missing, too old or failing."""
    if not path:
        raise CriuProblem("CRIU was not found: install CRIU %s or newer on the engine's host and give its path in criu_path "
                          "(or the CRIU_BIN environment variable, or put criu on PATH)." % version_text(MIN_CRIU_VERSION))
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise CriuProblem("CRIU was not found at %s: install CRIU %s or newer on the engine's host, or give its path in criu_path."
                          % (path, version_text(MIN_CRIU_VERSION)))
    rc, out, err = run([path, "--version"])
    if rc != 0:
        raise CriuProblem("CRIU at %s does not run (%s)." % (path, last_error(err or out)))
    info = CriuInfo(path=path)
    version = parse_version(out)
    info.version = version_text(version) if version else None
    if version is None:
        raise CriuProblem("CRIU at %s printed no version (%s)." % (path, last_error(out + err)))
    if version < MIN_CRIU_VERSION:
        raise CriuProblem("CRIU %s at %s is too old: checkpoints need CRIU %s or newer." % (info.version, path, version_text(MIN_CRIU_VERSION)))
    rc, out, err = run([path, "check"])
    info.check_output = (out + err).strip()
    info.check_ok = check_passed(rc, out, err)
    if not info.check_ok:
        raise CriuProblem("CRIU %s at %s fails `criu check` on this kernel (%s); a newer CRIU or kernel is needed."
                          % (info.version, path, last_error(out + err)))
    return info


def feature(run, path, name):
    """(supported, detail) of one ``criu check --feature NAME``; never raises."""
    rc, out, err = run([path, "check", "--feature", name])
    text = (out + err).strip()
    if rc == 0:
        return True, last_line(text) or "%s is supported" % name
    return False, last_error(text)


def last_line(text):
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def probe_features(run, info, names=tuple(FEATURES)):
    for name in names:
        info.features[name] = feature(run, info.path, name)
    return info


def pre_dump_skip_reason(info):
    """Why pre-dump cannot be used with this CRIU/kernel, or None when it can.

    Pre-dump must never be tried without the feature: on a kernel without soft-dirty tracking some CRIU
    releases crash in pre-dump instead of refusing it.
    """
    supported, detail = info.features.get("mem_dirty_track") or (False, "not probed")
    if supported:
        return None
    return ("pre-dump skipped: this kernel has no soft-dirty page tracking (`criu check --feature mem_dirty_track`: %s), "
            "so CRIU cannot take incremental pre-copy dumps here; a single full dump is taken instead." % detail)
