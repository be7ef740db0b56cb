# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""End to end against the lab's Kafka: every input number appears in the output exactly once across stops,
crashes, rebalances and a gated hand-over. The helper runs as its container does, `python -m streamops_consumer`."""

from __future__ import annotations

import signal
import time

import pytest

from kafkalab import assert_each_once, wait_until

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


def finish(lab, names, *instances):
    """Wait for the whole input to be committed, stop the instances, check the output."""
    lab.wait_committed(names["group"], names["input"], N)
    for instance in instances:
        rc, seconds = stop(instance)
        assert rc == 0, instance.stderr()
    records = lab.read_all(names["output"])
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
    """(d): a second instance joins mid-stream (the first commits on revoke), then the first stops (the second
    commits on revoke, or just takes the partitions over); still each record once."""
    lab.produce_sequence(names["input"], N)
    # Enough work left for the second instance to join: a classic rebalance takes a heartbeat (1 s) or two
    # (cooperative); KIP-848 members learn of new assignments by heartbeat, every 5 s by the broker's default.
    slow = 3 if protocol == "classic" else 8
    env = dict(STREAMOPS_MODE="exactly-once", STREAMOPS_SLOW_MS=slow, STREAMOPS_GROUP_PROTOCOL=protocol)
    if assignor:
        env["STREAMOPS_ASSIGNOR"] = assignor
    first = spawn("app-a", **env)
    lab.wait_committed(names["group"], names["input"], N // 10)
    second = spawn("app-b", **env)
    wait_until("the second instance to get partitions", lambda: any(e["partitions"] for e in second.find("assigned")), 30)
    revoked_in_first = first.wait_event("revoked", timeout=30)
    lab.wait_committed(names["group"], names["input"], lab.committed(names["group"], names["input"]) + N // 10)
    rc, seconds = stop(first)
    assert rc == 0, first.stderr()
    assert seconds < 2.0, "took %.2fs to stop" % seconds
    done = committed_on_shutdown(lab, names, first)
    assert done < N, "the input was done before the first instance stopped"
    finish(lab, names, second)
    revoke_commits = first.find("committed", reason="revoke") + second.find("committed", reason="revoke")
    aborts = first.find("aborted") + second.find("aborted")
    print("\n%s/%s: first revoked %s, %d commits on revoke, %d aborted transactions, stopped with %d of %d committed;"
          " each once" % (protocol, assignor or "default", revoked_in_first["partitions"], len(revoke_commits), len(aborts), done, N))


def test_start_gate_waits_for_the_other_generation(lab, names, spawn):
    """(e): a g2 instance connects and reports standby but stays out of the group while a g1 member is in it;
    it subscribes once the g1 instance has committed and left, and finishes the input."""
    lab.produce_sequence(names["input"], N)
    old = spawn("app-g1", STREAMOPS_MODE="exactly-once", STREAMOPS_SLOW_MS=SLOW_MS, STREAMOPS_GENERATION="g1")
    lab.wait_committed(names["group"], names["input"], N // 4)
    new = spawn("app-g2", STREAMOPS_MODE="exactly-once", STREAMOPS_GENERATION="g2", STREAMOPS_START_GATE="after-others-leave")
    new.wait_event("gate-waiting", timeout=30)
    assert new.ready_state() == "standby"
    time.sleep(1.0)
    assert not new.find("subscribed") and not new.find("assigned"), new.events
    assert lab.group_client_ids(names["group"]) == ["streamops:g1:app-g1"]
    rc, seconds = stop(old)
    assert rc == 0, old.stderr()
    done = committed_on_shutdown(lab, names, old)
    assert done < N, "the old generation finished before the hand-over"
    gate_open = new.wait_event("gate-open", timeout=10)
    assigned = new.wait_event("assigned", timeout=30)
    assert new.ready_state() == "active"
    finish(lab, names, new)
    closed = old.find("closed")[0]
    stopping = old.find("stopping")[0]
    gap = assigned["ts"] - closed["ts"]
    print("\ngate hand-over: SIGTERM -> old closed %.3fs, old closed -> new assigned %.3fs (gate open after %.3fs);"
          " the old one had %d of %d done" % (closed["ts"] - stopping["ts"], gap, gate_open["ts"] - closed["ts"], done, N))
    assert gap < 5.0, "hand-over gap %.2fs" % gap
