# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""python -m streamops_consumer.step: one step of a workflow, exactly once.

Consumes the step's input topic (STREAMOPS_INPUT_TOPIC) in its group, POSTs each record's value to the step's
OpenFaaS function through the gateway (/function/<name>), and produces the answer, with the record's key and
headers, to the next topic (STREAMOPS_OUTPUT_TOPIC), in the helper's exactly-once mode by default: outputs and
input offsets commit in one Kafka transaction.

A failed invocation is retried with back-off (STREAMOPS_STEP_RETRIES, STREAMOPS_STEP_BACKOFF_MS doubling up to
STREAMOPS_STEP_BACKOFF_MAX_MS); after the last retry the record goes to the dead-letter topic (STREAMOPS_DLQ_TOPIC)
with the error, the function and the source topic/partition/offset in headers, in the same transaction as the
offsets. Without a dead-letter topic the runner stops instead (exit 1), the record uncommitted.

With STREAMOPS_STEP_CONCURRENCY over 1 (default 8) up to STREAMOPS_STEP_BATCH records (default 4 x concurrency) are
invoked side by side; their answers are produced in input order and commit with their offsets, one transaction per
batch.

Waiting burns no retry: when the function has no available replica (scaled to zero) the runner polls
GET /system/function/<name> until one is available, and while the gateway does not answer at all it polls until
it does. Before any wait it commits what it has done, so no transaction stays open; SIGTERM ends a wait at once,
giving the record back uncommitted. A wait longer than STREAMOPS_STEP_WAIT_HOLD_MS (default 60 s) gives the records
back to the helper (Later), which polls and reads them again: the consumer keeps its place in the group, which drops
a member that does not poll for max.poll.interval.ms (5 minutes by default). Credentials refused (401/403) or a
function the gateway does not know (404) stop the runner (exit 1): retrying cannot help.

Exit codes as the helper's: 0 after SIGTERM/SIGINT, 1 fatal, 2 bad settings.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import sys
import threading
import time
from typing import Mapping, Optional

from .gateway import Gateway, GatewayError, GatewaySettings
from .helper import ConsumerHelper, Fatal, Later, Output, Unprocessed, run_until_signalled
from .settings import Settings, SettingsError, _int

WAIT_LOG_SECONDS = 10.0     # a long wait is logged again this often


@dataclasses.dataclass
class StepSettings:
    """What the step adds to the helper's settings (STREAMOPS_STEP_*, STREAMOPS_DLQ_TOPIC)."""

    function: str
    retries: int = 5
    backoff_ms: int = 200
    backoff_max_ms: int = 5000
    timeout_ms: int = 10000
    dlq_topic: Optional[str] = None
    wait_poll_ms: int = 200
    wait_hold_ms: int = 60000   # longest wait before the records go back and the consumer polls (under max.poll.interval.ms)
    concurrency: int = 8
    batch: int = 0          # records per batch in concurrent mode; 0: 4 x concurrency

    def __post_init__(self):
        if not self.function:
            raise SettingsError("no function to invoke (STREAMOPS_STEP_FUNCTION)")
        if self.concurrency < 1:
            raise SettingsError("STREAMOPS_STEP_CONCURRENCY must be at least 1")
        self.batch = self.batch or 4 * self.concurrency

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "StepSettings":
        env = os.environ if environ is None else environ
        return cls(
            function=env.get("STREAMOPS_STEP_FUNCTION", "").strip(),
            retries=_int(env, "STREAMOPS_STEP_RETRIES", 5),
            backoff_ms=_int(env, "STREAMOPS_STEP_BACKOFF_MS", 200),
            backoff_max_ms=_int(env, "STREAMOPS_STEP_BACKOFF_MAX_MS", 5000),
            timeout_ms=_int(env, "STREAMOPS_STEP_TIMEOUT_MS", 10000, minimum=1),
            dlq_topic=env.get("STREAMOPS_DLQ_TOPIC", "").strip() or None,
            wait_poll_ms=_int(env, "STREAMOPS_STEP_WAIT_POLL_MS", 200, minimum=10),
            wait_hold_ms=_int(env, "STREAMOPS_STEP_WAIT_HOLD_MS", 60000, minimum=100),
            concurrency=_int(env, "STREAMOPS_STEP_CONCURRENCY", 8, minimum=1),
            batch=_int(env, "STREAMOPS_STEP_BATCH", 0),
        )

    def backoff(self, attempt):
        """Seconds to wait before retry number `attempt` (1, 2, ...): the back-off doubled each time, capped."""
        return min(self.backoff_ms * (2 ** (attempt - 1)), max(self.backoff_ms, self.backoff_max_ms)) / 1000.0


def _header(value):
    return str(value).encode("utf-8", "replace")


class StepRunner:
    """A ConsumerHelper whose process hook is the step's function, invoked through the gateway."""

    def __init__(self, settings: Settings, step: StepSettings, gateway: Gateway, stream=None):
        if not settings.output_topic:
            raise SettingsError("a step needs an output topic (STREAMOPS_OUTPUT_TOPIC)")
        if step.dlq_topic and step.dlq_topic in settings.input_topics:
            raise SettingsError("the dead-letter topic must not be an input topic of the step")
        self.settings, self.step, self.gateway = settings, step, gateway
        if step.concurrency > 1:
            # Invocations of a batch run side by side; its outputs and offsets still commit together, in input order.
            self.helper = ConsumerHelper(settings, stream=stream, process_batch=self.process_batch, batch_max=step.batch)
            self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=step.concurrency, thread_name_prefix="invoke")
        else:
            self.helper = ConsumerHelper(settings, self.process, stream)
            self._pool = None
        self.events = self.helper.events
        # A long wait gives the records back (Later) at this time, for the whole batch at once: the first record to
        # give up says why, and the batch's others give up without invoking.
        self._hold_until = 0.0
        self._given_back_why = None
        self._count_lock = threading.Lock()
        self.invoked = 0
        self.dead_lettered = 0

    def run(self) -> int:
        self.events.emit("step", function=self.step.function, gateway=self.gateway.settings.url, namespace=self.gateway.settings.namespace,
                         retries=self.step.retries, backoff_ms=self.step.backoff_ms, dlq=self.step.dlq_topic,
                         concurrency=self.step.concurrency, batch=self.step.batch if self._pool else 1)
        try:
            return run_until_signalled(self.helper)
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=False)

    def process_batch(self, msgs):
        """[outputs] for a batch, its records invoked concurrently. Any record given back (stop) gives the whole batch
        back; a fatal error of any record ends the run; nothing of the batch is produced then."""
        self._hold(time.monotonic())
        futures = [self._pool.submit(self.process, msg) for msg in msgs]
        results, given_back, later, fatal = [], None, None, None
        for future in futures:
            try:
                results.append(future.result())
            except Unprocessed as exc:
                given_back = exc
            except Later as exc:
                later = exc
            except Fatal as exc:
                fatal = exc
        for exc in (fatal, given_back, later):  # the strongest first: end the run, stop, then poll and come back
            if exc is not None:
                raise exc
        return results

    # -- the process hook ------------------------------------------------------------------------

    def process(self, msg):
        """[Output] for one record: the function's answer, or after the retries the record to the dead-letter topic."""
        attempts, error = 0, None
        timeout = self.step.timeout_ms / 1000.0
        if self._pool is None:
            self._hold(time.monotonic())  # one record at a time: its own hold
        while True:
            if self._given_back_why is not None:
                raise Later(self._given_back_why)
            try:
                answer = self.gateway.invoke(self.step.function, msg.value(), timeout=timeout)
            except GatewayError as exc:
                error = exc
            else:
                with self._count_lock:
                    self.invoked += 1
                if attempts:
                    self.events.emit("invoked", function=self.step.function, attempts=attempts + 1, topic=msg.topic(),
                                     partition=msg.partition(), offset=msg.offset())
                return [Output(msg.key(), answer, headers=msg.headers())]
            if self._wait_if_unavailable(error):
                continue  # a replica (or the gateway) is back: the same attempt again
            attempts += 1
            if attempts > self.step.retries:
                return self._dead_letter(msg, error, attempts)
            pause = self.step.backoff(attempts)
            self.events.emit("invoke-failed", function=self.step.function, attempt=attempts, retry_in_s=pause, error=str(error),
                             topic=msg.topic(), partition=msg.partition(), offset=msg.offset())
            self.helper.checkpoint()
            self._sleep(pause)

    def _dead_letter(self, msg, error, attempts):
        if not self.step.dlq_topic:
            raise Fatal("function %s failed %d times and there is no dead-letter topic (STREAMOPS_DLQ_TOPIC): %s"
                        % (self.step.function, attempts, error))
        headers = list(msg.headers() or [])
        headers += [
            ("streamops.error", _header(error)),
            ("streamops.function", _header(self.step.function)),
            ("streamops.source.topic", _header(msg.topic())),
            ("streamops.source.partition", _header(msg.partition())),
            ("streamops.source.offset", _header(msg.offset())),
            ("streamops.attempts", _header(attempts)),
        ]
        if error.status is not None:
            headers.append(("streamops.status", _header(error.status)))
        with self._count_lock:
            self.dead_lettered += 1
        self.events.emit("dead-lettered", function=self.step.function, topic=msg.topic(), partition=msg.partition(), offset=msg.offset(),
                         attempts=attempts, error=str(error), dlq=self.step.dlq_topic)
        return [Output(msg.key(), msg.value(), topic=self.step.dlq_topic, headers=headers)]

    def _hold(self, now):
        self._hold_until = now + self.step.wait_hold_ms / 1000.0
        self._given_back_why = None

    def _wait_if_unavailable(self, error):
        """True after waiting for the gateway or a replica to come back; False when the function itself failed."""
        if error.status in (401, 403):
            raise Fatal("the gateway at %s refused the credentials (HTTP %d): check STREAMOPS_GATEWAY_USERNAME and its password"
                        % (self.gateway.settings.url, error.status))
        waited_for, started, logged = None, time.monotonic(), 0.0
        while True:
            try:
                status = self.gateway.function(self.step.function)
            except GatewayError as exc:
                if exc.status in (401, 403):
                    raise Fatal("the gateway at %s refused the credentials (HTTP %d): check STREAMOPS_GATEWAY_USERNAME and its password"
                                % (self.gateway.settings.url, exc.status))
                if not exc.unreachable and waited_for is None:
                    return False  # the gateway answers, but not about the function: count it as a failed attempt
                reason, detail = "gateway-unreachable" if exc.unreachable else "gateway-error", str(exc)
            else:
                if status is None:
                    where = " in namespace %s" % self.gateway.settings.namespace if self.gateway.settings.namespace else ""
                    raise Fatal("the gateway at %s has no function %s%s" % (self.gateway.settings.url, self.step.function, where))
                if int(status.get("availableReplicas") or 0) > 0:
                    if waited_for is not None:
                        self.events.emit("replica-available" if waited_for == "no-replica" else "gateway-back", function=self.step.function,
                                         waited_s=round(time.monotonic() - started, 3), replicas=status.get("replicas"),
                                         available=status.get("availableReplicas"))
                        return True
                    return False
                reason, detail = "no-replica", "replicas %s, available 0" % status.get("replicas")
            now = time.monotonic()
            if now >= self._hold_until:
                self._given_back_why = ("waited %.0fs for %s (%s): the records go back so that the consumer polls and keeps its "
                                        "partitions" % (now - started, self.step.function, reason))
                raise Later(self._given_back_why)
            if waited_for != reason or now - logged >= WAIT_LOG_SECONDS:
                if waited_for is None:
                    self.helper.checkpoint()  # nothing stays open while this waits
                self.events.emit("waiting", function=self.step.function, why=reason, detail=detail,
                                 waited_s=round(now - started, 3))
                waited_for, logged = reason, now
            self._sleep(self.step.wait_poll_ms / 1000.0)

    def _sleep(self, seconds):
        """Sleep, cut short by stop(): the record in hand is then given back unprocessed."""
        deadline = time.monotonic() + seconds
        while True:
            if self.helper.stopping:
                raise Unprocessed("stop requested while waiting to invoke %s" % self.step.function)
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.05))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv:
        print(__doc__.strip())
        return 0 if argv[0] in ("-h", "--help") else 2
    env = dict(os.environ)
    env.setdefault("STREAMOPS_MODE", "exactly-once")
    try:
        runner = StepRunner(Settings.from_env(env), StepSettings.from_env(env), Gateway(GatewaySettings.from_env(env)))
    except SettingsError as exc:
        print(json.dumps({"event": "bad-settings", "error": str(exc)}), flush=True)
        return 2
    return runner.run()


if __name__ == "__main__":
    sys.exit(main())
