# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The tests' side of the lab's real Kafka: topics, input sequences, observers of the output and the group,
and the helper run as a subprocess (`python -m streamops_consumer`, as in its container)."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

PACKAGE = Path(__file__).resolve().parents[1]   # consumer/
SRC = PACKAGE / "src"
REPO = PACKAGE.parent
PARTITIONS = 4


def bootstrap_servers():
    """KAFKA_BOOTSTRAP_SERVERS from the environment, else from the lab's files (tests/lab/up writes them)."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    for name in ("env", "kafka.env"):
        path = REPO / ".lab" / name
        if path.exists():
            for line in path.read_text().splitlines():
                if line.startswith("KAFKA_BOOTSTRAP_SERVERS="):
                    return line.split("=", 1)[1].strip()
    return None


def wait_until(what, check, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(step)


class Lab:
    def __init__(self, servers):
        self.servers = servers
        self.admin = AdminClient({"bootstrap.servers": servers})

    def create_topics(self, *names, config=None):
        futures = self.admin.create_topics([NewTopic(name, PARTITIONS, 3, config=config or {}) for name in names], operation_timeout=30)
        for future in futures.values():
            future.result()
        # Every broker must know them before producers and consumers look them up.
        wait_until("topic metadata", lambda: all(len(self.admin.list_topics(name, timeout=10).topics[name].partitions) == PARTITIONS
                                                 and self.admin.list_topics(name, timeout=10).topics[name].error is None
                                                 for name in names), 30)

    def cleanup(self, topics, groups):
        for future in self.admin.delete_topics(list(topics), operation_timeout=30).values():
            try:
                future.result()
            except Exception:  # best effort: a test that failed early may not have made them
                pass
        if groups:
            for future in self.admin.delete_consumer_groups(list(groups), request_timeout=10).values():
                try:
                    future.result()
                except Exception:
                    pass

    def produce_sequence(self, topic, count, start=0):
        """Values (and keys) "start".."count-1", spread evenly over the partitions."""
        producer = Producer({"bootstrap.servers": self.servers, "acks": "all", "linger.ms": 20})
        failed = []
        for i in range(start, count):
            producer.produce(topic, key=str(i), value=str(i), partition=i % PARTITIONS,
                             on_delivery=lambda err, msg: failed.append(err) if err else None)
            producer.poll(0)
        if producer.flush(30) or failed:
            raise AssertionError("could not produce the input: %s" % failed[:3])

    def committed(self, group, topic):
        """The group's committed offsets of topic, summed (records done, the input being one record per offset).
        read_uncommitted so that librdkafka does not ask for stable offsets: offsets a killed instance sent into its
        open transaction would make the broker answer "unstable" until that transaction times out (10 s), and the
        call time out; without it the broker answers the offsets committed so far at once."""
        consumer = Consumer({"bootstrap.servers": self.servers, "group.id": group, "enable.auto.commit": False,
                             "isolation.level": "read_uncommitted"})
        try:
            offsets = consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
        finally:
            consumer.close()
        return sum(tp.offset for tp in offsets if tp.offset > 0)

    def wait_committed(self, group, topic, at_least, timeout=60):
        def enough():
            done = self.committed(group, topic)
            return done if done >= at_least else None
        return wait_until("%s to commit %d records of %s" % (group, at_least, topic), enough, timeout, step=0.1)

    def read_all(self, topic, isolation="read_committed", timeout=30):
        """Every record of topic as (key, value) strings, read to the end of each partition."""
        consumer = Consumer({"bootstrap.servers": self.servers, "group.id": "reader-%s" % topic, "enable.auto.commit": False,
                             "isolation.level": isolation, "enable.partition.eof": True})
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        records, at_end = [], set()
        deadline = time.monotonic() + timeout
        try:
            while len(at_end) < PARTITIONS:
                if time.monotonic() > deadline:
                    raise AssertionError("%s: partitions %s not read to the end in %ss" % (topic, sorted(at_end), timeout))
                msg = consumer.poll(0.2)
                if msg is None:
                    continue
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        at_end.add(msg.partition())
                        continue
                    raise AssertionError("reading %s: %s" % (topic, msg.error()))
                at_end.discard(msg.partition())
                records.append((msg.key().decode() if msg.key() else None, msg.value().decode()))
        finally:
            consumer.close()
        return records

    def group_client_ids(self, group):
        description = self.admin.describe_consumer_groups([group], request_timeout=10)[group].result()
        return sorted(member.client_id for member in description.members)


def assert_each_once(records, count):
    """Every input number appears exactly once in the output (keys kept), else an explanation of how not."""
    counts = collections.Counter(value for key, value in records)
    missing = [i for i in range(count) if counts[str(i)] == 0]
    repeated = {value: n for value, n in counts.items() if n > 1}
    strangers = [value for value in counts if not value.isdigit() or int(value) >= count]
    mismatched = [(key, value) for key, value in records if key != value]
    problems = []
    if missing:
        problems.append("%d lost (first: %s)" % (len(missing), missing[:10]))
    if repeated:
        problems.append("%d repeated (first: %s)" % (len(repeated), sorted(repeated.items(), key=lambda kv: int(kv[0]))[:10]))
    if strangers:
        problems.append("unexpected values %s" % strangers[:10])
    if mismatched:
        problems.append("keys not kept: %s" % mismatched[:5])
    if problems or len(records) != count:
        raise AssertionError("output of %d records for %d inputs: %s" % (len(records), count, "; ".join(problems)))


class Instance:
    """One helper process; its JSON event lines are collected as they come, with the time they arrived."""

    def __init__(self, name, env, logdir, module="streamops_consumer"):
        self.name = name
        self.ready_file = str(logdir / ("%s.ready" % name))
        path = os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))
        full = dict(os.environ, PYTHONPATH=path, STREAMOPS_INSTANCE=name, STREAMOPS_READY_FILE=self.ready_file)
        full.update(env)
        self.stderr_path = logdir / ("%s.%d.stderr" % (name, time.monotonic_ns()))
        self._stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", module], env=full, stdout=subprocess.PIPE,
                                     stderr=self._stderr, text=True)
        self.events = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "non-json", "line": line.rstrip()}
            with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    def find(self, name, **fields):
        with self._changed:
            return [e for e in self.events if e.get("event") == name and all(e.get(k) == v for k, v in fields.items())]

    def wait_event(self, name, timeout=30, **fields):
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [e for e in self.events if e.get("event") == name and all(e.get(k) == v for k, v in fields.items())]
                if found:
                    return found[0]
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError("%s exited (rc %s) without event %s; events: %s\nstderr: %s"
                                         % (self.name, self.proc.returncode, name, self.events, self.stderr()))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("%s: no event %s %s in %ss; events: %s" % (self.name, name, fields, timeout, self.events))
                self._changed.wait(min(left, 0.2))

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=10):
        rc = self.proc.wait(timeout)
        self._reader.join(5)
        return rc

    def stderr(self):
        self._stderr.flush()
        return self.stderr_path.read_text()[-3000:]

    def ready_state(self):
        try:
            with open(self.ready_file) as handle:
                return json.load(handle).get("state")
        except FileNotFoundError:
            return None

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._stderr.close()
