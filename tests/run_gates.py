"""Run the quality gates one after the other and print what passed, failed and was skipped.

Gates: ansible-test sanity, ansible-lint (production profile), Galaxy's importer on the built collection, the
documentation and changelog linters, unit tests, integration tests against the lab, the consumer helper package's
tests, the playbooks as AWX jobs (ansible-runner), the execution environment's build context, every molecule scenario,
and the end-to-end relocation scenarios. A failing gate fails the run, but every gate runs
so one report shows everything. The last line is the plain count CI reads.

    python tests/run_gates.py [sanity lint galaxy docs-lint changelog unit integration consumer awx builder molecule e2e]
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / ".build"
# ansible-test ignores a collection whose path has a hidden folder in it, so not under .build.
SANITY_TREE = (Path(tempfile.gettempdir()) / ("streamops-sanity-%s" % hashlib.sha1(str(ROOT).encode()).hexdigest()[:8])
               / "ansible_collections" / "streamops" / "day2")
# CI keeps only the end of the output: the failures' messages go there too, cut short.
WHY_TESTS, WHY_CHARS = 6, 600
GET_PIP_CACHE = Path.home() / ".ansible" / "test" / "cache"


@dataclass
class Outcome:
    gate: str
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    note: str = ""
    why: list = field(default_factory=list)   # (test, the start of its failure message), for the end of the output


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


def copy_tree(target):
    """A copy of the tracked tree (and new files not ignored) at target, replacing what was there."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                           cwd=ROOT, check=True, capture_output=True).stdout.decode().split("\0")
    shutil.rmtree(target, ignore_errors=True)
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            dst = target / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def sanity():
    """ansible-test needs the collection under ansible_collections/NS/NAME: test a copy of the tracked tree."""
    copy_tree(SANITY_TREE)
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


def build_collection():
    """The collection as Galaxy gets it: `ansible-galaxy collection build` into .build/galaxy/; the tarball or None.
    Built from a copy of the tracked tree: a file edited in the shared work tree while ansible-galaxy hashes and packs
    it would make a tarball whose manifest does not match its files."""
    out = BUILD / "galaxy"
    source = BUILD / "galaxy-src" / "ansible_collections" / "streamops" / "day2"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    copy_tree(source)
    code, _out = run(["ansible-galaxy", "collection", "build", "--force", "--output-path", str(out), str(source)])
    tarballs = sorted(out.glob("streamops-day2-*.tar.gz"))
    return tarballs[0] if code == 0 and tarballs else None


def galaxy():
    """Galaxy's importer on the built tarball, run locally: passes only with no ERROR and every role and plugin documented."""
    tarball = build_collection()
    if tarball is None:
        return Outcome("galaxy", failed=1, note="ansible-galaxy collection build failed")
    env = dict(os.environ, GALAXY_IMPORTER_RUN_ANSIBLE_TEST="false", GALAXY_IMPORTER_CHECK_CHANGELOG="true")
    # The importer's ansible-lint run (production profile minus some rules, ~2 min) only logs warnings; the lint gate runs
    # the full profile. GALAXY_IMPORTER_RUN_ANSIBLE_LINT=true in the environment turns it back on.
    env.setdefault("GALAXY_IMPORTER_RUN_ANSIBLE_LINT", "false")
    code, out = run([sys.executable, "-m", "galaxy_importer.main", tarball.name], cwd=tarball.parent, env=env)
    problems = [line for line in out.splitlines() if line.startswith("ERROR")]
    if code != 0 or "Importer processing completed successfully" not in out:
        problems.append("the import did not complete (rc %d)" % code)
    result = tarball.parent / "importer_result.json"
    if not problems and result.exists():
        # What the Galaxy UI shows per content: a README for each role, ansible-doc's docs for each module and filter.
        for content in json.loads(result.read_text())["docs_blob"]["contents"]:
            if content["content_type"] == "role" and not content.get("readme_html"):
                problems.append("role %s has no README" % content["content_name"])
            if content["content_type"] in ("module", "filter") and not content.get("doc_strings"):
                problems.append("%s %s has no documentation" % (content["content_type"], content["content_name"]))
    warnings = sum(line.startswith("WARNING") for line in out.splitlines())
    note = "; ".join(problems)[:200] or ("%d warning(s)" % warnings if warnings else "")
    return Outcome("galaxy", passed=int(not problems), failed=int(bool(problems)), note=note)


def docs_lint():
    """antsibull-docs on every plugin's and role's documentation (schema, markup, references); it copies the collection
    into an ansible_collections tree of its own."""
    code, _out = run(["antsibull-docs", "lint-collection-docs", "--plugin-docs", "--validate-collection-refs", "all",
                      "--disallow-unknown-collection-refs", "."])
    return Outcome("docs-lint", passed=int(code == 0), failed=int(code != 0))


def changelog():
    """antsibull-changelog: the fragments, changelogs/changelog.yaml, and a release of galaxy.yml's version made from them
    in a scratch copy (its plugins scanned with ansible-doc), whose changelog.yaml passes the strict lint too."""
    codes = [run(["antsibull-changelog", "lint"])[0],
             run(["antsibull-changelog", "lint-changelog-yaml", "--strict", "changelogs/changelog.yaml"])[0]]
    with tempfile.TemporaryDirectory(prefix="streamops-changelog-") as scratch:
        copy = Path(scratch) / "ansible_collections" / "streamops" / "day2"
        for name in ("changelogs", "plugins", "roles", "meta"):
            shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy2(ROOT / "galaxy.yml", copy / "galaxy.yml")
        version = re.search(r"^version:\s*(\S+)", (ROOT / "galaxy.yml").read_text(), re.M).group(1)
        env = {k: v for k, v in os.environ.items() if k not in ("ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_CONFIG")}
        codes.append(run(["antsibull-changelog", "release", "--version", version], cwd=copy, env=env)[0])
        if codes[-1] == 0:
            codes.append(run(["antsibull-changelog", "lint-changelog-yaml", "--strict", str(copy / "changelogs" / "changelog.yaml")])[0])
    failed = sum(code != 0 for code in codes)
    return Outcome("changelog", passed=len(codes) - failed, failed=failed)


def builder():
    """ansible-builder on the collection as built: its EE metadata introspected the way a user's EE build reads it, and
    meta/execution-environment.yml turned into a build context (Containerfile and requirement files). No image is built."""
    tarball = build_collection()
    if tarball is None:
        return Outcome("builder", failed=1, note="ansible-galaxy collection build failed")
    tree = BUILD / "ee" / "collections"
    collection = tree / "ansible_collections" / "streamops" / "day2"
    context = BUILD / "ee" / "context"
    shutil.rmtree(BUILD / "ee", ignore_errors=True)
    collection.mkdir(parents=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(collection, filter="data")
    problems = []
    code, out = run(["ansible-builder", "introspect", str(tree)])
    wanted = [line.split("==")[0] for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#") and not line.startswith("ansible-core")]
    missing = [name for name in wanted if "'%s" % name not in out]
    if code != 0 or missing or "criu" not in out:
        problems.append("introspection lacks %s" % (", ".join(missing) or "criu"))
    # The definition's paths are relative to the collection root (introspection reads them so): create from there.
    shutil.copy2(collection / "meta" / "execution-environment.yml", collection / "execution-environment.yml")
    code, out = run(["ansible-builder", "create", "-f", str(collection / "execution-environment.yml"), "--context", str(context),
                     "--output-filename", "Containerfile"])
    containerfile = context / "Containerfile"
    text = containerfile.read_text() if containerfile.exists() else ""
    for name, source in (("requirements.txt", ROOT / "requirements.txt"), ("bindep.txt", ROOT / "bindep.txt")):
        built = context / "_build" / name
        if not built.is_file() or built.read_text() != source.read_text():
            problems.append("_build/%s missing or not the collection's" % name)
        elif "COPY _build/%s" % name not in text:
            problems.append("Containerfile does not copy %s" % name)
    if code != 0 or "ansible-core==" not in text:
        problems.append("ansible-builder create failed or the Containerfile installs no ansible-core")
    return Outcome("builder", passed=int(not problems), failed=int(bool(problems)), note="; ".join(problems)[:200])


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
        # The failed tests' names in the table: CI keeps only the end of the output.
        failed = []
        for case in suite.iter("testcase"):
            problem = case.find("failure") if case.find("failure") is not None else case.find("error")
            if problem is not None:
                failed.append("%s::%s" % (case.get("classname", "").rsplit(".", 1)[-1], case.get("name")))
                outcome.why.append((failed[-1], " ".join((problem.get("message") or "").split())[:WHY_CHARS]))
        outcome.note = ("failed: " + ", ".join(failed))[:600] if failed else ""
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
    "galaxy": galaxy,
    "docs-lint": docs_lint,
    "changelog": changelog,
    "unit": lambda: pytest_gate("unit", ROOT / "tests" / "unit"),
    "integration": lambda: pytest_gate("integration", ROOT / "tests" / "integration"),
    "consumer": lambda: pytest_gate("consumer", ROOT / "consumer" / "tests"),
    # The jobs' private data dirs (artifacts/ as AWX keeps them) stay in .build/awx-jobs for a look afterwards.
    "awx": lambda: pytest_gate("awx", ROOT / "tests" / "awx", "--basetemp", str(BUILD / "awx-jobs")),
    "builder": builder,
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
    why = [item for o in outcomes for item in o.why]
    if why:
        print("\nwhy they failed (the whole story is in .build/junit-<gate>.xml):")
        for test, message in why[:WHY_TESTS]:
            print("  %s: %s" % (test, message))
    passed, failed, skipped = (sum(getattr(o, k) for o in outcomes) for k in ("passed", "failed", "skipped"))
    print("TOTAL: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("ANSIBLE_FORCE_COLOR", "0")
    sys.exit(main(sys.argv[1:]))
