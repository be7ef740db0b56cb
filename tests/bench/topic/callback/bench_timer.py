# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark-only callback: each task's wall time, from its start to its result, written as JSON to $BENCH_TIMER_FILE.

The same span ansible.posix.profile_tasks reports per task (the worker's fork, the module's build, transfer and run).
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: bench_timer
type: aggregate
short_description: task wall times for tests/bench (not shipped)
description: Writes each task's name and seconds from its start to its result to the file in BENCH_TIMER_FILE.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.rows = []
        self.started = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.started = (task.get_name(), time.perf_counter())

    def _done(self, result, failed):
        if self.started:
            name, start = self.started
            self.rows.append({"task": name, "seconds": time.perf_counter() - start, "failed": failed,
                              "changed": bool(result._result.get("changed"))})

    def v2_runner_on_ok(self, result):
        self._done(result, False)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._done(result, True)

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("BENCH_TIMER_FILE")
        if path:
            with open(path, "w", encoding="utf-8") as f:
                json.dump(self.rows, f)
