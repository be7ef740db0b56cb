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


def _listed(names, limit=10):
    names = sorted(names)
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


def selection_problems(options, group_pattern, all_groups, selected, partition_counts):
    """What is wrong with the selection, before anything is measured: (error sentence or None, [warnings]).

    A named topic the cluster does not have is an error (as an unknown group is): a typo must not turn an
    alert green. A pattern that matches nothing is a warning.
    """
    warnings = []
    unknown = [topic for topic in dict.fromkeys(options.topics) if topic not in partition_counts]
    if unknown:
        return ("Unknown topic%s: %s. The brokers know %d topic%s%s." % (
            "" if len(unknown) == 1 else "s", ", ".join(unknown), len(partition_counts), "" if len(partition_counts) == 1 else "s",
            " (%s)" % _listed(partition_counts) if partition_counts else "")), warnings
    if group_pattern and not selected:
        warnings.append("group_pattern %s matches none of the %d consumer group%s, so no group is reported." % (
            group_pattern, len(all_groups), "" if len(all_groups) == 1 else "s"))
    if options.topic_pattern and not any(options.wants_topic(topic) for topic in partition_counts):
        warnings.append("topic_pattern %s matches none of the %d topic%s, so every group is reported with no partition." % (
            options.topic_pattern, len(partition_counts), "" if len(partition_counts) == 1 else "s"))
    return None, warnings


def empty_group_warnings(options, reports):
    """Groups that consume none of the selected topics: said, since such a group rates OK with nothing in it."""
    if not (options.topics or options.topic_pattern):
        return []
    empty = [r["group"] for r in reports if r["partition_count"] == 0]
    if not empty:
        return []
    chosen = "topics %s" % ", ".join(options.topics) if options.topics else "topic_pattern %s" % options.topic_pattern
    return ["%d group%s consume%s none of the selected topics (%s) and %s reported with no partition: %s." % (
        len(empty), "" if len(empty) == 1 else "s", "s" if len(empty) == 1 else "", chosen, "is" if len(empty) == 1 else "are",
        _listed(empty))]


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


def all_partitions(groups, samples, partition_counts, options):
    """{group name: group_partitions(...)} for every group, computed once per call."""
    return {group.name: group_partitions(group, samples, partition_counts, options) for group in groups}


def wanted_reads(groups, samples, partition_counts, options, partitions=None):
    """(topic, partition, offset) of the records whose timestamps give lag in seconds: the record at
    each lagging committed offset in the last sample, once however many groups sit there."""
    last = samples[-1]
    ends = last.log_end
    reads = set()
    for group in groups:
        committed = last.committed.get(group.name, _EMPTY)
        keys = partitions[group.name] if partitions is not None else group_partitions(group, samples, partition_counts, options)
        for key in keys:
            offset = committed.get(key)
            if offset is not None:
                end = ends.get(key)
                if end is not None and end > offset:
                    reads.add((key[0], key[1], offset))
    return reads


def build_report(groups, samples, partition_counts, record_times, options, partitions=None):
    """The groups as kafka_lag_info returns them (list of dicts, in the order given).

    partitions: all_partitions(...) when the caller has it already.
    """
    if partitions is None:
        partitions = all_partitions(groups, samples, partition_counts, options)
    span = samples[-1].at - samples[0].at if len(samples) > 1 else None
    return [_group_report(group, partitions[group.name], samples, record_times, options, span) for group in groups]


_EMPTY = {}


def _owners(group):
    owners = {}
    for member in group.members:
        for key in member.assignment:
            owners[key] = member
    return owners


def _group_report(group, keys, samples, record_times, options, span):
    owners = _owners(group)
    # Ownership is unknown when members exist but none reports an assignment (a rebalance, or a
    # protocol whose assignment is not a consumer's): then STOP is not inferred from it.
    ownership_known = not group.members or bool(owners)
    unowned = False if ownership_known else None
    windowed = len(samples) > 1
    commits = [sample.committed.get(group.name, _EMPTY) for sample in samples]
    now = samples[-1].at
    rows = []
    for key in keys:
        owner = owners.get(key)
        row = _partition_row(key, commits, samples, owner, True if owner else unowned, record_times, options, span, now, windowed)
        rows.append(row)

    report = dict(
        group=group.name,
        state=group.state,
        type=group.type,
        assignor=group.assignor,
        coordinator=group.coordinator,
        simple=group.simple,
        member_count=len(group.members),
        members=[_member_report(m) for m in group.members],
    )
    by_topic = _totals_by_topic(rows, options.exclude_idle and windowed)
    report.update(_sum_totals(by_topic.values()))
    status, reasons, breaches = _group_status(rows, report["lag"], options.thresholds, options.exclude_idle and windowed)
    report.update(status=status, reasons=reasons, breaches=breaches, partition_statuses=_count(row["status"] for row in rows))
    if options.detail in ("topics", "partitions"):
        report["topics"] = [dict(topic=topic, **totals) for topic, totals in sorted(by_topic.items())]
    if options.detail == "partitions":
        report["partitions"] = rows
    return report


def _member_report(member):
    assignment = {}
    for topic, partition in sorted(member.assignment):
        assignment.setdefault(topic, []).append(partition)
    return dict(member_id=member.member_id, client_id=member.client_id, host=member.host,
                group_instance_id=member.group_instance_id, assignment=assignment)


def _partition_row(key, commits, samples, owner, owned, record_times, options, span, now, windowed):
    """One partition as returned. Lean on purpose: results of thousands of groups travel through
    Ansible, which handles every value; the window fields only come with two samples or more."""
    if windowed:
        committed = [c.get(key) for c in commits]
        log_ends = [s.log_end.get(key) for s in samples]
        if None in log_ends:  # a topic deleted while sampled: judge on what is known
            known = [i for i, end in enumerate(log_ends) if end is not None]
            committed = [committed[i] for i in known]
            log_ends = [log_ends[i] for i in known]
        current = committed[-1] if committed else None
        end = log_ends[-1] if log_ends else None
    else:
        current = commits[-1].get(key)
        end = samples[-1].log_end.get(key)
        committed, log_ends = [current], ([end] if end is not None else [])
    lag = None if current is None or end is None else end - current
    if not log_ends:
        status, reason = rules.NO_OFFSET, "the topic is gone"
    elif not windowed and current is not None:  # one sample, the common case: without the general rules' lists
        status, reason = (rules.OK, None) if lag <= 0 or owned is not False else rules.unowned_stop(lag)
    else:
        status, reason = rules.rate_partition(committed, log_ends, owned, span)
    row = dict(
        topic=key[0],
        partition=key[1],
        committed_offset=current,
        log_end_offset=end,
        lag=lag,
        lag_seconds=_lag_seconds(key, current, lag, now, record_times),
        status=status,
        reason=reason,
        client_id=owner.client_id if owner else None,
        host=owner.host if owner else None,
    )
    if windowed:
        idle = rules.is_idle(log_ends)
        row.update(idle=idle, excluded=bool(options.exclude_idle and idle),
                   lag_samples=[None if c is None else e - c for c, e in zip(committed, log_ends)])
    return row


def _lag_seconds(key, committed, lag, now, record_times):
    """Age of the oldest record the group has not consumed; 0 when caught up; None when unknown."""
    if lag is None:
        return None
    if lag <= 0:
        return 0.0
    read = (key[0], key[1], committed)
    if read not in record_times:
        return None  # not read (lag_seconds disabled, or not within the time limit)
    timestamp_ms = record_times[read]
    if timestamp_ms is None:
        return 0.0  # no record at or after the offset, only transaction markers: nothing waits
    return round(max(0.0, now - timestamp_ms / 1000.0), 3)


def _totals_by_topic(rows, may_exclude):
    """{topic: totals}; totals count partitions with an offset that are not excluded as idle."""
    topics = {}
    for row in rows:
        totals = topics.get(row["topic"])
        if totals is None:
            totals = topics[row["topic"]] = dict(lag=None, max_lag=None, max_lag_seconds=None, partition_count=0,
                                                 uncommitted_partitions=0, idle_partitions=0, excluded_partitions=0)
        totals["partition_count"] += 1
        lag = row["lag"]
        if lag is None:
            totals["uncommitted_partitions"] += row["committed_offset"] is None
            continue
        if may_exclude:
            totals["idle_partitions"] += bool(row["idle"])
            if row["excluded"]:
                totals["excluded_partitions"] += 1
                continue
        elif row.get("idle"):
            totals["idle_partitions"] += 1
        totals["lag"] = lag if totals["lag"] is None else totals["lag"] + lag
        if totals["max_lag"] is None or lag > totals["max_lag"]:
            totals["max_lag"] = lag
        seconds = row["lag_seconds"]
        if seconds is not None and (totals["max_lag_seconds"] is None or seconds > totals["max_lag_seconds"]):
            totals["max_lag_seconds"] = seconds
    return topics


def _sum_totals(parts):
    total = dict(lag=None, max_lag=None, max_lag_seconds=None, partition_count=0,
                 uncommitted_partitions=0, idle_partitions=0, excluded_partitions=0)
    for part in parts:
        for key in ("partition_count", "uncommitted_partitions", "idle_partitions", "excluded_partitions"):
            total[key] += part[key]
        if part["lag"] is not None:
            total["lag"] = part["lag"] if total["lag"] is None else total["lag"] + part["lag"]
        for key in ("max_lag", "max_lag_seconds"):
            if part[key] is not None and (total[key] is None or part[key] > total[key]):
                total[key] = part[key]
    return total


def _count(values):
    counts = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def _name(p):
    return "%s[%d]" % (p["topic"], p["partition"])


def _group_status(rows, total_lag, thresholds, may_exclude):
    levels = []
    reasons = []
    by_status = {}
    for row in rows:
        if row["status"] not in (rules.OK, rules.NO_OFFSET) and not (may_exclude and row["excluded"]):
            by_status.setdefault(row["status"], []).append(row)
    for status in rules.PARTITION_STATUSES:
        found = by_status.get(status)
        if found:
            levels.append(rules.group_level(status))
            reasons.append("%s on %s: %s (%s)" % (status, _plural(len(found), "partition"), found[0]["reason"], _some(found)))

    breaches = []
    if any(value is not None for value in (thresholds or {}).values()):
        crossed = {}
        for row in rows:
            if row["lag"] is None or (may_exclude and row["excluded"]):
                continue
            for breach in rules.partition_breaches(row["lag"], row["lag_seconds"], thresholds):
                crossed.setdefault((breach.level != rules.ERR, breach.key), []).append((row, breach))
        for unused, found in sorted(crossed.items(), key=lambda item: item[0]):
            worst_row, worst_breach = max(found, key=lambda item: item[1].value)
            levels.append(worst_breach.level)
            names = _some([row for row, unused in found])
            reasons.append("%s on %s: %s on %s (%s)" % (worst_breach.level, _plural(len(found), "partition"), worst_breach.text,
                                                        _name(worst_row), names))
            breaches.append(dict(level=worst_breach.level, threshold=worst_breach.key, limit=worst_breach.limit,
                                 value=worst_breach.value, worst=_name(worst_row), partitions=len(found)))
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
