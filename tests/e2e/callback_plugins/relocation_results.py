"""Test-only callback: append every k8s_consumer_relocate result of a run to $RELOCATION_RESULTS (one JSON per line).

ansible-core's own json callback moved to ansible.posix, which the lab does not install; this is all the e2e needs.
"""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "relocation_results"
    CALLBACK_NEEDS_ENABLED = True

    def _keep(self, result):
        if "gap_seconds" in result._result and os.environ.get("RELOCATION_RESULTS"):
            with open(os.environ["RELOCATION_RESULTS"], "a") as out:
                out.write(json.dumps(result._result, default=str) + "\n")

    def v2_runner_on_ok(self, result):
        self._keep(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._keep(result)

    def v2_runner_item_on_ok(self, result):
        self._keep(result)

    def v2_runner_item_on_failed(self, result):
        self._keep(result)
