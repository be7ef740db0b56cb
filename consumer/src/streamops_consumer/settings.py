# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Settings of the consumer helper, read from the environment (the container's configuration)."""

from __future__ import annotations

import dataclasses
import os
import socket
from typing import Dict, List, Mapping, Optional

MODES = ("exactly-once", "at-least-once", "auto-commit")
GATES = ("none", "after-others-leave")
PROTOCOLS = ("classic", "consumer")
CLIENT_ID_PREFIX = "streamops"
CONF_PREFIX = "KAFKA_CONF_"


class SettingsError(ValueError):
    """A setting is missing or has a value the helper cannot work with."""


def kafka_conf_from_env(environ: Mapping[str, str]) -> Dict[str, str]:
    """librdkafka properties from KAFKA_CONF_<NAME>: '_' becomes '.', '__' a literal '_' (ssl_key, for instance)."""
    conf = {}
    for name, value in environ.items():
        if name.startswith(CONF_PREFIX) and len(name) > len(CONF_PREFIX):
            key = name[len(CONF_PREFIX):].lower().replace("__", "\0").replace("_", ".").replace("\0", "_")
            conf[key] = value
    return conf


def _int(environ, name, default, minimum=0):
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError("%s must be an integer, not %r" % (name, raw))
    if value < minimum:
        raise SettingsError("%s must be at least %d, not %d" % (name, minimum, value))
    return value


def _choice(environ, name, choices, default):
    value = environ.get(name, "").strip() or default
    if value not in choices:
        raise SettingsError("%s must be one of %s, not %r" % (name, ", ".join(choices), value))
    return value


def _csv(value):
    return [item.strip() for item in (value or "").split(",") if item.strip()]


@dataclasses.dataclass
class Settings:
    """What the helper needs to know; Settings.from_env() documents the environment variables."""

    bootstrap_servers: str
    group: str
    input_topics: List[str]
    output_topic: Optional[str] = None
    mode: str = "at-least-once"
    instance: str = dataclasses.field(default_factory=socket.gethostname)
    generation: str = "0"
    transactional_id: Optional[str] = None
    batch_records: int = 50
    batch_ms: int = 200
    ready_file: Optional[str] = "/tmp/streamops-ready"
    start_gate: str = "none"
    gate_poll_ms: int = 100
    group_protocol: str = "classic"
    assignor: Optional[str] = None
    group_instance_id: Optional[str] = None
    slow_ms: int = 0
    slow_nodes: List[str] = dataclasses.field(default_factory=list)
    node_name: Optional[str] = None
    kafka_conf: Dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.mode not in MODES:
            raise SettingsError("mode must be one of %s, not %r" % (", ".join(MODES), self.mode))
        if self.start_gate not in GATES:
            raise SettingsError("start gate must be one of %s, not %r" % (", ".join(GATES), self.start_gate))
        if self.group_protocol not in PROTOCOLS:
            raise SettingsError("group protocol must be one of %s, not %r" % (", ".join(PROTOCOLS), self.group_protocol))
        if not self.group or not self.input_topics:
            raise SettingsError("a consumer group and at least one input topic are needed")
        if not self.bootstrap_servers and "bootstrap.servers" not in self.kafka_conf:
            raise SettingsError("no bootstrap servers (KAFKA_BOOTSTRAP_SERVERS)")
        # The client id carries generation and instance to the group's member list, where the start gate of
        # another generation reads them; a ':' in either would make that prefix ambiguous.
        if ":" in self.generation or ":" in self.instance:
            raise SettingsError("generation and instance must not contain ':'")

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "Settings":
        """Read the settings from environment variables (os.environ by default); see README.md for the list."""
        env = os.environ if environ is None else environ
        instance = env.get("STREAMOPS_INSTANCE", "").strip() or socket.gethostname()
        return cls(
            bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS", "").strip(),
            group=env.get("STREAMOPS_GROUP", "").strip(),
            input_topics=_csv(env.get("STREAMOPS_INPUT_TOPIC")),
            output_topic=env.get("STREAMOPS_OUTPUT_TOPIC", "").strip() or None,
            mode=_choice(env, "STREAMOPS_MODE", MODES, "at-least-once"),
            instance=instance,
            generation=env.get("STREAMOPS_GENERATION", "").strip() or "0",
            transactional_id=env.get("STREAMOPS_TRANSACTIONAL_ID", "").strip() or None,
            batch_records=_int(env, "STREAMOPS_BATCH", 50, minimum=1),
            batch_ms=_int(env, "STREAMOPS_BATCH_MS", 200, minimum=1),
            ready_file=env.get("STREAMOPS_READY_FILE", "/tmp/streamops-ready").strip() or None,
            start_gate=_choice(env, "STREAMOPS_START_GATE", GATES, "none"),
            gate_poll_ms=_int(env, "STREAMOPS_GATE_POLL_MS", 100, minimum=10),
            group_protocol=_choice(env, "STREAMOPS_GROUP_PROTOCOL", PROTOCOLS, "classic"),
            assignor=env.get("STREAMOPS_ASSIGNOR", "").strip() or None,
            group_instance_id=env.get("STREAMOPS_GROUP_INSTANCE_ID", "").strip() or None,
            slow_ms=_int(env, "STREAMOPS_SLOW_MS", 0),
            slow_nodes=_csv(env.get("STREAMOPS_SLOW_NODES")),
            node_name=env.get("STREAMOPS_NODE_NAME", "").strip() or None,
            kafka_conf=kafka_conf_from_env(env),
        )

    # -- derived values -------------------------------------------------------------------------

    @property
    def client_id(self) -> str:
        """streamops:<generation>:<instance>, the form the start gate reads from the group's members."""
        return "%s:%s:%s" % (CLIENT_ID_PREFIX, self.generation, self.instance)

    @property
    def txn_id(self) -> str:
        """The transactional id: stable per group and instance, so a restarted container (same pod name)
        fences its predecessor's producer and aborts the transaction it left open."""
        return self.transactional_id or "streamops-%s-%s" % (self.group, self.instance)

    @property
    def slow_seconds(self) -> float:
        """The artificial per-record delay on this node (0 when it does not apply here)."""
        if self.slow_ms <= 0:
            return 0.0
        if self.slow_nodes and self.node_name not in self.slow_nodes:
            return 0.0
        return self.slow_ms / 1000.0

    def _build(self, defaults, essentials):
        # KAFKA_CONF_* may override the helper's defaults (offset reset, timeouts, TLS, SASL) but not what its
        # guarantees and the start gate rest on: those are applied last.
        conf: Dict[str, object] = {}
        if self.bootstrap_servers:
            conf["bootstrap.servers"] = self.bootstrap_servers
        conf.update(defaults)
        conf.update(self.kafka_conf)
        conf.update(essentials)
        return conf

    def consumer_conf(self) -> Dict[str, object]:
        essentials: Dict[str, object] = {"client.id": self.client_id, "group.id": self.group}
        if self.mode == "auto-commit":
            # The ordinary consumer: librdkafka's defaults (offsets stored when poll returns a record, committed
            # every 5 s by a background thread), whatever the application did with the record.
            essentials["enable.auto.commit"] = True
        else:
            essentials.update({"enable.auto.commit": False, "enable.auto.offset.store": False})
        if self.mode == "exactly-once":
            # Never read the output of aborted transactions of an upstream exactly-once stage.
            essentials["isolation.level"] = "read_committed"
        if self.group_protocol == "consumer":
            essentials["group.protocol"] = "consumer"
            if self.assignor:
                essentials["group.remote.assignor"] = self.assignor
        elif self.assignor:
            essentials["partition.assignment.strategy"] = self.assignor
        if self.group_instance_id:
            essentials["group.instance.id"] = self.group_instance_id
        defaults: Dict[str, object] = {"auto.offset.reset": "earliest"}
        if self.group_protocol == "classic":
            # Members learn of a rebalance (a member joining or leaving) from their next heartbeat: every 3 s by
            # default, which the hand-over would wait for; the KIP-848 protocol sets this on the broker instead.
            defaults["heartbeat.interval.ms"] = 1000
        return self._build(defaults, essentials)

    def producer_conf(self) -> Dict[str, object]:
        defaults: Dict[str, object] = {}
        essentials: Dict[str, object] = {"client.id": self.client_id}
        if self.mode == "exactly-once":
            # A crashed instance's open transaction blocks read_committed readers of the output, and the group's
            # offsets for the next owner, until it times out: 10 s as in Kafka Streams, not the one minute default.
            defaults["transaction.timeout.ms"] = 10000
            essentials["transactional.id"] = self.txn_id
        elif self.mode == "at-least-once":
            # Retries without duplicates in the output, so that only a crash can duplicate.
            essentials.update({"enable.idempotence": True, "acks": "all"})
        return self._build(defaults, essentials)

    def admin_conf(self) -> Dict[str, object]:
        # Not a group member, but named like one in broker logs.
        return self._build({}, {"client.id": "%s-gate:%s:%s" % (CLIENT_ID_PREFIX, self.generation, self.instance)})
