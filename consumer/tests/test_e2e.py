# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""End to end against the lab's Kafka: every input number appears in the output exactly once across stops,
crashes, rebalances and a gated hand-over. The helper runs as its container does, `python -m streamops_consumer`."""

from __future__ import annotations

import io
import json
import signal
import threading
import time

import pytest

from kafkalab import assert_each_once, wait_until
from streamops_consumer import ConsumerHelper, Settings

N = 1200            # input records, 300 per partition
SLOW_MS = 2         # per record: a whole run takes a few seconds, so that there is a "mid-stream" to stop in
pytestmark = pytest.mark.timeout(120)


def stop(instance, sig=signal.SIGTERM):
    """Signal the instance; its exit code and the seconds it took to exit."""
    started = time.monotonic()
    instance.signal(sig)
    rc = instance.wait_exit(10)
    return rc, time.monotonic() - started


def committed_on_shutdown(lab, names, instance):
    """What the group had committed when the instance was gone; its own log line must agree where it tells."""
    event = instance.wait_event("committed", reason="shutdown", timeout=1)
    done = lab.committed(names["group"], names["input"])
    logged = sum(sum(parts.values()) for parts in event["offsets"].values())
    assert logged <= done, "logged %s, the group has %d" % (event["offsets"], done)
    return done


def finish(lab, names, *instances, check=True):
    """Wait for the whole input to be committed, stop the instances, check (and return) the output."""
    lab.wait_committed(names["group"], names["input"], N)
    for instance in instances:
        rc, seconds = stop(instance)
        assert rc == 0, instance.stderr()
    records = lab.read_all(names["output"])
    if check:
        assert_each_once(records, N)
    return records


@pytest.mark.parametrize("mode", ["exactly-once", "at-least-once"])
def test_sigterm_mid_stream_and_restart(lab, names, spawn, mode):
    """(a) and (c): SIGTERM commits what was done and leaves at once; the restarted instance does the rest."""
    lab.produce_sequence(names["input"], N)
    first = spawn("app-0", STREAMOPS_MODE=mode, STREAMOPS_SLOW_MS=SLOW_MS)
    first.wait_event("assigned")
    assert first.ready_state() == "active"
    lab.wait_committed(names["group"], names["input"], N // 4)
    rc, seconds = stop(first)
    assert rc == 0, first.stderr()
    assert seconds < 2.0, "took %.2fs to stop" % seconds
    assert first.ready_state() is None, "ready file left behind"
    done = committed_on_shutdown(lab, names, first)
    assert N // 4 <= done < N, "stopped at %d of %d: not mid-stream" % (done, N)
    assert done == sum(sum(parts.values()) for parts in first.find("committed", reason="shutdown")[0]["offsets"].values())
    second = spawn("app-0", STREAMOPS_MODE=mode)
    finish(lab, names, second)
    print("\n%s: SIGTERM after %d of %d records, exit in %.2fs; restart finished, each once" % (mode, done, N, seconds))


def test_exactly_once_sigkill_mid_stream_and_restart(lab, names, spawn):
    """(b): a crash leaves a transaction open; the restart (same transactional id) fences and aborts it."""
    lab.produce_sequence(names["input"], N)
    # Static membership: the restarted container takes its old member's place without waiting for its session to end.
    env = dict(STREAMOPS_MODE="exactly-once", STREAMOPS_SLOW_MS=SLOW_MS, STREAMOPS_GROUP_INSTANCE_ID="app-0")
    first = spawn("app-0", **env)
    lab.wait_committed(names["group"], names["input"], N // 4)
    rc, seconds = stop(first, signal.SIGKILL)
    assert rc == -signal.SIGKILL
    done = lab.committed(names["group"], names["input"])
    assert done < N, "finished before the kill"
    second = spawn("app-0", **env)
    finish(lab, names, second)
    # Not required, but shows what the crash left behind: aborted outputs that read_committed readers skip.
    everything = lab.read_all(names["output"], isolation="read_uncommitted")
    print("\nSIGKILL after %d committed of %d; restart finished, each once; %d aborted outputs in the log"
          % (done, N, len(everything) - N))


@pytest.mark.parametrize("protocol, assignor", [("classic", None), ("classic", "cooperative-sticky"), ("consumer", None)])
def test_exactly_once_two_instances_one_stopped(lab, names, spawn, protocol, assignor):
    """(d): a second instance joins mid-stream and the first commits its open transaction on revoke; then the
    first stops mid-stream and the second takes its partitions over; still each record once."""
    lab.produce_sequence(names["input"], N)
    env = dict(STREAMOPS_MODE="exactly-once", STREAMOPS_GROUP_PROTOCOL=protocol)
    if assignor:
        env["STREAMOPS_ASSIGNOR"] = assignor
    # The first instance is slow (12 s for the whole input) and commits only when it must, on revoke and on
    # shutdown: whatever the rebalances' timing (KIP-848: the broker's heartbeat interval, 5 s), its work at the
    # revocation is in an open transaction that only the revoke path can commit.
    first = spawn("app-a", STREAMOPS_SLOW_MS=10, STREAMOPS_BATCH=100000, STREAMOPS_BATCH_MS=600000,
                  KAFKA_CONF_TRANSACTION_TIMEOUT_MS=60000, **env)
    first.wait_event("assigned")
    time.sleep(1.0)
    assert lab.committed(names["group"], names["input"]) == 0
    second = spawn("app-b", STREAMOPS_SLOW_MS=SLOW_MS, **env)
    wait_until("the second instance to get partitions", lambda: any(e["partitions"] for e in second.find("assigned")), 30)
    revoked = first.wait_event("revoked", timeout=30)
    on_revoke = first.wait_event("committed", reason="revoke", timeout=5)
    assert on_revoke["offsets"], first.events
    lab.wait_committed(names["group"], names["input"], lab.committed(names["group"], names["input"]) + N // 10)
    rc, seconds = stop(first)
    assert rc == 0, first.stderr()
    assert seconds < 2.0, "took %.2fs to stop" % seconds
    done = committed_on_shutdown(lab, names, first)
    assert done < N, "the input was done before the first instance stopped"
    finish(lab, names, second)
    aborts = first.find("aborted") + second.find("aborted")
    print("\n%s/%s: first revoked %s and committed %s, %d aborted transactions, stopped with %d of %d committed;"
          " each once" % (protocol, assignor or "default", revoked["partitions"], on_revoke["offsets"], len(aborts), done, N))


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_start_gate_waits_for_the_other_generation(lab, names, spawn, protocol):
    """(e): a g2 instance connects and reports standby but stays out of the group while a g1 member is in it;
    it subscribes once the g1 instance has committed and left, and finishes the input."""
    lab.produce_sequence(names["input"], N // 2)
    env = dict(STREAMOPS_MODE="exactly-once", STREAMOPS_GROUP_PROTOCOL=protocol)
    old = spawn("app-g1", STREAMOPS_SLOW_MS=SLOW_MS, STREAMOPS_GENERATION="g1", **env)
    lab.wait_committed(names["group"], names["input"], N // 10)
    new = spawn("app-g2", STREAMOPS_GENERATION="g2", STREAMOPS_START_GATE="after-others-leave", **env)
    new.wait_event("gate-waiting", timeout=30)
    assert new.ready_state() == "standby"
    time.sleep(0.5)
    assert not new.find("subscribed") and not new.find("assigned"), new.events
    assert lab.group_client_ids(names["group"]) == ["streamops:g1:app-g1"]
    # The rest of the input now, so that the old generation is stopped in the middle of it.
    lab.produce_sequence(names["input"], N, start=N // 2)
    lab.wait_committed(names["group"], names["input"], N // 2 + N // 10)
    rc, seconds = stop(old)
    assert rc == 0, old.stderr()
    done = committed_on_shutdown(lab, names, old)
    assert done < N, "the old generation finished before the hand-over"
    gate_open = new.wait_event("gate-open", timeout=10)
    assigned = new.wait_event("assigned", timeout=30)
    assert new.ready_state() == "active"
    finish(lab, names, new)
    stopping, closed = old.find("stopping")[0], old.find("closed")[0]
    # Nobody consumes from the old instance's last record (it stops polling at "stopping") to the new assignment.
    gap = assigned["ts"] - stopping["ts"]
    print("\n%s gate hand-over gap %.3fs: SIGTERM -> old closed %.3fs, gate open %.3fs, new assigned %.3fs (standby %.3fs in all);"
          " the old one had %d of %d done" % (protocol, gap, closed["ts"] - stopping["ts"], gate_open["ts"] - stopping["ts"], gap,
                                              gate_open["waited_s"], done, N))
    assert gap < 5.0, "hand-over gap %.2fs" % gap


def test_exactly_once_aborts_and_rewinds_a_failed_transaction(lab, names, tmp_path):
    """A transaction that cannot commit (the broker refuses one output) is aborted and its records redone from
    the committed offsets: still each once. Also the library API, in this process, stopped by stop()."""
    count = 400
    lab.produce_sequence(names["input"], count)
    output = names["output"] + "-small"
    lab.create_topics(output, config={"max.message.bytes": "100000"})
    refused = []

    def process(msg):
        if msg.value() == b"123" and not refused:
            refused.append(msg.offset())
            return [(msg.key(), b"x" * 200000)]  # over the topic's limit, under the producer's: fails at the broker
        return [(msg.key(), msg.value())]

    settings = Settings(bootstrap_servers=lab.servers, group=names["group"], input_topics=[names["input"]], output_topic=output,
                        mode="exactly-once", instance="lib-0", ready_file=str(tmp_path / "ready"))
    stream = io.StringIO()
    helper = ConsumerHelper(settings, process, stream=stream)
    result = []
    thread = threading.Thread(target=lambda: result.append(helper.run()))
    thread.start()
    try:
        lab.wait_committed(names["group"], names["input"], count)
    finally:
        helper.stop()
        thread.join(10)
    assert result == [0]
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    aborted = [e for e in events if e["event"] == "aborted"]
    assert refused and aborted and any(e["event"] == "rewound" for e in events), events
    try:
        records = lab.read_all(output)
    finally:
        lab.cleanup([output], [])
    assert_each_once(records, count)
    print("\nrefused output at input offset %d: %d aborted transaction(s) (%s), redone, each once"
          % (refused[0], len(aborted), aborted[0]["error"][:120]))


def test_auto_commit_repeats_records_the_counting_notices(lab, names, spawn):
    """The control: the ordinary consumer, killed before its first auto-commit (5 s) and restarted, repeats
    what it had done, and the counting above sees it. Guards the tests against passing for the wrong reason."""
    lab.produce_sequence(names["input"], N)
    static = dict(STREAMOPS_MODE="auto-commit", STREAMOPS_GROUP_INSTANCE_ID="app-0")  # as in the SIGKILL test above
    first = spawn("app-0", STREAMOPS_SLOW_MS=SLOW_MS, **static)
    first.wait_event("assigned")
    time.sleep(1.0)
    stop(first, signal.SIGKILL)
    assert lab.committed(names["group"], names["input"]) == 0, "auto-committed within a second"
    second = spawn("app-0", **static)
    records = finish(lab, names, second, check=False)
    with pytest.raises(AssertionError, match="repeated"):
        assert_each_once(records, N)
    print("\nauto-commit: %d outputs for %d inputs after a SIGKILL and restart" % (len(records), N))


def test_slowness_is_cut_short_by_sigterm(lab, names, spawn):
    """A record that takes 5 s on a slow node: SIGTERM finishes it at once, commits it, and exits within 2 s."""
    lab.produce_sequence(names["input"], 8)
    instance = spawn("app-0", STREAMOPS_SLOW_MS=5000, STREAMOPS_SLOW_NODES="edge-1,edge-2", STREAMOPS_NODE_NAME="edge-2")
    assert instance.wait_event("starting")["slow_s"] == 5.0
    instance.wait_event("assigned")
    time.sleep(1.0)  # the first record is in hand by now
    rc, seconds = stop(instance)
    assert rc == 0 and seconds < 2.0, (rc, seconds, instance.stderr())
    assert lab.committed(names["group"], names["input"]) == 1
    assert len(lab.read_all(names["output"])) == 1
