# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The result of kafka_lag_info, built from raw samples without touching Kafka.

Inputs are plain data: the groups as described (members and their assignments), the samples
(committed offsets per group and log-end offsets per partition, each with its wall-clock time),
the partition count of every topic, and the timestamps of the records read at committed offsets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ansible_collections.streamops.day2.plugins.module_utils._lag import rules

REASON_EXAMPLES = 3  # partitions named in a group-level reason before "and N more"


@dataclass
class Member:
    member_id: str
    client_id: str
    host: str
    group_instance_id: str | None = None
    assignment: list = field(default_factory=list)  # [(topic, partition)]


@dataclass
class Group:
    name: str
    state: str
    type: str = "classic"
    protocol_type: str = "consumer"
    assignor: str | None = None
    coordinator: int | None = None
    simple: bool = False
    members: list = field(default_factory=list)


@dataclass
class Sample:
    at: float                                      # wall-clock seconds (time.time())
    committed: dict = field(default_factory=dict)  # group -> {(topic, partition): offset}
    log_end: dict = field(default_factory=dict)    # (topic, partition) -> log-end offset


@dataclass
class Options:
    topics: tuple = ()
    topic_pattern: str | None = None
    exclude_idle: bool = False
    thresholds: dict = field(default_factory=dict)
    detail: str = "partitions"  # or "topics", "groups": how much of each group to return

    def wants_topic(self, topic):
        if self.topics and topic not in self.topics:
            return False
        if self.topic_pattern and not re.search(self.topic_pattern, topic):
            return False
        return True


def group_partitions(group, samples, partition_counts, options):
    """Every partition the group consumes, sorted: partitions it committed or is assigned, and the
    partitions of those topics it never committed (listed with no offset, never a silent zero)."""
    keys = set()
    for sample in samples:
        keys.update(sample.committed.get(group.name, {}))
    for member in group.members:
        keys.update(member.assignment)
    keys = {key for key in keys if options.wants_topic(key[0])}
    for topic in {topic for topic, unused in keys}:
        keys.update((topic, partition) for partition in range(partition_counts.get(topic, 0)))
    return sorted(keys)


def wanted_reads(groups, samples, partition_counts, options):
    """(topic, partition, offset) of the records whose timestamps give lag in seconds: the record at
    each lagging committed offset in the last sample, once however many groups sit there."""
    last = samples[-1]
    reads = set()
    for group in groups:
        committed = last.committed.get(group.name, {})
        for key in group_partitions(group, samples, partition_counts, options):
            offset = committed.get(key)
            end = last.log_end.get(key)
            if offset is not None and end is not None and end > offset:
                reads.add((key[0], key[1], offset))
    return reads


def build_report(groups, samples, partition_counts, record_times, options):
    """The groups as kafka_lag_info returns them (list of dicts, in the order given)."""
    span = samples[-1].at - samples[0].at if len(samples) > 1 else None
    return [_group_report(group, samples, partition_counts, record_times, options, span) for group in groups]


def _owners(group):
    owners = {}
    for member in group.members:
        for key in member.assignment:
            owners[key] = member
    return owners


def _group_report(group, samples, partition_counts, record_times, options, span):
    owners = _owners(group)
    # Ownership is unknown when members exist but none reports an assignment (a rebalance, or a
    # protocol whose assignment is not a consumer's): then STOP is not inferred from it.
    ownership_known = not group.members or bool(owners)
    partitions = []
    for key in group_partitions(group, samples, partition_counts, options):
        owner = owners.get(key)
        owned = True if owner else (False if ownership_known else None)
        partitions.append(_partition_report(group.name, key, samples, owner, owned, record_times, options, span))

    report = dict(
        group=group.name,
        state=group.state,
        type=group.type,
        protocol_type=group.protocol_type,
        assignor=group.assignor,
        coordinator=group.coordinator,
        simple=group.simple,
        member_count=len(group.members),
        members=[_member_report(m) for m in group.members],
    )
    report.update(_totals(partitions))
    status, reasons, breaches = _group_status(partitions, report["lag"], options.thresholds)
    report.update(status=status, reasons=reasons, breaches=breaches, partition_statuses=_count(p["status"] for p in partitions))
    if options.detail in ("topics", "partitions"):
        report["topics"] = [dict(topic=topic, **_totals(rows)) for topic, rows in _by_topic(partitions)]
    if options.detail == "partitions":
        windowed = len(samples) > 1
        report["partitions"] = [_public_row(p, windowed) for p in partitions]
    return report


def _member_report(member):
    assignment = {}
    for topic, partition in sorted(member.assignment):
        assignment.setdefault(topic, []).append(partition)
    return dict(member_id=member.member_id, client_id=member.client_id, host=member.host,
                group_instance_id=member.group_instance_id, assignment=assignment)


def _partition_report(group_name, key, samples, owner, owned, record_times, options, span):
    topic, partition = key
    committed = [s.committed.get(group_name, {}).get(key) for s in samples]
    log_ends = [s.log_end.get(key) for s in samples]
    if any(end is None for end in log_ends):  # a topic deleted while sampled: judge on what is known
        known = [i for i, end in enumerate(log_ends) if end is not None]
        committed = [committed[i] for i in known]
        log_ends = [log_ends[i] for i in known]
    current = committed[-1] if committed else None
    end = log_ends[-1] if log_ends else None
    lag = rules.lag_of(current, end)
    lag_seconds = _lag_seconds(topic, partition, current, lag, samples[-1].at, record_times)
    if log_ends:
        status, reason = rules.rate_partition(committed, log_ends, owned, span)
    else:
        status, reason = rules.NO_OFFSET, "the topic is gone"
    idle = rules.is_idle(log_ends)
    excluded = bool(options.exclude_idle and idle)
    return dict(
        topic=topic,
        partition=partition,
        committed_offset=current,
        log_end_offset=end,
        lag=lag,
        lag_seconds=lag_seconds,
        status=status,
        reason=reason,
        client_id=owner.client_id if owner else None,
        host=owner.host if owner else None,
        idle=idle,
        excluded=excluded,
        lag_samples=[rules.lag_of(c, e) for c, e in zip(committed, log_ends)],
    )


# Keys of a partition row that only mean something over a window of two samples or more.
WINDOW_KEYS = ("idle", "excluded", "lag_samples")


def _public_row(row, windowed):
    """A partition as returned: lean (results of thousands of groups travel through Ansible)."""
    if windowed:
        return row
    return {key: value for key, value in row.items() if key not in WINDOW_KEYS}


def _lag_seconds(topic, partition, committed, lag, now, record_times):
    """Age of the oldest record the group has not consumed; 0 when caught up; None when unknown."""
    if lag is None:
        return None
    if lag <= 0:
        return 0.0
    key = (topic, partition, committed)
    if key not in record_times:
        return None  # not read (lag_seconds disabled, or not within the time limit)
    timestamp_ms = record_times[key]
    if timestamp_ms is None:
        return 0.0  # no record at or after the offset, only transaction markers: nothing waits
    return round(max(0.0, now - timestamp_ms / 1000.0), 3)


def _counted(partitions):
    """Partitions that make totals and statuses: with an offset, not excluded as idle."""
    return [p for p in partitions if p["lag"] is not None and not p["excluded"]]


def _totals(partitions):
    counted = _counted(partitions)
    seconds = [p["lag_seconds"] for p in counted if p["lag_seconds"] is not None]
    return dict(
        lag=sum(p["lag"] for p in counted) if counted else None,
        max_lag=max(p["lag"] for p in counted) if counted else None,
        max_lag_seconds=max(seconds) if seconds else None,
        partition_count=len(partitions),
        uncommitted_partitions=sum(1 for p in partitions if p["committed_offset"] is None),
        idle_partitions=sum(1 for p in partitions if p["idle"]),
        excluded_partitions=sum(1 for p in partitions if p["excluded"]),
    )


def _by_topic(partitions):
    topics = {}
    for p in partitions:
        topics.setdefault(p["topic"], []).append(p)
    return sorted(topics.items())


def _count(values):
    counts = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def _name(p):
    return "%s[%d]" % (p["topic"], p["partition"])


def _group_status(partitions, total_lag, thresholds):
    levels = []
    reasons = []
    counted = [p for p in partitions if not p["excluded"]]
    by_status = {}
    for p in counted:
        if rules.group_level(p["status"]) != rules.OK:
            by_status.setdefault(p["status"], []).append(p)
    for status in rules.PARTITION_STATUSES:
        rows = by_status.get(status)
        if rows:
            levels.append(rules.group_level(status))
            reasons.append("%s on %s: %s (%s)" % (status, _plural(len(rows), "partition"), rows[0]["reason"], _some(rows)))

    breaches = []
    found = {}
    for p in _counted(partitions):
        for breach in rules.partition_breaches(p["lag"], p["lag_seconds"], thresholds):
            found.setdefault((breach.level != rules.ERR, breach.key), []).append((p, breach))
    for unused, rows in sorted(found.items()):
        worst_p, worst_breach = max(rows, key=lambda row: row[1].value)
        levels.append(worst_breach.level)
        reasons.append("%s on %s: %s on %s (%s)" % (worst_breach.level, _plural(len(rows), "partition"), worst_breach.text, _name(worst_p),
                                                  _some([p for p, unused in rows])))
        breaches.append(dict(level=worst_breach.level, threshold=worst_breach.key, limit=worst_breach.limit,
                             value=worst_breach.value, worst=_name(worst_p), partitions=len(rows)))
    for breach in rules.total_breaches(total_lag, thresholds):
        levels.append(breach.level)
        reasons.append("%s: %s" % (breach.level, breach.text))
        breaches.append(dict(level=breach.level, threshold=breach.key, limit=breach.limit, value=breach.value, worst=None, partitions=None))
    return rules.worst(levels), reasons, breaches


def _some(rows):
    names = [_name(p) for p in rows[:REASON_EXAMPLES]]
    more = len(rows) - len(names)
    return ", ".join(names) + (" and %d more" % more if more else "")


def _plural(count, word):
    return "%d %s%s" % (count, word, "" if count == 1 else "s")


def summarise(reports):
    """Counts over all reported groups, for a one-line answer and for alerting."""
    statuses = _count(r["status"] for r in reports)
    lags = [r["lag"] for r in reports if r["lag"] is not None]
    seconds = [r["max_lag_seconds"] for r in reports if r["max_lag_seconds"] is not None]
    return dict(
        groups=len(reports),
        status=rules.worst(statuses),
        statuses={status: statuses.get(status, 0) for status in rules.GROUP_STATUSES},
        lag=sum(lags) if lags else None,
        max_lag=max((r["max_lag"] for r in reports if r["max_lag"] is not None), default=None),
        max_lag_seconds=max(seconds) if seconds else None,
        partitions=sum(r["partition_count"] for r in reports),
        uncommitted_partitions=sum(r["uncommitted_partitions"] for r in reports),
    )
