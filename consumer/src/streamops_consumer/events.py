# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the helper tells the outside world: one JSON line per event on stdout, and the readiness file."""

from __future__ import annotations

import json
import os
import sys
import threading
import time


def partitions_by_topic(partitions):
    """TopicPartitions as {topic: [partition, ...]}, the compact form of the log lines."""
    out = {}
    for tp in partitions:
        out.setdefault(tp.topic, []).append(tp.partition)
    return {topic: sorted(parts) for topic, parts in out.items()}


def offsets_by_topic(offsets):
    """{(topic, partition): offset} as {topic: {"partition": offset}}."""
    out = {}
    for (topic, partition), offset in sorted(offsets.items()):
        out.setdefault(topic, {})[str(partition)] = offset
    return out


class EventLog:
    """JSON lines for kubectl logs and for tests: every line names the instance and its generation."""

    def __init__(self, settings, stream=None):
        self.stream = stream or sys.stdout
        self.common = {"instance": settings.instance, "generation": settings.generation, "group": settings.group}
        self._lock = threading.Lock()   # a batch hook's workers log too: whole lines only

    def emit(self, event, **fields):
        line = {"ts": round(time.time(), 3), "event": event}
        line.update(self.common)
        line.update(fields)
        # Flushed at once: a container's stdout is a pipe, and a killed process must not take its last lines along.
        text = json.dumps(line, sort_keys=False, default=str) + "\n"
        with self._lock:
            self.stream.write(text)
            self.stream.flush()


class ReadyFile:
    """The readiness probe's file: 'standby' while the start gate holds, 'active' once partitions are assigned."""

    def __init__(self, path):
        self.path = path

    def write(self, state, **fields):
        if not self.path:
            return
        content = dict(state=state, pid=os.getpid(), ts=round(time.time(), 3))
        content.update(fields)
        # Renamed into place so that a probe never reads half a file.
        tmp = "%s.%d.tmp" % (self.path, os.getpid())
        with open(tmp, "w") as handle:
            json.dump(content, handle)
        os.replace(tmp, self.path)

    def remove(self):
        if self.path:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
