"""The per group / topic / partition result of kafka_lag_info, built from raw samples."""

from ansible_collections.streamops.day2.plugins.module_utils._lag.report import (
    Group, Member, Options, Sample, build_report, group_partitions, summarise, wanted_reads)

T0 = 1_700_000_000.0


def samples(*rows, interval=2.0):
    """rows: (committed {group: {(t, p): offset}}, log_end {(t, p): offset}) oldest first."""
    return [Sample(at=T0 + i * interval, committed=c, log_end=e) for i, (c, e) in enumerate(rows)]


def one(group, window, counts, times=None, **options):
    return build_report([group], window, counts, times or {}, Options(**options))[0]


def member(client="c1", assignment=()):
    return Member(member_id=client + "-id", client_id=client, host="/10.0.0.1", assignment=list(assignment))


def test_lag_per_partition_with_totals_and_maxima_per_topic_and_group():
    group = Group("app", "Stable", members=[member("c1", [("a", 0), ("a", 1)]), member("c2", [("b", 0)])])
    window = samples(({"app": {("a", 0): 10, ("a", 1): 50, ("b", 0): 7}}, {("a", 0): 30, ("a", 1): 50, ("b", 0): 9}))
    times = {("a", 0, 10): (T0 - 12.5) * 1000, ("b", 0, 7): (T0 - 3) * 1000}
    report = one(group, window, {"a": 2, "b": 1}, times)
    rows = {(p["topic"], p["partition"]): p for p in report["partitions"]}
    assert [(p["lag"], p["lag_seconds"]) for p in report["partitions"]] == [(20, 12.5), (0, 0.0), (2, 3.0)]
    assert rows[("a", 0)]["client_id"] == "c1" and rows[("b", 0)]["client_id"] == "c2"
    assert (report["lag"], report["max_lag"], report["max_lag_seconds"]) == (22, 20, 12.5)
    assert [(t["topic"], t["lag"], t["max_lag"], t["max_lag_seconds"], t["partition_count"]) for t in report["topics"]] == [
        ("a", 20, 20, 12.5, 2), ("b", 2, 2, 3.0, 1)]
    assert report["status"] == "OK" and report["partition_statuses"] == {"OK": 3}
    assert report["members"][0]["assignment"] == {"a": [0, 1]}


def test_never_committed_partition_of_a_consumed_topic_is_listed_without_lag():
    group = Group("app", "Empty")
    window = samples(({"app": {("a", 0): 4}}, {("a", 0): 4, ("a", 1): 9, ("a", 2): 0}))
    report = one(group, window, {"a": 3})
    rows = report["partitions"]
    assert [(p["partition"], p["committed_offset"], p["lag"], p["lag_seconds"], p["status"]) for p in rows] == [
        (0, 4, 0, 0.0, "OK"), (1, None, None, None, "NO_OFFSET"), (2, None, None, None, "NO_OFFSET")]
    assert report["uncommitted_partitions"] == 2 and report["lag"] == 0
    assert report["status"] == "OK"


def test_assigned_but_never_committed_partition_shows_its_owner():
    group = Group("app", "Stable", members=[member("c1", [("a", 0)])])
    report = one(group, samples(({"app": {}}, {("a", 0): 5})), {"a": 1})
    row = report["partitions"][0]
    assert row["committed_offset"] is None and row["lag"] is None and row["client_id"] == "c1"
    assert report["lag"] is None and report["max_lag"] is None  # nothing measured: not a silent zero


def test_group_without_members_and_lag_is_stop_and_err_within_one_sample():
    group = Group("gone", "Empty")
    report = one(group, samples(({"gone": {("a", 0): 3}}, {("a", 0): 10})), {"a": 1})
    assert report["partitions"][0]["status"] == "STOP"
    assert report["status"] == "ERR"
    assert report["reasons"] == ["STOP on 1 partition: lag 7 and no live member of the group owns the partition (a[0])"]


def test_stalled_consumer_over_a_window():
    group = Group("app", "Stable", members=[member("c1", [("a", 0)])])
    window = samples(*[({"app": {("a", 0): 3}}, {("a", 0): 10 + i}) for i in range(3)])
    report = one(group, window, {"a": 1})
    assert report["partitions"][0]["status"] == "STALL" and report["status"] == "ERR"
    assert report["partitions"][0]["lag_samples"] == [7, 8, 9]
    assert report["reasons"][0].startswith("STALL on 1 partition: lag 9, committed offset 3 did not move in 3 samples over 4s")
    assert report["reasons"][0].endswith(" (a[0])")


def test_idle_partitions_are_flagged_and_excluded_on_request():
    group = Group("app", "Empty")
    window = samples(*[({"app": {("quiet", 0): 3, ("busy", 0): 0}}, {("quiet", 0): 10, ("busy", 0): i}) for i in range(3)])
    kept = one(group, window, {"quiet": 1, "busy": 1})
    quiet = [p for p in kept["partitions"] if p["topic"] == "quiet"][0]
    assert quiet["idle"] is True and quiet["status"] == "STOP" and kept["status"] == "ERR"
    assert kept["lag"] == 7 + 2

    dropped = one(group, window, {"quiet": 1, "busy": 1}, exclude_idle=True)
    quiet = [p for p in dropped["partitions"] if p["topic"] == "quiet"][0]
    assert quiet["excluded"] is True and quiet["lag"] == 7  # still shown with its numbers
    assert dropped["lag"] == 2 and dropped["excluded_partitions"] == 1
    # busy[0] is unowned and its offset does not move: STOP on its own.
    assert dropped["partition_statuses"] == {"STOP": 2}
    assert dropped["reasons"][0].startswith("STOP on 1 partition: lag 2") and dropped["reasons"][0].endswith("(busy[0])")


def test_topic_filter_and_pattern():
    group = Group("app", "Empty")
    window = samples(({"app": {("orders", 0): 1, ("payments", 0): 1, ("audit", 0): 1}},
                      {("orders", 0): 1, ("payments", 0): 1, ("audit", 0): 1}))
    counts = {"orders": 1, "payments": 1, "audit": 1}
    assert [p["topic"] for p in one(group, window, counts, topics=("orders", "audit"))["partitions"]] == ["audit", "orders"]
    assert [p["topic"] for p in one(group, window, counts, topic_pattern="^pay")["partitions"]] == ["payments"]


def test_thresholds_raise_the_group_status_with_a_reason():
    group = Group("app", "Stable", members=[member("c1", [("a", 0), ("a", 1)])])
    window = samples(({"app": {("a", 0): 0, ("a", 1): 0}}, {("a", 0): 150, ("a", 1): 2000}))
    times = {("a", 0, 0): (T0 - 30) * 1000, ("a", 1, 0): (T0 - 900) * 1000}
    report = one(group, window, {"a": 2}, times, thresholds=dict(warn_lag=100, error_lag=1000, warn_lag_seconds=600))
    assert report["status"] == "ERR"
    assert report["reasons"] == [
        "ERR on 1 partition: lag 2000 >= error_lag 1000 on a[1] (a[1])",
        "WARN on 1 partition: lag 150 >= warn_lag 100 on a[0] (a[0])",
        "WARN on 1 partition: lag seconds 900s >= warn_lag_seconds 600s on a[1] (a[1])",
    ]
    assert report["breaches"] == [
        dict(level="ERR", threshold="error_lag", limit=1000, value=2000, worst="a[1]", partitions=1),
        dict(level="WARN", threshold="warn_lag", limit=100, value=150, worst="a[0]", partitions=1),
        dict(level="WARN", threshold="warn_lag_seconds", limit=600, value=900.0, worst="a[1]", partitions=1),
    ]
    total = one(group, window, {"a": 2}, times, thresholds=dict(warn_total_lag=2000))
    assert total["status"] == "WARN" and total["reasons"] == ["WARN: total lag 2150 >= warn_total_lag 2000"]
    assert total["breaches"] == [dict(level="WARN", threshold="warn_total_lag", limit=2000, value=2150, worst=None, partitions=None)]
    assert one(group, window, {"a": 2}, times)["breaches"] == []


def test_lag_seconds_unknown_when_the_record_was_not_read_and_never_negative():
    group = Group("app", "Empty")
    window = samples(({"app": {("a", 0): 1, ("a", 1): 1}}, {("a", 0): 5, ("a", 1): 5}))
    report = one(group, window, {"a": 2}, {("a", 1, 1): (T0 + 60) * 1000})  # a producer clock ahead of ours
    assert [p["lag_seconds"] for p in report["partitions"]] == [None, 0.0]


def test_lag_seconds_zero_when_only_transaction_markers_remain():
    group = Group("app", "Empty")
    window = samples(({"app": {("a", 0): 4}}, {("a", 0): 5}))
    report = one(group, window, {"a": 1}, {("a", 0, 4): None})  # the reader found no record at or after offset 4
    assert (report["partitions"][0]["lag"], report["partitions"][0]["lag_seconds"]) == (1, 0.0)


def test_reads_are_one_per_lagging_offset_however_many_groups_share_it():
    groups = [Group("g1", "Empty"), Group("g2", "Empty"), Group("g3", "Empty")]
    window = samples(({"g1": {("a", 0): 5, ("a", 1): 9}, "g2": {("a", 0): 5}, "g3": {("a", 0): 7}},
                      {("a", 0): 9, ("a", 1): 9}))
    assert wanted_reads(groups, window, {"a": 2}, Options()) == {("a", 0, 5), ("a", 0, 7)}


def test_partitions_of_a_group_include_those_of_a_shrunk_or_deleted_topic():
    group = Group("app", "Stable", members=[member("c1", [("new", 0)])])
    window = samples(({"app": {("gone", 3): 1}}, {}))
    assert group_partitions(group, window, {"new": 2}, Options()) == [("gone", 3), ("new", 0), ("new", 1)]
    report = one(group, window, {"new": 2})
    gone = report["partitions"][0]
    assert gone["topic"] == "gone" and gone["status"] == "NO_OFFSET" and gone["log_end_offset"] is None


def test_members_without_assignments_make_ownership_unknown():
    group = Group("connect-ish", "Stable", members=[member("w1")])
    report = one(group, samples(({"connect-ish": {("a", 0): 1}}, {("a", 0): 5})), {"a": 1})
    assert report["partitions"][0]["status"] == "OK"


def test_summary_counts_every_status():
    reports = [dict(status="OK", lag=0, max_lag=0, max_lag_seconds=0.0, partition_count=2, uncommitted_partitions=0),
               dict(status="ERR", lag=10, max_lag=7, max_lag_seconds=30.0, partition_count=3, uncommitted_partitions=1),
               dict(status="OK", lag=None, max_lag=None, max_lag_seconds=None, partition_count=1, uncommitted_partitions=1)]
    assert summarise(reports) == dict(groups=3, status="ERR", statuses={"OK": 2, "WARN": 0, "ERR": 1}, lag=10, max_lag=7,
                                      max_lag_seconds=30.0, partitions=6, uncommitted_partitions=2)
    assert summarise([])["status"] == "OK" and summarise([])["lag"] is None


def test_rows_are_lean_with_one_sample_and_detail_selects_the_levels():
    group = Group("app", "Stable", members=[member("c1", [("a", 0)])])
    window = samples(({"app": {("a", 0): 1}}, {("a", 0): 5}))
    row = one(group, window, {"a": 1})["partitions"][0]
    assert sorted(row) == ["client_id", "committed_offset", "host", "lag", "lag_seconds", "log_end_offset", "partition", "reason",
                           "status", "topic"]
    two = samples(({"app": {("a", 0): 1}}, {("a", 0): 5}), ({"app": {("a", 0): 2}}, {("a", 0): 5}))
    assert {"idle", "excluded", "lag_samples"} <= set(one(group, two, {"a": 1})["partitions"][0])
    topics = one(group, window, {"a": 1}, detail="topics")
    assert "partitions" not in topics and topics["topics"][0]["lag"] == 4
    groups = one(group, window, {"a": 1}, detail="groups")
    assert "topics" not in groups and "partitions" not in groups and groups["lag"] == 4 and groups["status"] == "OK"


def test_reasons_name_a_few_partitions_and_count_the_rest():
    group = Group("app", "Empty")
    window = samples(({"app": {("a", p): 0 for p in range(5)}}, {("a", p): 10 + p for p in range(5)}))
    report = one(group, window, {"a": 5}, thresholds=dict(warn_lag=12))
    assert report["reasons"] == [
        "STOP on 5 partitions: lag 10 and no live member of the group owns the partition (a[0], a[1], a[2] and 2 more)",
        "WARN on 3 partitions: lag 14 >= warn_lag 12 on a[4] (a[2], a[3], a[4])",
    ]


def test_selection_problems_name_unknown_topics_and_patterns_that_match_nothing():
    from ansible_collections.streamops.day2.plugins.module_utils._lag.report import Options, empty_group_warnings, selection_problems
    counts = {"orders": 3, "payments": 1}
    error, warnings = selection_problems(Options(topics=("ordres",)), None, {"g": 1}, ["g"], counts)
    assert error == "Unknown topic: ordres. The brokers know 2 topics (orders, payments)." and warnings == []
    error, warnings = selection_problems(Options(topics=("orders", "x", "y", "x")), None, {}, [], counts)
    assert error == "Unknown topics: x, y. The brokers know 2 topics (orders, payments)."
    assert selection_problems(Options(topics=("x",)), None, {}, [], {})[0] == "Unknown topic: x. The brokers know 0 topics."
    error, warnings = selection_problems(Options(topic_pattern="^zz"), "^nope", {"g": 1, "h": 2}, [], counts)
    assert error is None and warnings == [
        "group_pattern ^nope matches none of the 2 consumer groups, so no group is reported.",
        "topic_pattern ^zz matches none of the 2 topics, so every group is reported with no partition."]
    assert selection_problems(Options(topics=("orders",), topic_pattern="ord"), "g", {"g": 1}, ["g"], counts) == (None, [])
    reports = [dict(group="g", partition_count=0), dict(group="h", partition_count=2)]
    assert empty_group_warnings(Options(), reports) == []
    assert empty_group_warnings(Options(topics=("orders",)), reports) == [
        "1 group consumes none of the selected topics (topics orders) and is reported with no partition: g."]
