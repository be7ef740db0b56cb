# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The consume-process-produce loop and its commit discipline, per mode.

exactly-once   records, their outputs and the group's offsets commit together in one Kafka transaction;
               any doubt aborts the transaction and rewinds the touched partitions to the committed offsets.
at-least-once  offsets of exactly the records processed are committed once their outputs are flushed;
               only a crash between flush and commit can repeat records.
auto-commit    the ordinary consumer, for comparison: librdkafka commits in the background whatever poll
               returned, processed or not.

In the first two modes the helper commits on partition revocation and on stop(), then leaves the group,
so that the next owner of a partition starts exactly where this one ended.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import NamedTuple, Optional

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from . import gate
from .events import EventLog, ReadyFile, offsets_by_topic, partitions_by_topic
from .settings import Settings

POLL_SECONDS = 0.1          # the longest a stop request waits for poll() to return
TXN_TIMEOUT = 30.0          # per transactional call; retriable errors are retried within it
FLUSH_TIMEOUT = 30.0


class Fatal(Exception):
    """The helper cannot go on without risking the guarantee; it exits non-zero, committing nothing more."""


class Unprocessed(Exception):
    """Raised by a process hook that gives the record in hand back unprocessed (asked to stop while it waited): the
    helper commits what came before it, seeks back to it so that the next owner starts there, and stops cleanly."""


class Later(Exception):
    """Raised by a process hook that cannot do the record in hand yet and has waited long (for a function's replica,
    say): the helper commits what came before it, seeks back to it and goes on polling, so that the consumer keeps
    its place in the group (one that does not poll for max.poll.interval.ms is dropped from it); the record, and
    with it the wait, comes again from the next poll, unless a rebalance has given its partition to another member."""


class Output(NamedTuple):
    """One output of a process hook: to the output topic (topic None) or to another topic, with optional headers
    ([(name, bytes)] or {name: bytes}). A plain (key, value) pair is the same as Output(key, value)."""

    key: Optional[bytes]
    value: Optional[bytes]
    topic: Optional[str] = None
    headers: Optional[object] = None


def passthrough(msg):
    """The default transform: the record itself (key and value) to the output topic."""
    return [(msg.key(), msg.value())]


def _error(exc):
    return exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None


class ConsumerHelper:
    """One consumer (and producer) of a group; run() until stop(), then commit, leave the group and return."""

    def __init__(self, settings: Settings, process=None, stream=None, process_batch=None, batch_max=100):
        """process(msg) -> outputs, for one record at a time; or process_batch([msg, ...]) -> [outputs, ...] (one item
        per record, in order) for up to batch_max records at a time, which it may work on concurrently. In batch mode
        nothing is open while the hook works: what came before commits first, and each batch commits on its own."""
        self.settings = settings
        if process is None and process_batch is None and settings.output_topic:
            process = passthrough
        self.process = process
        self.process_batch = process_batch
        self.batch_max = max(1, int(batch_max))
        self.events = EventLog(settings, stream)
        self.ready = ReadyFile(settings.ready_file)
        self.eos = settings.mode == "exactly-once"
        self.manual = settings.mode != "auto-commit"
        self._stopping = False
        self._dead = False          # after a Fatal: callbacks fired by close() must not commit anything
        self._consumer = None
        self._producer = None
        self._in_txn = False
        # (topic, partition) -> offset to commit for it: one past the last record processed. A partition is
        # entered with the offset of the record in hand *before* processing, so that an abort rewinds it too.
        self._pending = {}
        self._in_hand = None        # the partition of the record being processed
        self._in_hand_offset = None
        self._rewound_in_hand = False   # a checkpoint() inside the hook had to abort: the record in hand is re-read
        self._rewinds = 0
        self._batch_size = 0
        self._batch_deadline = 0.0
        self._idle_check_at = 0.0
        self._known_committed = {}  # (topic, partition) -> the group's committed offset, as last committed or read here
        self._delivery_error = None

    def stop(self):
        """Finish the record in hand, commit, leave the group, return from run(). Safe in signal handlers."""
        self._stopping = True  # a plain flag: a lock taken in a signal handler could deadlock the main thread

    def _should_stop(self):
        return self._stopping

    @property
    def stopping(self):
        """True once stop() was called: a process hook that waits should give its record back (raise Unprocessed)."""
        return self._stopping

    def checkpoint(self):
        """Commit what is done before the record in hand (exactly-once: the open transaction) and go on with it.

        For a process hook about to wait (retries, back-off, a function scaled to zero): no transaction stays open
        while it waits, so none times out, and other partitions' progress is not held back. If the commit fails the
        helper rewinds as usual, and whatever the hook then returns for the record in hand is dropped: it is read again.
        """
        if not self.manual or self._in_hand is None or self._rewound_in_hand:
            return
        rewinds = self._rewinds
        self._commit("checkpoint")
        if self._rewinds != rewinds:
            self._rewound_in_hand = True
        else:
            # Entered again, as _handle did before calling the hook: an abort from here on rewinds it too.
            self._pending.setdefault(self._in_hand, self._in_hand_offset)

    # -- life cycle ---------------------------------------------------------------------------

    def run(self) -> int:
        """Consume until stop(); 0 after a clean stop, 1 after a fatal error (nothing uncertain committed)."""
        s = self.settings
        self.events.emit("starting", mode=s.mode, input=s.input_topics, output=s.output_topic, client_id=s.client_id,
                         transactional_id=s.txn_id if self.eos else None, start_gate=s.start_gate,
                         slow_s=s.slow_seconds, node=s.node_name)
        try:
            try:
                if self._open():
                    self._loop()
                self._shutdown()
            except (Fatal, KafkaException) as exc:  # a KafkaException here is one no commit path expected
                self.events.emit("fatal", error=str(exc))
                self._abandon()
                return 1
        finally:
            self.ready.remove()
        return 0

    def _open(self):
        """Producer, consumer, start gate, subscription; False if stopped before subscribing."""
        s = self.settings
        if self.eos or s.output_topic:
            self._producer = Producer(s.producer_conf())
            if self.eos:
                # Fences an older producer with the same transactional id and aborts what it left open, before
                # this instance reads anything (the committed offsets wait for that abort).
                self._kafka_call("init_transactions", self._producer.init_transactions, TXN_TIMEOUT)
        self._consumer = Consumer(s.consumer_conf())
        if s.start_gate == "after-others-leave":
            self.ready.write("standby")
            self.events.emit("standby", waiting_for="members of other generations to leave")
            admin = AdminClient(s.admin_conf())
            waited = gate.wait_for_others_to_leave(admin, s.group, s.generation, s.gate_poll_ms / 1000.0,
                                                   self._should_stop, self.events.emit)
            if waited is None:
                return False
            self.events.emit("gate-open", waited_s=round(waited, 3))
        self._consumer.subscribe(s.input_topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost)
        self.events.emit("subscribed", topics=s.input_topics)
        return True

    def _loop(self):
        while not self._stopping:
            if self.process_batch is not None:
                good = [msg for msg in self._consumer.consume(self.batch_max, POLL_SECONDS) if self._usable(msg)]
                if good:
                    self._handle_batch(good)
            else:
                msg = self._consumer.poll(POLL_SECONDS)
                if msg is not None and self._usable(msg):
                    self._handle(msg)
            if self._producer is not None:
                self._producer.poll(0)  # delivery reports
            if self._batch_size and (self._batch_size >= self.settings.batch_records or time.monotonic() >= self._batch_deadline):
                self._commit("batch")
            elif self.manual and not self._batch_size and not self._stopping and time.monotonic() >= self._idle_check_at:
                self._idle_check_at = time.monotonic() + self.settings.batch_ms / 1000.0
                self._commit_skipped()

    def _usable(self, msg):
        """True for a record; errors are fatal or logged."""
        error = msg.error()
        if error is None:
            return True
        if error.fatal():
            raise Fatal("consumer: %s" % error)
        self.events.emit("consumer-error", error=str(error))
        return False

    def _shutdown(self):
        self.events.emit("stopping")
        if self.manual:
            self._commit("shutdown", always_log=True)
        elif self._producer is not None:
            self._producer.flush(FLUSH_TIMEOUT)
        if self._consumer is not None:
            self._consumer.close()  # leaves the group now rather than after the session timeout
        self.events.emit("closed")

    def _abandon(self):
        """After a Fatal: abort what is open, leave the group; the next instance redoes what was not committed."""
        self._dead = True
        if self._in_txn:
            try:
                self._producer.abort_transaction(5)
            except KafkaException:
                pass
        if self._consumer is not None:
            try:
                self._consumer.close()
            except (KafkaException, RuntimeError):
                pass

    # -- records ----------------------------------------------------------------------------

    def _handle(self, msg):
        key = (msg.topic(), msg.partition())
        if self.eos and not self._in_txn:
            self._kafka_call("begin_transaction", self._producer.begin_transaction)
            self._in_txn = True
        if not self._batch_size:
            self._batch_deadline = time.monotonic() + self.settings.batch_ms / 1000.0
        if self.manual:
            self._pending.setdefault(key, msg.offset())
        slow = self.settings.slow_seconds
        if slow:
            gate.nap(slow, self._should_stop)  # cut short by stop(): the record is then finished at once
        try:
            self._in_hand, self._in_hand_offset, self._rewound_in_hand = key, msg.offset(), False
            outputs = self.process(msg) if self.process is not None else None
        except (Unprocessed, Later) as exc:
            # Given back: what came before it is committed, and the next owner (or this one) starts at this record.
            event = "later" if isinstance(exc, Later) else "unprocessed"
            self._commit(event, always_log=True)
            if not self._rewound_in_hand:
                self._seek(key, msg.offset())
            self.events.emit(event, topic=msg.topic(), partition=msg.partition(), offset=msg.offset(), why=str(exc))
            self._stopping = self._stopping or event == "unprocessed"
            return
        except Exception as exc:
            # What came before this record is done and may be committed; this one is left for the next instance.
            self._commit("process-error", always_log=True)
            why = str(exc) if isinstance(exc, Fatal) else repr(exc)
            raise Fatal("process hook failed on %s[%d]@%d: %s" % (msg.topic(), msg.partition(), msg.offset(), why))
        finally:
            self._in_hand = self._in_hand_offset = None
        if self._rewound_in_hand:
            return  # a checkpoint inside the hook aborted and rewound: this record comes again, its outputs are dropped
        if self.eos and not self._in_txn:  # a checkpoint inside the hook committed the transaction
            self._kafka_call("begin_transaction", self._producer.begin_transaction)
            self._in_txn = True
            self._pending.setdefault(key, msg.offset())
        if not self._produce_outputs([outputs]):
            return
        if self.manual:
            self._pending[key] = msg.offset() + 1
            self._batch_size += 1

    def _handle_batch(self, msgs):
        """Records in batch mode: the hook works on them all, nothing open meanwhile; then their outputs and offsets
        commit together (exactly-once: one transaction per batch)."""
        if self._batch_size:
            self._commit("batch")
        first = {}
        for msg in msgs:
            first.setdefault((msg.topic(), msg.partition()), msg.offset())
        try:
            results = self.process_batch(msgs)
        except (Unprocessed, Later) as exc:
            # Given back: the batch's partitions start again at its first records, for the next owner or this one.
            event = "later" if isinstance(exc, Later) else "unprocessed"
            for key, offset in first.items():
                self._seek(key, offset)
            self.events.emit(event, records=len(msgs), offsets=offsets_by_topic(first), why=str(exc))
            self._stopping = self._stopping or event == "unprocessed"
            return
        except Exception as exc:
            why = str(exc) if isinstance(exc, Fatal) else repr(exc)
            raise Fatal("process hook failed on a batch of %d records from %s: %s" % (len(msgs), offsets_by_topic(first), why))
        results = list(results or [])
        if len(results) != len(msgs):
            raise Fatal("the batch process hook returned %d results for %d records" % (len(results), len(msgs)))
        if self.eos and not self._in_txn:
            self._kafka_call("begin_transaction", self._producer.begin_transaction)
            self._in_txn = True
        if self.manual:
            for key, offset in first.items():
                self._pending.setdefault(key, offset)
        if not self._produce_outputs(results):
            return
        if self.manual:
            for msg in msgs:
                self._pending[(msg.topic(), msg.partition())] = msg.offset() + 1
            self._batch_size += len(msgs)
            self._commit("batch")

    def _produce_outputs(self, results):
        """Produce each record's outputs ((key, value) pairs or Output items); False when a failure was recovered
        from (exactly-once: the transaction aborted and the partitions rewound), so nothing may be marked done."""
        try:
            for outputs in results:
                for item in outputs or ():
                    if isinstance(item, Output):
                        self._produce(item.key, item.value, item.topic, item.headers)
                    else:
                        out_key, out_value = item
                        self._produce(out_key, out_value)
        except KafkaException as exc:
            if not self.eos:
                raise Fatal("produce: %s" % exc)
            self._recover(exc, "produce")
            return False
        return True

    def _produce(self, key, value, topic=None, headers=None):
        if topic is None:
            topic = self.settings.output_topic
            if self._producer is None or not topic:
                return  # no output topic: the hook alone sees the records
        elif self._producer is None:
            raise Fatal("the process hook produced to topic %s, but without an output topic or exactly-once mode the helper has no producer"
                        % topic)
        callback = self._on_delivery if self.settings.mode == "at-least-once" else None
        extra = {"headers": headers} if headers else {}
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=callback, **extra)
                return
            except BufferError:  # local queue full: let deliveries drain it
                self._producer.poll(0.05)

    def _on_delivery(self, err, msg):
        if err is not None:
            self._delivery_error = err

    # -- commits ------------------------------------------------------------------------------

    def _commit(self, reason, always_log=False):
        """Commit what was processed (exactly-once: the open transaction); no-op in auto-commit mode."""
        if not self.manual:
            return
        committed = self._commit_transaction(reason) if self.eos else self._commit_offsets(reason)
        if committed:
            self._known_committed.update(committed)
        self._batch_size = 0
        if committed is None:
            return
        if reason == "shutdown":
            committed = self._held_offsets(committed)
        if always_log or (reason not in ("batch", "checkpoint") and committed):
            self.events.emit("committed", reason=reason, offsets=offsets_by_topic(committed))

    def _held_offsets(self, committed):
        """Where the next owner starts, for the partitions held and read from since their assignment: all that
        poll() returned is processed and committed by now, so their positions are the committed offsets. Known
        here, whereas the group coordinator's answer would wait for a rebalance in progress."""
        held = dict(committed)
        for tp in self._consumer.position(self._consumer.assignment()):
            if tp.offset >= 0:
                held[(tp.topic, tp.partition)] = max(tp.offset, held.get((tp.topic, tp.partition), 0))
        return held

    def _commit_transaction(self, reason):
        """The offsets committed ({(topic, partition): offset}), or None if the transaction had to be aborted."""
        if not self._in_txn:
            self._pending.clear()
            return {}
        try:
            offsets = self._positions()
            if offsets:
                self._kafka_call("send_offsets_to_transaction", self._producer.send_offsets_to_transaction, offsets,
                                 self._consumer.consumer_group_metadata(), TXN_TIMEOUT)
            self._kafka_call("commit_transaction", self._producer.commit_transaction, TXN_TIMEOUT)
        except KafkaException as exc:
            self._recover(exc, reason)
            return None
        self._in_txn = False
        self._pending.clear()
        return {(tp.topic, tp.partition): tp.offset for tp in offsets}

    def _positions(self):
        """The offsets to commit for the touched partitions: the consumer's position, which may already be past
        transaction markers, and never less than one past the last record processed. The partition of a record
        in hand (its processing failed) gets that record's offset: the position is already past it."""
        wanted = [TopicPartition(topic, partition) for topic, partition in self._pending]
        positions = self._consumer.position(wanted)
        for tp in positions:
            done = self._pending[(tp.topic, tp.partition)]
            tp.offset = done if (tp.topic, tp.partition) == self._in_hand else max(tp.offset, done)
        return positions

    def _commit_offsets(self, reason):
        """The offsets committed, or None if they could not be (kept for the next try, or rewound)."""
        if not self._pending:
            return {}
        if self._producer is not None:
            # Outputs first: offsets committed before their outputs are acknowledged could lose records.
            undelivered = self._producer.flush(FLUSH_TIMEOUT)
            if undelivered or self._delivery_error is not None:
                self.events.emit("delivery-failed", reason=reason, undelivered=undelivered, error=str(self._delivery_error))
                self._delivery_error = None
                self._rewind()  # redo them: the outputs that did arrive are repeated, none is lost
                return None
        offsets = [TopicPartition(topic, partition, offset) for (topic, partition), offset in self._pending.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            error = _error(exc)
            if error is not None and error.fatal():
                raise Fatal("commit: %s" % error)
            # Kept for the next commit; partitions taken away meanwhile are dropped by the revoke callback and
            # redone by their next owner.
            self.events.emit("commit-failed", reason=reason, error=str(exc))
            return None
        committed, self._pending = self._pending, {}
        return committed

    def _recover(self, exc, reason):
        """A failed transaction: abort it and go back to the committed offsets; fatal errors (fenced) end the run."""
        error = _error(exc)
        if error is not None and error.fatal():
            raise Fatal("%s: %s" % (reason, error))
        self._abort(reason, str(exc))

    def _abort(self, reason, why, rewind=True):
        self.events.emit("aborted", reason=reason, error=why)
        try:
            self._kafka_call("abort_transaction", self._producer.abort_transaction, TXN_TIMEOUT)
        except KafkaException as abort_exc:
            raise Fatal("abort_transaction after %s: %s" % (reason, abort_exc))
        self._in_txn = False
        self._batch_size = 0
        if rewind:
            self._rewind()
        else:
            self._pending.clear()

    def _seek(self, key, offset):
        try:
            self._consumer.seek(TopicPartition(key[0], key[1], offset))
        except KafkaException as exc:
            raise Fatal("seek back to %s[%d]@%d: %s" % (key[0], key[1], offset, exc))

    def _rewind(self):
        """Seek the partitions touched since the last commit back to their committed offsets."""
        self._rewinds += 1
        touched, self._pending = list(self._pending), {}
        assigned = {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
        wanted = [TopicPartition(topic, partition) for topic, partition in touched if (topic, partition) in assigned]
        if not wanted:
            return
        reset = str(self.settings.consumer_conf().get("auto.offset.reset")).lower()
        fallback = OFFSET_BEGINNING if reset in ("earliest", "smallest", "beginning") else OFFSET_END
        try:
            committed = self._consumer.committed(wanted, timeout=TXN_TIMEOUT)
            for tp in committed:
                if tp.offset < 0:
                    tp.offset = fallback
                self._consumer.seek(tp)
        except KafkaException as exc:
            raise Fatal("rewind: %s" % exc)
        self.events.emit("rewound", offsets=offsets_by_topic({(tp.topic, tp.partition): tp.offset for tp in committed}))

    def _kafka_call(self, what, call, *args):
        """Call a transactional API, repeating it on retriable errors as librdkafka asks, within TXN_TIMEOUT."""
        deadline = time.monotonic() + TXN_TIMEOUT
        while True:
            try:
                return call(*args)
            except KafkaException as exc:
                error = _error(exc)
                if error is not None and error.fatal():
                    raise Fatal("%s: %s" % (what, error))
                retriable = error is not None and error.retriable() and not error.txn_requires_abort()
                if not retriable or time.monotonic() >= deadline:
                    raise
                self.events.emit("retrying", call=what, error=str(error))
                time.sleep(0.1)

    # -- rebalance callbacks (run inside poll() and close()) ------------------------------------

    def _on_assign(self, consumer, partitions):
        self.ready.write("active", partitions=partitions_by_topic(partitions))
        self.events.emit("assigned", partitions=partitions_by_topic(partitions))

    def _on_revoke(self, consumer, partitions):
        self.events.emit("revoked", partitions=partitions_by_topic(partitions))
        if self.manual and not self._dead:
            # Before the partitions go: their next owner starts from these offsets. The whole open batch, also
            # for partitions kept (cooperative protocols): simplest, and correct.
            self._commit("revoke")
        self._forget(partitions)

    def _on_lost(self, consumer, partitions):
        # The group has moved on without us: our offsets can no longer be committed for these partitions and
        # their new owner starts from the committed ones, so whatever is open is dropped, not committed.
        self.events.emit("lost", partitions=partitions_by_topic(partitions))
        if self.eos and self._in_txn and not self._dead:
            self._abort("lost", "partitions lost", rewind=False)  # a Fatal raised here comes out of poll()
        self._forget(partitions)

    def _forget(self, partitions):
        for tp in partitions:
            self._pending.pop((tp.topic, tp.partition), None)
            self._known_committed.pop((tp.topic, tp.partition), None)

    # -- idle: offsets of what was skipped, not processed --------------------------------------------

    def _commit_skipped(self):
        """With nothing in hand, commit positions that moved past the committed offsets without a record: the commit
        markers of an exactly-once upstream's transactions (and aborted records, under read_committed). Else the group
        would stay one offset behind per partition for good, and its lag never reach 0 (a scaler could never idle)."""
        try:
            assignment = self._consumer.assignment()
            if not assignment:
                return
            positions = [tp for tp in self._consumer.position(assignment) if tp.offset >= 0]
            unknown = [TopicPartition(tp.topic, tp.partition) for tp in positions if (tp.topic, tp.partition) not in self._known_committed]
            if unknown:
                for tp in self._consumer.committed(unknown, timeout=5):
                    self._known_committed[(tp.topic, tp.partition)] = tp.offset
            ahead = [tp for tp in positions if tp.offset > self._known_committed.get((tp.topic, tp.partition), -1)]
        except KafkaException as exc:  # a rebalance in progress, a coordinator moving: the next look will do
            self.events.emit("idle-commit-skipped", error=str(exc))
            return
        if not ahead:
            return
        if self.eos:
            try:
                self._kafka_call("begin_transaction", self._producer.begin_transaction)
                self._in_txn = True
                self._kafka_call("send_offsets_to_transaction", self._producer.send_offsets_to_transaction, ahead,
                                 self._consumer.consumer_group_metadata(), TXN_TIMEOUT)
                self._kafka_call("commit_transaction", self._producer.commit_transaction, TXN_TIMEOUT)
                self._in_txn = False
            except KafkaException as exc:
                self._recover(exc, "markers")  # nothing was pending: the abort rewinds nothing
                return
        else:
            try:
                self._consumer.commit(offsets=ahead, asynchronous=False)
            except KafkaException as exc:
                error = _error(exc)
                if error is not None and error.fatal():
                    raise Fatal("commit: %s" % error)
                self.events.emit("commit-failed", reason="markers", error=str(exc))
                return
        done = {(tp.topic, tp.partition): tp.offset for tp in ahead}
        self._known_committed.update(done)
        self.events.emit("committed", reason="markers", offsets=offsets_by_topic(done))


def run(settings: Settings = None, process=None) -> int:
    """Run a ConsumerHelper (settings from the environment by default) until SIGTERM or SIGINT; its exit code."""
    return run_until_signalled(ConsumerHelper(settings or Settings.from_env(), process))


def run_until_signalled(helper) -> int:
    """helper.run(), stopped by SIGTERM or SIGINT (in the main thread); its exit code."""
    if threading.current_thread() is not threading.main_thread():
        return helper.run()  # signals reach the main thread only: the caller stops the helper itself
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        signal.signal(sig, lambda signum, frame: helper.stop())
    try:
        return helper.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
