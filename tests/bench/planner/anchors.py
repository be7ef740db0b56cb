# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The anchors the planner is compared with, run on the same model files.

- Kafka's --generate: the lab's Kafka jars (tests/lab/kafka.sh fetch), driven by java/KafkaGenerate.java.
- Cruise Control's optimizer: only from a class path the user supplies in CRUISE_CONTROL_CLASSPATH
  (Cruise Control's jars and their dependencies), driven by cruise-control/CruiseControlBench.java;
  the harness builds nothing of Cruise Control's. Benchmark only; never a runtime dependency.

The harness's own compiled classes are cached under .lab/bench/planner/.
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
CC_UNAVAILABLE = "unavailable (set CRUISE_CONTROL_CLASSPATH)"


def cruise_control_classpath():
    """The class path the user supplies in CRUISE_CONTROL_CLASSPATH: Cruise Control's jars and their
    dependencies, however they were obtained. The harness builds nothing of Cruise Control's; without
    the variable the anchor is unavailable and the rest of the benchmark runs.
    """
    classpath = os.environ.get("CRUISE_CONTROL_CLASSPATH", "").strip()
    if not classpath:
        raise Unavailable(CC_UNAVAILABLE)
    return classpath


def cruise_control_config():
    """Cruise Control's configuration file (CRUISE_CONTROL_CONFIG, e.g. the config/cruisecontrol.properties
    of its distribution): (path, note). Without it, an empty file: Cruise Control's built-in defaults."""
    config = os.environ.get("CRUISE_CONTROL_CONFIG", "").strip()
    if config:
        if not os.path.isfile(config):
            raise Unavailable("CRUISE_CONTROL_CONFIG names %s, which is not a file" % config)
        return config, "configuration %s" % config
    CC_CACHE.mkdir(parents=True, exist_ok=True)
    empty = CC_CACHE / "defaults.properties"
    empty.write_text("# Cruise Control's built-in defaults (CRUISE_CONTROL_CONFIG unset)\n")
    return str(empty), "Cruise Control's built-in defaults (CRUISE_CONTROL_CONFIG unset)"


def cruise_control(model_path, excluded=()):
    """Cruise Control's GoalOptimizer proposal for the model, from the user's CRUISE_CONTROL_CLASSPATH,
    driven by the harness's own CruiseControlBench.java: (partitions, figures)."""
    classpath = cruise_control_classpath()
    config, config_note = cruise_control_config()
    classes = CC_CACHE / "classes"
    _compile(CC_DIR / "CruiseControlBench.java", classpath, classes)
    out, wall, cpu, rss = timed(["java", "-Xmx6g", "-cp", "%s:%s" % (classpath, classes), "CruiseControlBench", str(model_path),
                                 config] + list(excluded))
    result = json.loads(out)
    note = "; ".join(n for n in (config_note, result.get("note", "")) if n)
    return result["partitions"], {"seconds": result["seconds"], "process_seconds": wall, "cpu": cpu, "rss_mb": rss, "note": note}
