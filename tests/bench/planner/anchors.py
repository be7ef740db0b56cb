# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The anchors the planner is compared with, run on the same model files.

- Kafka's --generate: the lab's Kafka jars (tests/lab/kafka.sh fetch), driven by java/KafkaGenerate.java.
- Cruise Control's optimizer: its jars from Maven Central (cruise-control/pom.xml), driven by
  cruise-control/CruiseControlBench.java. Benchmark only; never a runtime dependency.

Compiled classes and fetched jars are cached under .lab/bench/planner/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
CACHE = ROOT / ".lab" / "bench" / "planner"
KAFKA_LIBS = ROOT / ".lab" / "kafka" / "libs"


class Unavailable(Exception):
    """An anchor that cannot run on this machine (the reason is reported in the table)."""


def timed(cmd, **kwargs):
    """Run cmd under GNU time: (stdout, wall seconds, user+sys seconds, peak RSS in MB)."""
    timing = CACHE / "time.txt"
    CACHE.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["/usr/bin/time", "-o", str(timing), "-f", "%e %U %S %M"] + list(cmd),
                          capture_output=True, text=True, check=False, **kwargs)
    if proc.returncode != 0:
        raise RuntimeError("%s failed (rc %d): %s" % (cmd[0], proc.returncode, (proc.stderr or proc.stdout)[-2000:]))
    wall, user, system, rss_kb = timing.read_text().split()[-4:]
    return proc.stdout, float(wall), float(user) + float(system), int(rss_kb) / 1024.0


def _compile(source, classpath, out):
    out.mkdir(parents=True, exist_ok=True)
    marker = out / (source.stem + ".class")
    if marker.exists() and marker.stat().st_mtime >= source.stat().st_mtime:
        return
    if not shutil.which("javac"):
        raise Unavailable("no javac on this machine")
    subprocess.run(["javac", "-nowarn", "-d", str(out), "-cp", classpath, str(source)], check=True, capture_output=True, text=True)


def kafka_generate(model_path, excluded=()):
    """Kafka's --generate proposal for the model: (partitions, figures)."""
    if not KAFKA_LIBS.is_dir():
        raise Unavailable("the lab's Kafka jars are missing (run tests/lab/kafka.sh fetch)")
    classes = CACHE / "classes"
    classpath = "%s/*" % KAFKA_LIBS
    _compile(HERE / "java" / "KafkaGenerate.java", classpath, classes)
    out, wall, cpu, rss = timed(["java", "-Xmx2g", "-cp", "%s:%s" % (classpath, classes), "KafkaGenerate", str(model_path)] + list(excluded))
    result = json.loads(out)
    return result["partitions"], {"seconds": result["seconds"], "process_seconds": wall, "cpu": cpu, "rss_mb": rss}


CC_DIR = HERE / "cruise-control"
CC_CACHE = CACHE / "cruise-control"
CC_LIBS = CC_CACHE / "libs"
# Cruise Control's sources (a checkout or `git archive` of linkedin/cruise-control): see cruise_control_classpath.
CC_SOURCE = Path(os.environ.get("CRUISE_CONTROL_SRC", str(CC_CACHE / "src")))
CC_MODULES = ("cruise-control-core", "cruise-control-metrics-reporter", "cruise-control")


def cruise_control_classpath():
    """Cruise Control's class path: its dependencies fetched from Maven Central with Maven, and its own
    classes compiled from source, both cached under .lab/bench/planner/cruise-control/.

    Cruise Control's jars are not on Maven Central (LinkedIn publishes them to linkedin.jfrog.io,
    which these machines cannot reach), so its sources are compiled here; put them at
    .lab/bench/planner/cruise-control/src (or point CRUISE_CONTROL_SRC at them).
    """
    pom = CC_DIR / "pom.xml"
    stamp = CC_LIBS / ".pom-stamp"
    if not (stamp.exists() and stamp.read_text() == pom.read_text()):
        if not shutil.which("mvn"):
            raise Unavailable("no mvn on this machine to fetch Cruise Control's dependencies")
        shutil.rmtree(CC_LIBS, ignore_errors=True)
        proc = subprocess.run(["mvn", "-B", "-q", "-f", str(pom), "-Dmaven.repo.local=%s" % (ROOT / ".lab" / "m2"),
                               "-Dbench.libs.dir=%s" % CC_LIBS, "dependency:copy-dependencies"], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise Unavailable("fetching Cruise Control's dependencies failed: %s" % (proc.stdout + proc.stderr)[-300:])
        stamp.write_text(pom.read_text())
    libs = "%s/*" % CC_LIBS
    if not (CC_SOURCE / "cruise-control" / "src" / "main" / "java").is_dir():
        raise Unavailable("Cruise Control's sources are not at %s (its jars are not on Maven Central; see tests/bench/README.md)" % CC_SOURCE)
    classes = CC_CACHE / "cc-classes"
    marker = classes / ".source"
    source_id = (CC_SOURCE / "COMMIT").read_text().strip() if (CC_SOURCE / "COMMIT").exists() else str(CC_SOURCE)
    if not (marker.exists() and marker.read_text() == source_id):
        shutil.rmtree(classes, ignore_errors=True)
        classes.mkdir(parents=True)
        files = [str(f) for module in CC_MODULES for f in (CC_SOURCE / module / "src" / "main" / "java").rglob("*.java")]
        listing = CC_CACHE / "sources.txt"
        listing.write_text("\n".join(files))
        proc = subprocess.run(["javac", "-nowarn", "-proc:none", "-d", str(classes), "-cp", libs, "@%s" % listing],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise Unavailable("compiling Cruise Control failed: %s" % proc.stderr[-300:])
        marker.write_text(source_id)
    return "%s:%s" % (libs, classes)


def cruise_control(model_path, excluded=()):
    """Cruise Control's GoalOptimizer proposal for the model (its shipped configuration): (partitions, figures)."""
    classpath = cruise_control_classpath()
    classes = CC_CACHE / "classes"
    _compile(CC_DIR / "CruiseControlBench.java", classpath, classes)
    shipped = CC_SOURCE / "config" / "cruisecontrol.properties"
    out, wall, cpu, rss = timed(["java", "-Xmx6g", "-cp", "%s:%s" % (classpath, classes), "CruiseControlBench", str(model_path),
                                 str(shipped)] + list(excluded))
    result = json.loads(out)
    return result["partitions"], {"seconds": result["seconds"], "process_seconds": wall, "cpu": cpu, "rss_mb": rss,
                                  "note": result.get("note", "")}
