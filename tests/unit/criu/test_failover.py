"""Where a container belongs and whether a version may be restored (failover.py, the failover_plan filter): pure."""

import pytest

from ansible_collections.streamops.day2.plugins.filter.failover_plan import failover_plan
from ansible_collections.streamops.day2.plugins.module_utils._criu import failover

A, B = "unix:///run/a.sock", "unix:///run/b.sock"
ENGINES = [{"name": "a", "docker_host": A}, {"name": "b", "docker_host": B}]
V1 = {"name": "ckpt-1", "created": "2026-01-01T10:00:00+00:00", "engine": A}
MIGRATED = {"engine": B, "engine_id": "B-ID", "how": "migration", "since": "2026-01-01T10:05:00+00:00",
            "since_ts": failover.parse_time("2026-01-01T10:05:00Z"), "from_engine": A}
NOWHERE = {"exists": False, "running": False}


def probe(container, engine, reachable=True, summary=None, latest="V1", home=None):
    """One probe result as the role registers it; latest="V1" stands for version V1, None for no version."""
    return {"item": [container, next(e for e in ENGINES if e["name"] == engine)], "engine": {"reachable": reachable},
            "container": summary or NOWHERE, "latest": V1 if latest == "V1" else latest, "home": home}


def stopped(started, finished):
    return {"exists": True, "running": False, "started_at": started, "finished_at": finished}


def test_docker_times_parse_with_nanoseconds_and_the_zero_time_is_unknown():
    assert failover.parse_time("2026-01-01T10:00:00.123456789Z") == pytest.approx(failover.parse_time("2026-01-01T10:00:00.123456+00:00"))
    assert failover.parse_time("0001-01-01T00:00:00Z") is None and failover.parse_time("") is None and failover.parse_time("x") is None


def test_the_reported_case_stopped_on_b_after_a_migration_is_left_alone():
    """Checkpoint on A, migrate A to B, stop it on B: the failover restored the pre-migration version on A. Not any more,
    with the store's migration record or without it (the stopped copy on B says where it last ran)."""
    on_b = stopped("2026-01-01T10:05:01.5Z", "2026-01-01T10:09:00Z")
    for home in (MIGRATED, None):
        decision, = failover_plan([probe("c", "a", home=home), probe("c", "b", summary=on_b, home=home)], ENGINES)
        assert decision["action"] == "stopped_on_its_healthy_engine" and decision["home"] == "b", decision
        assert decision["target"] == "" and "nothing is restored" in decision["reason"]


def test_a_version_older_than_the_move_to_an_engine_that_is_down_is_refused_unless_forced():
    probes = [probe("c", "a", home=MIGRATED), probe("c", "b", reachable=False, home=MIGRATED)]
    decision, = failover_plan(probes, ENGINES)
    assert decision["action"] == "refused" and decision["home"] == "b" and decision["target"] == ""
    assert decision["reason"] == (
        "c is not restored: its newest version ckpt-1 was taken on engine a at 2026-01-01T10:00:00Z, before it ran on engine b "
        "(migration at 2026-01-01T10:05:00Z), which does not answer: restoring ckpt-1 would bring back older state than the copy "
        "on b; start it on b once that engine is back, or set container_failover_force=true to restore ckpt-1 anyway.")
    forced, = failover_plan(probes, ENGINES, force=True)
    assert forced["action"] == "restore" and forced["target"] == "a" and forced["forced"] is True


def test_a_plain_failover_restores_the_newest_version_on_the_first_engine_that_answers():
    checkpointed = {"engine": A, "how": "checkpoint", "since_ts": failover.parse_time("2026-01-01T10:00:01Z"), "version": "ckpt-1"}
    decision, = failover_plan([probe("c", "a", reachable=False, home=checkpointed), probe("c", "b", home=checkpointed)], ENGINES)
    assert (decision["action"], decision["home"], decision["target"], decision["forced"]) == ("restore", "a", "b", False)


def test_home_that_answers_gets_the_restore_and_other_actions():
    decision, = failover_plan([probe("c", "a", home=MIGRATED), probe("c", "b", home=MIGRATED)], ENGINES)
    assert (decision["action"], decision["target"]) == ("restore", "b")     # gone from its home: back there, nowhere else
    running = {"exists": True, "running": True, "started_at": "2026-01-01T10:05:01Z"}
    assert failover_plan([probe("c", "a"), probe("c", "b", summary=running)], ENGINES)[0]["action"] == "running"
    both = failover_plan([probe("c", "a", summary=running), probe("c", "b", summary=running)], ENGINES)[0]
    assert both["action"] == "conflict" and both["reason"] == "c runs on engines a, b; decide which copy to keep and remove the others."
    assert failover_plan([probe("c", "a", latest=None), probe("c", "b", latest=None)], ENGINES)[0]["action"] == "no_checkpoint"
    assert failover_plan([probe("c", "a", reachable=False), probe("c", "b", reachable=False)], ENGINES)[0]["action"] == "no_engine"
    two = failover_plan([probe("c", "a"), probe("d", "a"), probe("c", "b"), probe("d", "b")], ENGINES)
    assert [d["container"] for d in two] == ["c", "d"]


def test_the_module_guard_refuses_only_a_version_older_than_a_move_elsewhere():
    refused = failover.refusal(MIGRATED, "ckpt-1", V1["created"], A, A, "A-ID", container="c")
    assert refused == ("Version ckpt-1 of c was taken on %s at 2026-01-01T10:00:00Z, before c moved to %s (migration at "
                       "2026-01-01T10:05:00Z): restoring it on %s would bring back older state than the copy there; start c on %s, "
                       "or set force=true to restore ckpt-1 anyway." % (A, B, A, B))
    assert failover.refusal(MIGRATED, "ckpt-1", V1["created"], A, B, "B-ID") is None              # on its home: fine
    assert failover.refusal(MIGRATED, "ckpt-1", V1["created"], A, "tcp://b:2376", "B-ID") is None  # same engine by id
    assert failover.refusal(MIGRATED, "ckpt-2", "2026-01-01T10:06:00+00:00", B, A) is None         # taken after the move
    assert failover.refusal(dict(MIGRATED, how="checkpoint"), "ckpt-1", V1["created"], A, A) is None
    assert failover.refusal(None, "ckpt-1", V1["created"], A, A) is None


def test_the_filter_says_what_is_wrong_with_its_input():
    from ansible.errors import AnsibleFilterError
    with pytest.raises(AnsibleFilterError, match="failover_plan: the input and engines must be lists"):
        failover_plan("x", ENGINES)
    with pytest.raises(AnsibleFilterError, match="is not the results of docker_checkpoint state=query"):
        failover_plan([{"nothing": 1}], ENGINES)
