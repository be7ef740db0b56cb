# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster model read live from the brokers (the only part of the planner with I/O).

- brokers and racks: DescribeCluster;
- replicas and leaders: topic metadata;
- size of a replica: DescribeLogDirs (kafka-python: librdkafka has no such call), the leader's copy;
- rates, when sample_seconds > 0, from two samples that far apart, each one batched call:
  nw_in  = growth of the log-end offset x the partition's bytes per message (its size over the
           offsets it retains), per second;
  nw_out = the same for the growth of every consumer group's committed offset on the partition
           (what consumers fetched), summed over groups.
"""

from __future__ import annotations

import time

from ansible_collections.streamops.day2.plugins.module_utils._kafka import KafkaError, error_text

try:
    import confluent_kafka
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import OffsetSpec
except ImportError:
    pass  # reported by KafkaModule through missing_required_lib


class LiveModelReader:
    """Builds a cluster-model dict from the brokers through one KafkaModule's clients."""

    def __init__(self, kafka, sample_seconds=0.0, capacity=None, drain_brokers=(), sleep=time.sleep):
        self.kafka = kafka
        self.drain_brokers = set(drain_brokers or ())
        self.sample_seconds = sample_seconds
        self.capacity = capacity or {}
        self.sleep = sleep
        self.warnings = []

    def read(self):
        brokers = self.brokers()
        partitions = self.partitions()
        self._add_offline_brokers(brokers, partitions)
        if not partitions:
            self.warnings.append("The cluster has no partitions to balance.")
        sizes = self.sizes()
        keys = [(p["topic"], p["partition"]) for p in partitions]
        rates = self.rates(keys, sizes, partitions) if self.sample_seconds > 0 and keys else {}
        for part in partitions:
            key = (part["topic"], part["partition"])
            on_broker = sizes.get(key, {})
            # The leader's copy is the reference; a follower still catching up would under-count.
            part["size"] = on_broker.get(part["leader"], max(on_broker.values()) if on_broker else 0)
            part["nw_in"], part["nw_out"] = rates.get(key, (0.0, 0.0))
        return {"brokers": brokers, "partitions": partitions}

    # -- metadata ------------------------------------------------------------------------------

    def brokers(self):
        cluster = self.kafka.wait_for(self.kafka.admin.describe_cluster(request_timeout=self.kafka.timeout))
        out = []
        for node in sorted(cluster.nodes, key=lambda n: n.id):
            broker = {"id": node.id}
            if node.rack:
                broker["rack"] = node.rack
            if self.capacity:
                broker["capacity"] = dict(self.capacity)
            out.append(broker)
        if any("rack" in b for b in out) and not all("rack" in b for b in out):
            self.warnings.append("Some brokers have no rack (broker.rack); planning without racks.")
            for broker in out:
                broker.pop("rack", None)
        return out

    def _add_offline_brokers(self, brokers, partitions):
        """Brokers that hold replicas but are not alive: fine only if they are being drained."""
        alive = {b["id"] for b in brokers}
        offline = sorted({b for p in partitions for b in p["replicas"]} - alive)
        kept = [b for b in offline if b not in self.drain_brokers]
        if kept:
            raise KafkaError("Broker %d holds replicas but is not alive; bring it back, or move its replicas away with "
                             "drain_brokers: [%s]." % (kept[0], ", ".join(str(b) for b in offline)))
        racks = any("rack" in b for b in brokers)
        for bid in offline:
            # Its rack is unknown, and does not matter: nothing is placed on a drained broker.
            brokers.append(dict({"id": bid}, **({"rack": "(offline)"} if racks else {})))
            self.warnings.append("Broker %d is not alive; its replicas are moved away as it is drained." % bid)

    def partitions(self):
        out = []
        leaderless = []
        for name, topic in sorted(self.kafka.metadata().topics.items()):
            if topic.error is not None:
                self.warnings.append("Topic %s skipped: %s." % (name, error_text(topic.error)))
                continue
            for number, meta in sorted(topic.partitions.items()):
                replicas = list(meta.replicas)
                if not replicas:
                    continue
                leader = meta.leader if meta.leader in replicas else replicas[0]
                if meta.leader not in replicas:
                    leaderless.append("%s-%d" % (name, number))
                out.append({"topic": name, "partition": number, "replicas": replicas, "leader": leader})
        if not out and self.kafka.invisible_note("topics"):
            self.warnings.append("The brokers list no topic%s." % self.kafka.invisible_note("topics"))
        if leaderless:
            self.warnings.append("%d partition(s) have no leader now (%s); their first replica is taken as leader." % (
                len(leaderless), ", ".join(leaderless[:5]) + (" ..." if len(leaderless) > 5 else "")))
        return out

    def sizes(self):
        """{(topic, partition): {broker id: bytes}} from DescribeLogDirs on every broker."""
        try:
            answers = self.kafka.kafka_python_admin.describe_log_dirs()
        except KafkaError:
            raise
        except Exception as e:  # kafka-python raises many unrelated types
            raise KafkaError("DescribeLogDirs failed: %s." % error_text(e))
        sizes = {}
        for answer in answers:
            broker = answer["broker"]
            for log_dir in answer["log_dirs"]:
                if log_dir.get("error_code"):
                    self.warnings.append("Broker %d log dir %s reports error code %d; its replicas count as empty." % (
                        broker, log_dir.get("log_dir"), log_dir["error_code"]))
                    continue
                for topic in log_dir.get("topics", []):
                    for part in topic.get("partitions", []):
                        if part.get("is_future_key"):
                            continue  # a copy being moved between log dirs right now
                        sizes.setdefault((topic["name"], part["partition_index"]), {})[broker] = part["partition_size"]
        return sizes

    # -- rates -----------------------------------------------------------------------------------

    def _offsets(self, keys, spec):
        request = {TopicPartition(topic, partition): spec for topic, partition in keys}
        futures = self.kafka.admin.list_offsets(request, request_timeout=self.kafka.timeout)
        out = {}
        for tp, future in futures.items():
            try:
                out[(tp.topic, tp.partition)] = future.result(timeout=self.kafka.timeout).offset
            except confluent_kafka.KafkaException:
                pass  # no leader right now: this partition's rates stay 0
        return out

    def _groups(self):
        result = self.kafka.wait_for(self.kafka.admin.list_consumer_groups(request_timeout=self.kafka.timeout))
        return sorted(listing.group_id for listing in result.valid or [])

    def _committed(self, groups):
        """{(topic, partition): {group: offset}}; one OffsetFetch per group, all in flight at once."""
        futures = {}
        for group in groups:
            futures.update(self.kafka.admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(group)], request_timeout=self.kafka.timeout))
        out = {}
        for group in groups:
            try:
                result = futures[group].result(timeout=self.kafka.timeout)
            except confluent_kafka.KafkaException as e:
                self.warnings.append("Committed offsets of group %s unread: %s." % (group, error_text(e)))
                continue
            for tp in result.topic_partitions or []:
                if tp.error is None and tp.offset >= 0:
                    out.setdefault((tp.topic, tp.partition), {})[group] = tp.offset
        return out

    def rates(self, keys, sizes, partitions):
        """{(topic, partition): (nw_in, nw_out)} in bytes/s over sample_seconds."""
        leader = {(p["topic"], p["partition"]): p["leader"] for p in partitions}
        earliest = self._offsets(keys, OffsetSpec.earliest())
        groups = self._groups()
        start = time.monotonic()
        end0, committed0 = self._offsets(keys, OffsetSpec.latest()), self._committed(groups)
        self.sleep(self.sample_seconds)
        end1, committed1 = self._offsets(keys, OffsetSpec.latest()), self._committed(groups)
        elapsed = max(time.monotonic() - start, 1e-3)
        out = {}
        for key in keys:
            if key not in end0 or key not in end1:
                continue
            on_broker = sizes.get(key, {})
            size = on_broker.get(leader[key], max(on_broker.values()) if on_broker else 0)
            retained = end1[key] - earliest.get(key, 0)
            per_message = float(size) / retained if retained > 0 else 0.0
            produced = max(0, end1[key] - end0[key])
            before, after = committed0.get(key, {}), committed1.get(key, {})
            consumed = sum(max(0, offset - before[group]) for group, offset in after.items() if group in before)
            out[key] = (round(produced * per_message / elapsed, 3), round(consumed * per_message / elapsed, 3))
        return out
