"""Run the quality gates one after the other and print what passed, failed and was skipped.

Gates: ansible-test sanity, ansible-lint (production profile), unit tests, integration tests
against the lab, the consumer helper package's tests, every molecule scenario, and the end-to-end
relocation scenarios. A failing gate fails the run, but every gate runs
so one report shows everything. The last line is the plain count CI reads.

    python tests/run_gates.py [sanity lint unit integration consumer molecule e2e]
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / ".build"
# ansible-test ignores a collection whose path has a hidden folder in it, so not under .build.
SANITY_TREE = (Path(tempfile.gettempdir()) / ("streamops-sanity-%s" % hashlib.sha1(str(ROOT).encode()).hexdigest()[:8])
               / "ansible_collections" / "streamops" / "day2")
GET_PIP_CACHE = Path.home() / ".ansible" / "test" / "cache"


@dataclass
class Outcome:
    gate: str
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    note: str = ""


def run(cmd, cwd=ROOT, env=None):
    """Run a command with its output streamed to ours and kept for parsing."""
    print("\n$ " + " ".join(str(c) for c in cmd), flush=True)
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        lines.append(line)
    proc.wait()
    return proc.returncode, "".join(lines)


def sanity():
    """ansible-test needs the collection under ansible_collections/NS/NAME: test a copy of the tracked tree."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                           cwd=ROOT, check=True, capture_output=True).stdout.decode().split("\0")
    shutil.rmtree(SANITY_TREE, ignore_errors=True)
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            dst = SANITY_TREE / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    # ansible-test bootstraps pip in its virtualenvs with a script from a host we cannot reach.
    pip_version = _ansible_test_pip_version()
    GET_PIP_CACHE.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "tests" / "sanity" / "get_pip.py", GET_PIP_CACHE / ("get_pip_%s.py" % pip_version.replace(".", "_")))
    py = "%d.%d" % sys.version_info[:2]
    code, out = run(["ansible-test", "sanity", "--venv", "--python", py, "--color", "no"], cwd=SANITY_TREE)
    ran = set(re.findall(r'Running sanity test "([\w-]+)"', out))
    skipped = set(re.findall(r"Skipping sanity test \"?'?([\w-]+)", out))
    failed_match = re.search(r"The (\d+) sanity test\(s\) listed below \(out of (\d+)\) failed", out)
    failed = int(failed_match.group(1)) if failed_match else (1 if code else 0)
    return Outcome("sanity", passed=max(len(ran) - failed, 0), failed=failed, skipped=len(skipped))


def _ansible_test_pip_version():
    from ansible_test._internal import python_requirements
    source = Path(python_requirements.__file__).read_text()
    return re.search(r"pip='([\d.]+)'", source).group(1)


def lint():
    code, out = run(["ansible-lint", "--profile", "production", "--offline"])
    return Outcome("ansible-lint", passed=int(code == 0), failed=int(code != 0))


def pytest_gate(name, path, *extra):
    report = BUILD / ("junit-%s.xml" % name)
    code, out = run([sys.executable, "-m", "pytest", str(path), "-ra", "--junitxml", str(report), *extra])
    outcome = Outcome(name)
    if report.exists():
        suite = ET.parse(report).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        total, errors, failures, skips = (int(suite.get(k, 0)) for k in ("tests", "errors", "failures", "skipped"))
        outcome.failed, outcome.skipped = errors + failures, skips
        outcome.passed = total - outcome.failed - skips
    if code not in (0, 5) and outcome.failed == 0:  # pytest itself broke (collection error, bad option)
        outcome.failed = 1
    if code == 5:
        outcome.note = "no tests collected"
    return outcome


def molecule():
    outcomes = []
    for scenario in sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml")):
        start = time.monotonic()
        # Molecule installs a snapshot of the collection under ANSIBLE_HOME: keep it in .build, not in
        # ~/.ansible where ansible-lint would later find a stale copy.
        env = dict(os.environ, ANSIBLE_HOME=str(BUILD / "ansible-home"))
        code, out = run(["molecule", "test", "-s", scenario], env=env)
        outcomes.append(Outcome("molecule/" + scenario, passed=int(code == 0), failed=int(code != 0),
                                seconds=time.monotonic() - start))
    return outcomes


GATES = {
    "sanity": sanity,
    "lint": lint,
    "unit": lambda: pytest_gate("unit", ROOT / "tests" / "unit"),
    "integration": lambda: pytest_gate("integration", ROOT / "tests" / "integration"),
    "consumer": lambda: pytest_gate("consumer", ROOT / "consumer" / "tests"),
    "molecule": molecule,
    # Last: the longest, and it needs every part of the lab (Kafka, Kubernetes) at once.
    "e2e": lambda: pytest_gate("e2e", ROOT / "tests" / "e2e"),
}


def main(names):
    BUILD.mkdir(exist_ok=True)
    outcomes = []
    for name in names or list(GATES):
        start = time.monotonic()
        result = GATES[name]()
        for outcome in result if isinstance(result, list) else [result]:
            outcome.seconds = outcome.seconds or time.monotonic() - start
            outcomes.append(outcome)

    print("\n%-28s %7s %7s %8s %8s" % ("gate", "passed", "failed", "skipped", "seconds"))
    for o in outcomes:
        print("%-28s %7d %7d %8d %8.1f %s" % (o.gate, o.passed, o.failed, o.skipped, o.seconds, o.note))
    passed, failed, skipped = (sum(getattr(o, k) for o in outcomes) for k in ("passed", "failed", "skipped"))
    print("TOTAL: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("ANSIBLE_FORCE_COLOR", "0")
    sys.exit(main(sys.argv[1:]))
