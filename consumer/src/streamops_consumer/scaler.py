# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""python -m streamops_consumer.scaler: lag-driven scaling of a workflow's step functions, down to zero.

OpenFaaS CE has no autoscaler and no scale-to-zero. This loop, one per workflow, reads every second each step's
input lag for its runners' group (committed offsets against the read_committed end offsets, so transaction
markers count as consumed) and sets the step function's replicas through the gateway:

    lag > 0                          clamp(ceil(lag / target_lag), max(min_replicas, 1), max_replicas), at once when up
    lag 0, input idle < idle_seconds max(min_replicas, 1)
    lag 0, input idle >= idle_seconds 0 (never with idle_seconds 0)

Scaling up is immediate, so the first record of a new burst waits only for a cold start; scaling down (but not to
zero) takes the highest wish of the last STREAMOPS_SCALER_DOWN_WINDOW_S seconds, so replicas do not flap. "Idle"
means no new record in the input and nothing left to do. Every decision is one JSON line on stdout
(event "scaled": function, from, to, lag, reason), the replica timeline of the function.

Configuration (README.md): STREAMOPS_SCALER_STEPS (a JSON list of steps) or, for one step, STREAMOPS_SCALER_FUNCTION,
STREAMOPS_SCALER_INPUT_TOPIC, STREAMOPS_SCALER_GROUP, STREAMOPS_SCALER_TARGET_LAG, STREAMOPS_SCALER_MIN,
STREAMOPS_SCALER_MAX, STREAMOPS_SCALER_IDLE_SECONDS; the gateway as for the step runner (STREAMOPS_GATEWAY_*);
Kafka from KAFKA_BOOTSTRAP_SERVERS and KAFKA_CONF_*. Exit codes: 0 after SIGTERM/SIGINT, 2 for bad settings.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import signal
import socket
import sys
import time
from typing import List, Mapping, Optional

from confluent_kafka import ConsumerGroupTopicPartitions, IsolationLevel, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from .gateway import Gateway, GatewayError, GatewaySettings
from .settings import SettingsError, _csv, _int, kafka_conf_from_env

METADATA_REFRESH_SECONDS = 30.0
ADMIN_TIMEOUT = 10.0


def _number(raw, name, cast, minimum):
    try:
        value = cast(raw)
    except (TypeError, ValueError):
        raise SettingsError("%s must be a number, not %r" % (name, raw))
    if value < minimum:
        raise SettingsError("%s must be at least %s, not %s" % (name, minimum, value))
    return value


@dataclasses.dataclass
class ScaledStep:
    """One step function and the input that drives it."""

    function: str
    input_topics: List[str]
    group: str
    target_lag: int = 100
    min_replicas: int = 1
    max_replicas: int = 5
    idle_seconds: float = 30.0

    def __post_init__(self):
        if not self.function or not self.group or not self.input_topics:
            raise SettingsError("every scaled step needs a function, an input topic and the runners' group")
        if self.target_lag < 1:
            raise SettingsError("target_lag of %s must be at least 1" % self.function)
        if not 0 <= self.min_replicas <= self.max_replicas or self.max_replicas < 1:
            raise SettingsError("%s: need 0 <= min_replicas <= max_replicas and max_replicas >= 1, not min %d, max %d"
                                % (self.function, self.min_replicas, self.max_replicas))

    @classmethod
    def from_dict(cls, raw):
        if not isinstance(raw, dict):
            raise SettingsError("each step of STREAMOPS_SCALER_STEPS must be an object, not %r" % (raw,))
        known = {f.name for f in dataclasses.fields(cls)} | {"input_topic"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise SettingsError("unknown keys in a scaled step: %s" % ", ".join(unknown))
        topics = raw.get("input_topics", raw.get("input_topic"))
        topics = _csv(topics) if isinstance(topics, str) else list(topics or [])
        name = raw.get("function", "?")
        return cls(
            function=str(raw.get("function") or ""),
            input_topics=[str(t) for t in topics],
            group=str(raw.get("group") or ""),
            target_lag=_number(raw.get("target_lag", 100), "target_lag of %s" % name, int, 1),
            min_replicas=_number(raw.get("min_replicas", 1), "min_replicas of %s" % name, int, 0),
            max_replicas=_number(raw.get("max_replicas", 5), "max_replicas of %s" % name, int, 1),
            idle_seconds=_number(raw.get("idle_seconds", 30), "idle_seconds of %s" % name, float, 0),
        )

    def wanted(self, lag, idle_for):
        """The replicas this step wants for a lag and the seconds its input has been idle, and why."""
        if lag > 0:
            return min(max(math.ceil(lag / self.target_lag), self.min_replicas, 1), self.max_replicas), "lag"
        if self.idle_seconds > 0 and idle_for >= self.idle_seconds:
            return 0, "idle"
        return max(self.min_replicas, 1), "min"


@dataclasses.dataclass
class ScalerSettings:
    steps: List[ScaledStep]
    kafka_conf: dict
    interval_ms: int = 1000
    down_window_s: float = 10.0

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "ScalerSettings":
        env = os.environ if environ is None else environ
        raw = env.get("STREAMOPS_SCALER_STEPS", "").strip()
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError as exc:
                raise SettingsError("STREAMOPS_SCALER_STEPS is not JSON: %s" % exc)
            if isinstance(parsed, dict):
                parsed = parsed.get("steps")
            if not isinstance(parsed, list) or not parsed:
                raise SettingsError("STREAMOPS_SCALER_STEPS must be a non-empty JSON list of steps (or {\"steps\": [...]})")
            steps = [ScaledStep.from_dict(item) for item in parsed]
        elif env.get("STREAMOPS_SCALER_FUNCTION", "").strip():
            steps = [ScaledStep.from_dict({
                "function": env.get("STREAMOPS_SCALER_FUNCTION", "").strip(),
                "input_topics": env.get("STREAMOPS_SCALER_INPUT_TOPIC", ""),
                "group": env.get("STREAMOPS_SCALER_GROUP", "").strip(),
                "target_lag": env.get("STREAMOPS_SCALER_TARGET_LAG", "").strip() or 100,
                "min_replicas": env.get("STREAMOPS_SCALER_MIN", "").strip() or 1,
                "max_replicas": env.get("STREAMOPS_SCALER_MAX", "").strip() or 5,
                "idle_seconds": env.get("STREAMOPS_SCALER_IDLE_SECONDS", "").strip() or 30,
            })]
        else:
            raise SettingsError("nothing to scale: set STREAMOPS_SCALER_STEPS (JSON) or STREAMOPS_SCALER_FUNCTION")
        if len({s.function for s in steps}) != len(steps):
            raise SettingsError("a function is listed twice in the scaler's steps")
        conf = kafka_conf_from_env(env)
        servers = env.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
        if servers:
            conf["bootstrap.servers"] = servers
        if not conf.get("bootstrap.servers"):
            raise SettingsError("no bootstrap servers (KAFKA_BOOTSTRAP_SERVERS)")
        down = env.get("STREAMOPS_SCALER_DOWN_WINDOW_S", "").strip()
        return cls(steps=steps, kafka_conf=conf, interval_ms=_int(env, "STREAMOPS_SCALER_INTERVAL_MS", 1000, minimum=100),
                   down_window_s=_number(down, "STREAMOPS_SCALER_DOWN_WINDOW_S", float, 0) if down else 10.0)


class LagReader:
    """A step's input lag for its group: committed offsets against the read_committed end offsets (Admin API only:
    the scaler is no member of any group)."""

    def __init__(self, admin):
        self.admin = admin
        self._partitions = {}   # topic -> (read at, [partition ids])

    def partitions(self, topic):
        cached = self._partitions.get(topic)
        if cached and time.monotonic() - cached[0] < METADATA_REFRESH_SECONDS:
            return cached[1]
        meta = self.admin.list_topics(topic, timeout=ADMIN_TIMEOUT).topics.get(topic)
        if meta is None or meta.error is not None:
            raise KafkaException("topic %s: %s" % (topic, meta.error if meta is not None else "not found"))
        ids = sorted(meta.partitions)
        self._partitions[topic] = (time.monotonic(), ids)
        return ids

    def _offsets(self, tps, spec):
        futures = self.admin.list_offsets({tp: spec for tp in tps}, isolation_level=IsolationLevel.READ_COMMITTED,
                                          request_timeout=ADMIN_TIMEOUT)
        return {(tp.topic, tp.partition): future.result().offset for tp, future in futures.items()}

    def measure(self, step):
        """(lag, {(topic, partition): end offset}) of the step's input."""
        try:
            return self._measure(step)
        except KafkaException:
            for topic in step.input_topics:  # partitions may have been added, or leaders moved: read the metadata again
                self._partitions.pop(topic, None)
            raise

    def _measure(self, step):
        tps = [TopicPartition(topic, p) for topic in step.input_topics for p in self.partitions(topic)]
        ends = self._offsets(tps, OffsetSpec.latest())
        request = [ConsumerGroupTopicPartitions(step.group, tps)]
        result = self.admin.list_consumer_group_offsets(request, request_timeout=ADMIN_TIMEOUT)[step.group].result()
        committed = {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions}
        unset = [TopicPartition(t, p) for (t, p), offset in committed.items() if offset is None or offset < 0]
        starts = self._offsets(unset, OffsetSpec.earliest()) if unset else {}
        lag = 0
        for key, end in ends.items():
            done = committed.get(key)
            if done is None or done < 0:
                done = starts.get(key, 0)
            lag += max(end - done, 0)
        return lag, ends


class StepState:
    def __init__(self, step, now):
        self.step = step
        self.ends = None
        self.active_at = now            # the last time the input moved or had lag
        self.wishes = collections.deque()  # (time, wanted) over the down window
        self.replicas = None            # as last read from the gateway
        self.missing_logged = False


class Scaler:
    def __init__(self, settings: ScalerSettings, gateway: Gateway, stream=None, admin=None, clock=time.monotonic):
        self.settings, self.gateway = settings, gateway
        self.stream = stream or sys.stdout
        self.reader = LagReader(admin or AdminClient(dict(settings.kafka_conf, **{"client.id": "streamops-scaler:%s" % socket.gethostname()})))
        self.clock = clock
        self.states = [StepState(step, clock()) for step in settings.steps]
        self._stopping = False
        self._errors = {}

    def emit(self, event, **fields):
        line = {"ts": round(time.time(), 3), "event": event}
        line.update(fields)
        self.stream.write(json.dumps(line, default=str) + "\n")
        self.stream.flush()

    def stop(self):
        self._stopping = True

    def run(self):
        self.emit("scaler-starting", gateway=self.gateway.settings.url, namespace=self.gateway.settings.namespace,
                  interval_ms=self.settings.interval_ms, down_window_s=self.settings.down_window_s,
                  steps=[dataclasses.asdict(s) for s in self.settings.steps])
        interval = self.settings.interval_ms / 1000.0
        while not self._stopping:
            started = self.clock()
            for state in self.states:
                self.tick(state)
            while not self._stopping and self.clock() - started < interval:
                time.sleep(min(0.05, interval))
        self.emit("scaler-stopped")
        return 0

    def _error(self, state, what, exc):
        """Logged when it first happens and when it changes, not every second."""
        text = "%s: %s" % (what, exc)
        if self._errors.get(state.step.function) != text:
            self._errors[state.step.function] = text
            self.emit("scaler-error", function=state.step.function, error=text)

    def tick(self, state):
        """One look at one step, and a scaling decision if its function's replicas should change."""
        step, now = state.step, self.clock()
        try:
            lag, ends = self.reader.measure(step)
        except KafkaException as exc:
            self._error(state, "reading the lag of group %s on %s" % (step.group, ",".join(step.input_topics)), exc)
            return
        if lag > 0 or (state.ends is not None and ends != state.ends):
            state.active_at = now
        state.ends = ends
        wanted, reason = step.wanted(lag, now - state.active_at)
        state.wishes.append((now, wanted))
        while state.wishes and state.wishes[0][0] < now - self.settings.down_window_s:
            state.wishes.popleft()
        try:
            status = self.gateway.function(step.function)
        except GatewayError as exc:
            self._error(state, "reading function %s" % step.function, exc)
            return
        if status is None:
            if not state.missing_logged:
                self.emit("function-missing", function=step.function, namespace=self.gateway.settings.namespace)
                state.missing_logged = True
            return
        state.missing_logged = False
        current = int(status.get("replicas") or 0)
        state.replicas = current
        if reason == "idle" or wanted >= current:
            target = wanted
        else:
            target = max(w for unused, w in state.wishes)  # down slowly: the highest wish of the window
        if target == current:
            self._errors.pop(step.function, None)
            return
        try:
            self.gateway.scale(step.function, target)
        except GatewayError as exc:
            self._error(state, "scaling function %s to %d" % (step.function, target), exc)
            return
        self._errors.pop(step.function, None)
        state.replicas = target
        self.emit("scaled", function=step.function, namespace=self.gateway.settings.namespace, replicas_from=current, replicas_to=target,
                  lag=lag, reason=reason, idle_s=round(now - state.active_at, 1), available=status.get("availableReplicas"))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv:
        print(__doc__.strip())
        return 0 if argv[0] in ("-h", "--help") else 2
    try:
        settings = ScalerSettings.from_env()
        gateway = Gateway(GatewaySettings.from_env())
    except SettingsError as exc:
        print(json.dumps({"event": "bad-settings", "error": str(exc)}), flush=True)
        return 2
    scaler = Scaler(settings, gateway)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: scaler.stop())
    return scaler.run()


if __name__ == "__main__":
    sys.exit(main())
