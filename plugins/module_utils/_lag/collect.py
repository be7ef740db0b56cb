# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Kafka side of kafka_lag_info: every read batched, never one round trip per partition.

Per sample: one OffsetFetch per group, all in flight at once (librdkafka takes one group per
request), then one ListOffsets call for every partition of every selected group (batched by
librdkafka into one request per partition leader). Once: one ListGroups, one DescribeGroups
call for all selected groups (batched per coordinator), one metadata request. For lag in
seconds: one consumer fetches the record at each lagging committed offset, all partitions at
once (one Fetch per broker carries them all); a partition where several groups sit at different
offsets is read at each of them in turn, ascending, by seeking.
"""

from __future__ import annotations

import re
import time

from ansible_collections.streamops.day2.plugins.module_utils._kafka import KafkaError, error_text
from ansible_collections.streamops.day2.plugins.module_utils._lag.report import Group, Member, Sample

try:
    import confluent_kafka
    from confluent_kafka import ConsumerGroupTopicPartitions, IsolationLevel, TopicPartition
    from confluent_kafka.admin import OffsetSpec
except ImportError:
    pass  # reported by KafkaModule through missing_required_lib

READ_FETCH_BYTES = 65536   # per partition and fetch, for the record-timestamp reads
RECORD_OVERHEAD = 20       # bytes of a record besides key and value, roughly (for the read-on or seek choice)
READ_POLL = 0.02           # seconds a consume() call may wait: it waits that long unless its batch fills up

# Kafka's own spelling of group states (as kafka-consumer-groups.sh prints them).
STATE_NAMES = {
    "UNKNOWN": "Unknown", "PREPARING_REBALANCING": "PreparingRebalance", "COMPLETING_REBALANCING": "CompletingRebalance",
    "STABLE": "Stable", "DEAD": "Dead", "EMPTY": "Empty", "ASSIGNING": "Assigning", "RECONCILING": "Reconciling",
}


def _state_name(state):
    name = getattr(state, "name", None) or str(state)
    return STATE_NAMES.get(name, name.title())


def _type_name(kind):
    return (getattr(kind, "name", None) or "unknown").lower()


class LagCollector:
    """Takes the samples for kafka_lag_info through one KafkaModule's clients."""

    def __init__(self, kafka, options):
        self.kafka = kafka
        self.options = options  # report.Options: topic filters and the like
        self.isolation_level = kafka.params.get("isolation_level") or "read_uncommitted"
        self.warnings = []
        self.listed = {}  # group id -> listing, from select_groups
        self.listing = None  # the ListGroups future, once ask_groups sent it

    # -- groups ------------------------------------------------------------------------------

    def ask_groups(self):
        """Send the ListGroups request now, so that the caller's next request overlaps it (list_groups reads it)."""
        self.listing = self.kafka.admin.list_consumer_groups(request_timeout=self.kafka.timeout)

    def list_groups(self):
        """{group id: listing} of every consumer group the brokers know."""
        if self.listing is None:
            self.ask_groups()
        result = self.kafka.wait_for(self.listing)
        self.listing = None
        for error in result.errors or []:
            self.warnings.append("Listing consumer groups: %s" % error_text(error))
        return {listing.group_id: listing for listing in result.valid or []}

    def select_groups(self, names, pattern):
        """Group ids to report: the named ones (all must exist), those matching pattern, or all."""
        listed = self.listed = self.list_groups()
        if names:
            unknown = [name for name in names if name not in listed]
            if unknown:
                known = self.kafka.unlisted_groups_known(unknown)   # fails if hidden by ACLs rather than unknown
                unknown = [name for name in unknown if name not in known]
            if unknown:
                raise KafkaError("Unknown consumer group%s: %s. The brokers at %s know %d group%s%s." % (
                    "" if len(unknown) == 1 else "s", ", ".join(unknown), self.kafka.servers, len(listed),
                    "" if len(listed) == 1 else "s", _some_names(listed)))
            selected = list(dict.fromkeys(names))
        else:
            selected = sorted(listed)
        if pattern:
            regex = re.compile(pattern)
            selected = [name for name in selected if regex.search(name)]
        return selected

    def describe_groups(self, names):
        """report.Group for each name, in order (members with their assignments), all described now."""
        return self._described(names, self._ask_describe(names, trust_listing=False))

    def _ask_describe(self, names, trust_listing=True):
        """DescribeGroups futures; a group the listing just gave as Empty has no member to describe."""
        wanted = [name for name in names if not (trust_listing and self._listed_empty(name))]
        if not wanted:
            return {}
        return self.kafka.admin.describe_consumer_groups(wanted, request_timeout=self.kafka.timeout)

    def _listed_empty(self, name):
        listing = self.listed.get(name)
        return listing is not None and getattr(getattr(listing, "state", None), "name", None) == "EMPTY"

    def _described(self, names, futures):
        groups = []
        for name in names:
            future = futures.get(name)
            if future is None:
                listing = self.listed[name]
                groups.append(Group(name=name, state=_state_name(listing.state), type=_type_name(getattr(listing, "type", None)),
                                    simple=bool(listing.is_simple_consumer_group)))
                continue
            description = self.kafka.wait_for(future)
            members = [
                Member(member_id=m.member_id, client_id=m.client_id, host=m.host, group_instance_id=m.group_instance_id,
                       assignment=[(tp.topic, tp.partition) for tp in (m.assignment.topic_partitions if m.assignment else [])])
                for m in description.members or []
            ]
            groups.append(Group(
                name=name,
                state=_state_name(getattr(description, "state", None)),
                type=_type_name(getattr(description, "type", None)),
                assignor=description.partition_assignor or None,
                coordinator=description.coordinator.id if description.coordinator is not None else None,
                simple=bool(description.is_simple_consumer_group),
                members=members,
            ))
        return groups

    # -- offsets -----------------------------------------------------------------------------

    def committed_offsets(self, names):
        """{group: {(topic, partition): offset}}; one OffsetFetch per group, all in flight together."""
        return self._committed(names, self._ask_committed(names))

    def _ask_committed(self, names):
        futures = {}
        for name in names:
            futures.update(self.kafka.admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(name)], request_timeout=self.kafka.timeout))
        return futures

    def _committed(self, names, futures):
        committed = {}
        wants_topic = self.options.wants_topic
        for name in names:
            result = self.kafka.wait_for(futures[name])
            offsets = {}
            for tp in result.topic_partitions or []:
                if tp.error is not None:
                    self.warnings.append("Committed offset of group %s on %s[%d]: %s" % (name, tp.topic, tp.partition, tp.error.str()))
                elif tp.offset >= 0 and wants_topic(tp.topic):
                    offsets[(tp.topic, tp.partition)] = tp.offset
            committed[name] = offsets
        return committed

    def log_end_offsets(self, keys):
        """{(topic, partition): log-end offset} of keys in one batched ListOffsets call."""
        if not keys:
            return {}
        request = {TopicPartition(topic, partition): OffsetSpec.latest() for topic, partition in keys}
        isolation = IsolationLevel.READ_COMMITTED if self.isolation_level == "read_committed" else IsolationLevel.READ_UNCOMMITTED
        futures = self.kafka.admin.list_offsets(request, isolation_level=isolation, request_timeout=self.kafka.timeout)
        ends = {}
        failed = []
        for tp, future in futures.items():
            try:
                ends[(tp.topic, tp.partition)] = future.result(timeout=self.kafka.timeout).offset
            except confluent_kafka.KafkaException as e:
                failed.append("%s[%d] (%s)" % (tp.topic, tp.partition, error_text(e)))
        if failed:
            self.warnings.append("No log-end offset for %d partition%s: %s" % (
                len(failed), "" if len(failed) == 1 else "s", ", ".join(sorted(failed)[:5]) + (" ..." if len(failed) > 5 else "")))
        return ends

    def partition_counts(self):
        """{topic: partition count} from one metadata request."""
        return {name: len(topic.partitions) for name, topic in self.kafka.metadata().topics.items() if topic.error is None}

    def first_sample(self, names, counts):
        """(groups described, first sample): the descriptions and the committed offsets asked for at once."""
        asked_groups = self._ask_describe(names)
        asked_offsets = self._ask_committed(names)
        groups = self._described(names, asked_groups)
        return groups, self._sample(groups, self._committed(names, asked_offsets), counts)

    def sample(self, groups, counts):
        """One sample: committed offsets of every group, then the log-end offsets of their partitions
        (in that order, so a lag is never below zero because of the time between the two)."""
        return self._sample(groups, self.committed_offsets([g.name for g in groups]), counts)

    def _sample(self, groups, committed, counts):
        keys = set()
        for offsets in committed.values():
            keys.update(offsets)
        for group in groups:
            for member in group.members:
                keys.update(key for key in member.assignment if self.options.wants_topic(key[0]))
        # Every partition of the topics consumed: the union of report.group_partitions over the groups.
        for topic in {topic for topic, unused in keys}:
            keys.update((topic, partition) for partition in range(counts.get(topic, 0)))
        at = time.time()
        return Sample(at=at, committed=committed, log_end=self.log_end_offsets(sorted(keys)))

    # -- record timestamps -------------------------------------------------------------------

    def record_times(self, reads, timeout):
        """{(topic, partition, offset): timestamp in ms} of the first record at or after each offset
        (None: no record there, only transaction markers; absent: not read in time).

        One consumer, every partition assigned at its lowest wanted offset, so each Fetch request
        carries all the partitions a broker leads. Wanted offsets of one partition are taken in
        ascending order: by reading on when the next one is within about one fetch, by seeking
        when it is further. A partition is paused once its last offset is read. A partition that
        holds no record at or after the offset (only transaction markers) reports its end instead.
        """
        if not reads:
            return {}
        wanted = {}
        for topic, partition, offset in reads:
            wanted.setdefault((topic, partition), []).append(offset)
        for offsets in wanted.values():
            offsets.sort()
        consumer = self.kafka.consumer(**{
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",   # offset gone to retention: the oldest record left
            "isolation.level": self.isolation_level,
            "fetch.wait.max.ms": 100,
            "max.partition.fetch.bytes": READ_FETCH_BYTES,
            "queued.min.messages": 1,
            # With a queue threshold of one message, librdkafka would otherwise hold a partition's
            # next fetch back for a whole second (its default) whenever unread messages sit queued.
            "fetch.queue.backoff.ms": 10,
            "enable.auto.offset.store": False,
        })
        times = {}
        failed = {}
        try:
            consumer.assign([TopicPartition(t, p, offsets[0]) for (t, p), offsets in wanted.items()])
            deadline = time.monotonic() + timeout
            pending = len(reads)
            while pending and time.monotonic() < deadline:
                done = []  # partitions to pause, in one call per batch of messages
                for message in consumer.consume(num_messages=10000, timeout=READ_POLL):
                    key = (message.topic(), message.partition())
                    offsets = wanted.get(key)
                    if not offsets:
                        continue  # done with this partition, or an error of the client as a whole
                    error = message.error()
                    if error is not None:
                        if error.code() == confluent_kafka.KafkaError._PARTITION_EOF:
                            for offset in offsets:  # no record at or after these offsets
                                times[(key[0], key[1], offset)] = None
                        else:
                            failed[key] = error.str()
                        pending -= len(offsets)
                        del offsets[:]
                        done.append(TopicPartition(*key))
                        continue
                    at = message.offset()
                    if at < offsets[0]:
                        continue  # reading on through a short gap to the next wanted offset
                    stamp = message.timestamp()[1]
                    while offsets and offsets[0] <= at:
                        times[(key[0], key[1], offsets.pop(0))] = stamp
                        pending -= 1
                    if not offsets:
                        done.append(TopicPartition(*key))
                    elif (offsets[0] - at) * (len(message) + RECORD_OVERHEAD) > READ_FETCH_BYTES:
                        consumer.seek(TopicPartition(key[0], key[1], offsets[0]))  # far: seek rather than read on
                if done:
                    consumer.pause(done)
        finally:
            consumer.close()
        if failed:
            self.warnings.append("lag_seconds is unknown on %d partition%s the reader could not fetch: %s" % (
                len(failed), "" if len(failed) == 1 else "s",
                ", ".join("%s[%d] (%s)" % (t, p, e) for (t, p), e in sorted(failed.items())[:5])))
        missing = len(reads) - len(times) - sum(1 for t, p, unused in reads if (t, p) in failed)
        if missing > 0:
            self.warnings.append("lag_seconds is unknown for %d partition offset%s: their records were not read within %gs." % (
                missing, "" if missing == 1 else "s", timeout))
        return times


def _some_names(listed):
    if not listed:
        return ""
    names = sorted(listed)
    return " (%s%s)" % (", ".join(names[:10]), ", ..." if len(names) > 10 else "")
