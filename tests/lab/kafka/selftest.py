"""Checks the lab's Kafka with the Python clients the collection uses (requirements.txt):
confluent-kafka and kafka-python's KafkaAdminClient, plus a FileStreamSink through Connect.

This is how the Kafka version in tests/lab/kafka/pom.xml was chosen; run it again after
changing that version:   tests/lab/kafka.sh selftest   (uses the repo's .venv when present)
"""
import json
import os
import sys
import time
import urllib.request
import uuid

CHECKS = []


def check(name):
    def wrap(fn):
        CHECKS.append((name, fn))
        return fn
    return wrap


def load_env(path):
    env = {}
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                env[key] = value
    return env


def wait_until(what, fn, seconds=30, every=0.2):
    deadline = time.monotonic() + seconds
    while True:
        result = fn()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(every)


class Ctx:
    pass


ctx = Ctx()


# ------------------------------------------------------------------------- confluent-kafka

@check("confluent-kafka: create topic (3 partitions, RF 2)")
def ck_create():
    from confluent_kafka.admin import AdminClient, NewTopic
    ctx.ck_admin = AdminClient({"bootstrap.servers": ctx.bootstrap})
    futures = ctx.ck_admin.create_topics(
        [NewTopic(ctx.topic, num_partitions=3, replication_factor=2)])
    futures[ctx.topic].result(30)
    wait_until("topic metadata", lambda: ctx.topic in ctx.ck_admin.list_topics(timeout=5).topics
               and all(p.leader >= 0 for p in
                       ctx.ck_admin.list_topics(timeout=5).topics[ctx.topic].partitions.values()))


@check("confluent-kafka: produce 300 messages")
def ck_produce():
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": ctx.bootstrap, "acks": "all"})
    errors = []
    for i in range(300):
        producer.produce(ctx.topic, key=str(i).encode(), value=json.dumps({"n": i}).encode(),
                         on_delivery=lambda err, msg: err and errors.append(err))
    assert producer.flush(30) == 0 and not errors, errors


@check("confluent-kafka: consume in a group and commit")
def ck_consume():
    from confluent_kafka import Consumer
    consumer = Consumer({"bootstrap.servers": ctx.bootstrap, "group.id": ctx.group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([ctx.topic])
    seen = 0
    deadline = time.monotonic() + 60
    while seen < 300 and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            seen += 1
    assert seen == 300, "consumed %d of 300" % seen
    consumer.commit(asynchronous=False)
    consumer.close()


@check("confluent-kafka: list_topics / list+describe consumer groups / group offsets")
def ck_groups():
    from confluent_kafka import ConsumerGroupTopicPartitions
    md = ctx.ck_admin.list_topics(timeout=10)
    assert sorted(md.brokers) == [1, 2, 3], md.brokers
    groups = ctx.ck_admin.list_consumer_groups().result(10)
    assert ctx.group in [g.group_id for g in groups.valid], groups.valid
    desc = ctx.ck_admin.describe_consumer_groups([ctx.group])[ctx.group].result(10)
    assert desc.group_id == ctx.group
    offs = ctx.ck_admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(ctx.group)])[ctx.group].result(10)
    assert sum(tp.offset for tp in offs.topic_partitions) == 300, offs.topic_partitions


@check("confluent-kafka: list_offsets (earliest/latest)")
def ck_list_offsets():
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec
    req = {TopicPartition(ctx.topic, p): OffsetSpec.latest() for p in range(3)}
    res = ctx.ck_admin.list_offsets(req)
    assert sum(f.result(10).offset for f in res.values()) == 300


# ------------------------------------------------------------------------- kafka-python

@check("kafka-python: KafkaAdminClient describe_cluster / describe_metadata_quorum")
def kp_cluster():
    from kafka import KafkaAdminClient
    ctx.kp = KafkaAdminClient(bootstrap_servers=ctx.bootstrap, request_timeout_ms=30000)
    cluster = ctx.kp.describe_cluster()
    ids = sorted(b["broker_id"] for b in cluster["brokers"])
    assert ids == [1, 2, 3], cluster
    racks = sorted(b.get("rack") for b in cluster["brokers"])
    assert racks == ["a", "b", "c"], racks
    quorum = ctx.kp.describe_metadata_quorum()
    assert quorum, quorum


@check("kafka-python: list_groups / describe_groups / list_group_offsets")
def kp_groups():
    groups = ctx.kp.list_groups()
    names = [g["group_id"] for g in groups]
    assert ctx.group in names, groups
    desc = ctx.kp.describe_groups([ctx.group])
    assert desc, desc
    offsets = ctx.kp.list_group_offsets({ctx.group: None})
    flat = offsets[ctx.group] if ctx.group in offsets else offsets
    assert sum(o.offset for o in flat.values()) == 300, offsets


@check("kafka-python: alter_partition_reassignments + list_partition_reassignments")
def kp_reassign():
    from kafka import TopicPartition
    topics = ctx.kp.describe_topics([ctx.topic])
    parts = {p["partition_index"]: p["replica_nodes"] for p in topics[0]["partitions"]}
    tp = TopicPartition(ctx.topic, 0)
    current = parts[0]
    target = [b for b in (1, 2, 3) if b not in current] + current[:1]
    ctx.kp.alter_partition_reassignments({tp: target})
    wait_until("reassignment to finish",
               lambda: not ctx.kp.list_partition_reassignments([tp]), seconds=60)

    def moved():
        t = ctx.kp.describe_topics([ctx.topic])[0]
        reps = {p["partition_index"]: p["replica_nodes"] for p in t["partitions"]}
        return sorted(reps[0]) == sorted(target)
    wait_until("replicas %s" % target, moved, seconds=30)
    ctx.reassigned = (current, target)


@check("kafka-python: elect_leaders (preferred) / describe_log_dirs")
def kp_elect_logdirs():
    ctx.kp.elect_leaders(0, {ctx.topic: [0, 1, 2]}, raise_errors=False)
    dirs = ctx.kp.describe_log_dirs()
    assert dirs, dirs


@check("kafka-python: list_partition_offsets / KafkaProducer+KafkaConsumer")
def kp_clients():
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import OffsetSpec
    res = ctx.kp.list_partition_offsets(
        {TopicPartition(ctx.topic, p): OffsetSpec.LATEST for p in range(3)})
    total = sum((v.offset if hasattr(v, "offset") else v[0]) for v in res.values())
    assert total == 300, res
    producer = KafkaProducer(bootstrap_servers=ctx.bootstrap, acks="all")
    producer.send(ctx.topic, key=b"kp", value=b'{"n": -1}', partition=0).get(30)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=ctx.bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=10000)
    consumer.assign([TopicPartition(ctx.topic, 0)])
    assert any(m.key == b"kp" for m in consumer), "kafka-python consumer missed its message"
    consumer.close()


# ------------------------------------------------------------------------- Connect

def rest(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(ctx.connect + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read().decode()
        return json.loads(text) if text else None


@check("connect: FileStreamSink connector writes the topic to a file")
def connect_sink():
    plugins = [p["class"] for p in rest("GET", "/connector-plugins")]
    assert any(p.endswith("FileStreamSinkConnector") for p in plugins), plugins
    out = os.path.join(ctx.lab, "kafka", "selftest-sink-%s.txt" % ctx.suffix)
    name = "lab-selftest-sink-" + ctx.suffix
    rest("PUT", "/connectors/%s/config" % name, {
        "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
        "tasks.max": "1", "topics": ctx.topic, "file": out,
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.storage.StringConverter"})
    try:
        def lines():
            if not os.path.exists(out):
                return 0
            with open(out) as fh:
                return sum(1 for unused in fh) >= 301
        wait_until("301 lines in " + out, lines, seconds=60)
        status = rest("GET", "/connectors/%s/status" % name)
        assert status["connector"]["state"] == "RUNNING", status
    finally:
        rest("DELETE", "/connectors/" + name)
        if os.path.exists(out):
            os.remove(out)
        # The sink's consumer group empties once its task has stopped; only then may the topic
        # go (a task still committing offsets for a deleted topic hangs for a minute).
        wait_until("sink task stopped", lambda: _delete_group("connect-" + name), seconds=60,
                   every=0.5)


def _delete_group(group):
    try:
        ctx.ck_admin.delete_consumer_groups([group])[group].result(10)
        return True
    except Exception as exc:
        return "GROUP_ID_NOT_FOUND" in str(exc)  # NON_EMPTY_GROUP: still in use


def main():
    env = load_env(sys.argv[1])
    ctx.bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    ctx.connect = env["KAFKA_CONNECT_URL"]
    ctx.lab = os.path.dirname(os.path.abspath(sys.argv[1]))
    ctx.suffix = uuid.uuid4().hex[:8]
    ctx.topic = "lab-selftest-" + ctx.suffix
    ctx.group = "lab-selftest-group-" + ctx.suffix
    import confluent_kafka
    import kafka
    print("Kafka %s at %s; confluent-kafka %s (librdkafka %s), kafka-python %s" % (
        env.get("KAFKA_VERSION"), ctx.bootstrap, confluent_kafka.__version__,
        confluent_kafka.libversion()[0], kafka.__version__))
    failed = 0
    for name, fn in CHECKS:
        t0 = time.monotonic()
        try:
            fn()
            print("ok    %-75s %5.1fs" % (name, time.monotonic() - t0))
        except Exception as exc:  # report every check, not only the first failure
            failed += 1
            print("FAIL  %-75s %5.1fs\n      %s: %s" % (
                name, time.monotonic() - t0, exc.__class__.__name__, exc))
    try:
        ctx.ck_admin.delete_topics([ctx.topic])[ctx.topic].result(30)
        _delete_group(ctx.group)
    except Exception as exc:
        print("cleanup: %s" % exc)
    print("%d checks, %d failed" % (len(CHECKS), failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
