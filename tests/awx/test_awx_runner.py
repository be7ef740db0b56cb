"""The collection's playbooks as AWX jobs: ansible-runner in a private data dir against the lab, judged by the artifacts.

Each test is a job template of the README's AWX section: its survey answers as extravars, its job type (run or check),
then what AWX would show: the job's status and rc, the tasks with ok/changed/failed per host (job_events), the play
recap and the set_stats artifacts. The lab's services are checked with their own clients, not with the collection.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import confluent_kafka
import pytest
from confluent_kafka.admin import AdminClient, NewTopic


@pytest.fixture
def kafka_admin(lab):
    admin = AdminClient({"bootstrap.servers": lab["KAFKA_BOOTSTRAP_SERVERS"]})
    # Other suites stop and start lab brokers; a job started meanwhile fails as it would under AWX, which tests nothing.
    brokers = len([k for k in lab if k.startswith("KAFKA_BROKER_")]) or 1
    deadline = time.monotonic() + 120
    while len(admin.list_topics(timeout=10).brokers) < brokers and time.monotonic() < deadline:
        time.sleep(1)
    made = []

    def create(name, assignment, records=0, size=100):
        futures = admin.create_topics([NewTopic(name, num_partitions=len(assignment), replica_assignment=assignment)], operation_timeout=30)
        futures[name].result(timeout=60)
        made.append(name)
        _wait_for_leaders(admin, name, len(assignment))
        if records:
            producer = confluent_kafka.Producer({"bootstrap.servers": lab["KAFKA_BOOTSTRAP_SERVERS"], "linger.ms": 20})
            for i in range(records):
                producer.produce(name, value=b"x" * size, partition=i % len(assignment))
            assert producer.flush(60) == 0
        return name

    yield admin, create
    if made:
        for future in admin.delete_topics(made, operation_timeout=30).values():
            future.exception(timeout=60)


def _wait_for_leaders(admin, topic, partitions, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        meta = admin.list_topics(topic, timeout=10).topics[topic]
        if not meta.error and len(meta.partitions) == partitions and all(p.leader >= 0 for p in meta.partitions.values()):
            return
        time.sleep(0.2)
    raise AssertionError("topic %s has no leader for every partition after %ss" % (topic, timeout))


def _commit(lab, group, topic, partitions, at_end):
    """Commit a group's offsets with the Kafka client: at the log end (caught up) or at 0 (the whole topic behind)."""
    consumer = confluent_kafka.Consumer({"bootstrap.servers": lab["KAFKA_BOOTSTRAP_SERVERS"], "group.id": group,
                                         "enable.auto.commit": False})
    try:
        offsets = []
        for p in range(partitions):
            _low, high = consumer.get_watermark_offsets(confluent_kafka.TopicPartition(topic, p), timeout=10)
            offsets.append(confluent_kafka.TopicPartition(topic, p, high if at_end else 0))
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()


def test_lag_report_job(lab, kafka_admin, unique, awx_job):
    """The scheduled lag report: a green job with the table and the set_stats artifact; a red one on a threshold."""
    _admin, create = kafka_admin
    topic = create(unique + "-lag", [[1], [2], [3]], records=300)
    _commit(lab, unique + "-behind", topic, 3, at_end=False)
    _commit(lab, unique + "-current", topic, 3, at_end=True)
    # One sample: a stopped group rates by the thresholds alone (Burrow's STOP/STALL need a window).
    survey = {"lag_report_group_pattern": "^%s-" % unique, "lag_report_window_samples": 1, "lag_report_exclude_idle": False,
              "lag_report_thresholds": {"warn_lag": 50}}

    job = awx_job("lag_report", "playbooks/lag_report.yml", survey)
    assert (job.status, job.rc) == ("successful", 0), job
    assert job.task_names() == ["Measure the lag of the consumer groups", "Show the lag per group",
                                "Publish the report for AWX workflows and callbacks", "Fail when a group crosses a threshold"], job
    [(event, changed, measured)] = job.results("Measure the lag of the consumer groups")
    assert (event, changed) == ("runner_on_ok", False), job
    rows = {row["group"]: row for row in measured["query_result"]["rows"]}
    assert rows[unique + "-behind"]["lag"] == 300 and rows[unique + "-current"]["lag"] == 0, rows
    # Burrow rates a group with lag and no member STOP (ERR); the job stays green: only a WARN breach, and
    # lag_report_fail_on_status is off.
    assert rows[unique + "-behind"]["status"] == "ERR" and rows[unique + "-current"]["status"] == "OK", rows
    assert [b["level"] for b in rows[unique + "-behind"]["breaches"]] == ["WARN"], rows
    [(_event, _changed, table)] = job.results("Show the lag per group")
    assert any(line.startswith(unique + "-behind") and line.split()[3] == "300" for line in table["msg"]), table
    stats = job.stats
    assert stats["failures"] == {} and stats["changed"] == {} and stats["ok"].get("localhost") == 4, stats
    report = stats["artifact_data"]["lag_report"]
    assert report["summary"]["groups"] == 2 and report["failing"] == [], report

    # The same template with an error threshold the lagging group crosses: the job fails, as an alert would want it.
    # Over the lab's mTLS listener, given in lag_report_connection as a template's variables would give it.
    red = dict(survey, lag_report_thresholds={"error_lag": 50})
    if lab.get("KAFKA_MTLS_BOOTSTRAP_SERVERS"):
        red["lag_report_connection"] = {"bootstrap_servers": lab["KAFKA_MTLS_BOOTSTRAP_SERVERS"].split(","), "security_protocol": "SSL",
                                        "ssl_cafile": lab["KAFKA_LAB_CA_FILE"], "ssl_certfile": lab["KAFKA_LAB_CLIENT_CERT"],
                                        "ssl_keyfile": lab["KAFKA_LAB_CLIENT_KEY"]}
    job = awx_job("lag_report_red", "playbooks/lag_report.yml", red)
    assert (job.status, job.rc) == ("failed", 2), job
    [(event, _changed, failed)] = job.results("Fail when a group crosses a threshold")
    assert event == "runner_on_failed" and unique + "-behind" in failed["msg"] and unique + "-current" not in failed["msg"], failed
    assert job.stats["failures"] == {"localhost": 1} and job.stats["artifact_data"]["lag_report"]["failing"] == [unique + "-behind"]


def test_kafka_rebalance_check_job(lab, kafka_admin, unique, awx_job, tmp_path):
    """A rebalance reviewed as a job of type check, over the lab's SASL_SSL listener with the password from a credential:
    a plan kept for approval, moves predicted, nothing moved, the password nowhere in what the job shows."""
    admin, create = kafka_admin
    topic = create(unique + "-skew", [[1]] * 6, records=600, size=1000)
    plan_file = tmp_path / "rebalance" / "plan.json"
    survey = {"kafka_rebalance_topics": [topic], "kafka_rebalance_plan_file": str(plan_file), "kafka_rebalance_sample_seconds": 1,
              "kafka_rebalance_time_limit": 5}
    credential = {}
    if lab.get("KAFKA_SASL_SSL_BOOTSTRAP_SERVERS") and lab.get("KAFKA_LAB_SCRAM_PASSWORD"):
        # The README's "Kafka SASL" credential type injects these; the protocol is in the template's variables.
        credential = {"KAFKA_SASL_USERNAME": lab["KAFKA_LAB_SCRAM_USERNAME"], "KAFKA_SASL_PASSWORD": lab["KAFKA_LAB_SCRAM_PASSWORD"]}
        survey["kafka_rebalance_connection"] = {"bootstrap_servers": lab["KAFKA_SASL_SSL_BOOTSTRAP_SERVERS"].split(","),
                                                "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                                                "ssl_cafile": lab["KAFKA_LAB_CA_FILE"]}

    job = awx_job("kafka_rebalance", "playbooks/kafka_rebalance.yml", survey, check=True, credential_env=credential)
    assert (job.status, job.rc) == ("successful", 0), job
    if credential:
        assert credential["KAFKA_SASL_PASSWORD"] not in job.shown, "the SASL password is in the job's output or events"
    [(event, changed, planned)] = job.results("Plan the rebalance")
    assert event == "runner_on_ok" and not changed and planned["plan"]["partitions"], job
    assert {p["topic"] for p in planned["plan"]["partitions"]} == {topic}, planned["plan"]
    [(event, changed, executed)] = job.results("Execute the plan in batches under the throttle")
    assert (event, changed) == ("runner_on_ok", True) and executed["moves"], job
    [(_event, _changed, reported)] = job.results("Report what would move")
    assert "partition(s) would move" in reported["msg"], reported
    assert job.stats["failures"] == {}, job.stats
    # Kept for the approval step (a second template of type run with the fingerprint as its survey answer).
    assert json.loads(plan_file.read_text()) == planned["plan"]
    meta = admin.list_topics(topic, timeout=10).topics[topic]
    assert all(p.replicas == [1] for p in meta.partitions.values()), "check mode moved replicas"


def test_container_checkpoint_job(lab, unique, awx_job, tmp_path, installed_collections):
    """The hourly checkpoint template: a version taken, the container left running; the next run inside the interval is a no-op."""
    docker = [lab.get("DOCKER_CLI", "docker"), "-H", lab["DOCKER_A_HOST"]]
    name = unique + "-counter"
    store = tmp_path / "store"
    subprocess.run(docker + ["run", "-d", "--name", name, lab["LAB_IMAGE_TINY"], "sh", "-c",
                             "i=0; while true; do echo $i; i=$((i+1)); sleep 0.1; done"], check=True, capture_output=True)
    try:
        survey = {"container_checkpoint_store": str(store), "container_checkpoint_containers": [{"name": name}],
                  "container_checkpoint_keep": 2, "container_checkpoint_interval": 3600}
        task = "Take a version of each protected container and keep the newest ones"

        job = awx_job("container_checkpoint", "playbooks/container_checkpoint.yml", survey)
        assert (job.status, job.rc) == ("successful", 0), job
        [(event, changed, taken)] = job.results(task)
        assert (event, changed) == ("runner_on_ok", True), job
        [item] = taken["results"]
        assert item["changed"] and item["checkpoint"]["name"].startswith("ckpt-"), item
        assert job.stats["changed"] == {"localhost": 1} and job.stats["failures"] == {}, job.stats
        # The role ran from the collection the project sync installed, not from the work tree.
        role_tasks = [path for path in job.task_paths() if "/roles/" in path]
        assert role_tasks and all(path.startswith(installed_collections["roles"]) for path in role_tasks), role_tasks
        assert list((store / name).glob("*/manifest.json")), sorted(p.name for p in store.rglob("*"))

        # The next scheduled run, inside the interval: green, nothing changed.
        job = awx_job("container_checkpoint_again", "playbooks/container_checkpoint.yml", survey)
        assert (job.status, job.rc) == ("successful", 0), job
        [(event, changed, _kept)] = job.results(task)
        assert (event, changed) == ("runner_on_ok", False), job
        assert job.stats["changed"] == {}, job.stats
        running = subprocess.run(docker + ["inspect", "-f", "{{.State.Running}}", name], check=True, capture_output=True, text=True)
        assert running.stdout.strip() == "true"
    finally:
        subprocess.run(docker + ["rm", "-f", name], check=False, capture_output=True)
        shutil.rmtree(store, ignore_errors=True)
