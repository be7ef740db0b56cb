#!/usr/bin/python
# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: kafka_lag_info
short_description: Consumer group lag in messages and seconds, with a Burrow-style status per group
version_added: 0.1.0
description:
  - Reports, for the selected consumer groups, the group state and members (client id, host, assigned partitions)
    and, per partition, the committed offset, the log-end offset, the lag in messages and the lag in seconds;
    with totals and maxima per group and per topic.
  - Lag in seconds is the age of the oldest record the group has not consumed yet, that is the time of the sample
    minus the timestamp of the record at the committed offset (the first record at or after it, on compacted topics).
    It is V(0) when the group is caught up, and V(null) when unknown (no committed offset, O(lag_seconds=false),
    or the record could not be read within O(request_timeout)). See C(docs/lag.md) for the details.
  - A partition the group never committed (a partition assigned to a member, or another partition of a topic the
    group consumes) is listed with RV(groups[].partitions[].committed_offset), RV(groups[].partitions[].lag) and
    RV(groups[].partitions[].lag_seconds) set to V(null) and status V(NO_OFFSET), never as a zero lag.
  - The status of each group follows LinkedIn Burrow's rules (OK, WARN, ERR per group; OK, WARN, STALL, STOP,
    REWIND per partition) evaluated on O(window_samples) samples taken O(window_interval) seconds apart by this
    call, raised by the O(thresholds) given.
  - Every request is batched (one offset fetch per group, all at once; one log-end offset request per broker;
    one fetch per broker for the record timestamps); no request is made per partition.
author:
  - streamops.day2 engineers (@streamops)
extends_documentation_fragment:
  - streamops.day2._kafka
  - streamops.day2._attributes
  - streamops.day2._attributes.INFO_MODULE
  - streamops.day2._attributes.ACTIONGROUP_KAFKA
options:
  groups:
    description:
      - Names of the consumer groups to report. Each must exist, or the task fails naming the unknown ones.
      - With neither O(groups) nor O(group_pattern), every consumer group is reported.
    type: list
    elements: str
    default: []
    aliases: [group]
  group_pattern:
    description:
      - Python regular expression a group name must match (anywhere in the name; anchor it with V(^) and V($)).
      - Combined with O(groups), it filters the named groups.
      - A pattern that matches no group gives a warning (and no group is reported).
    type: str
  topics:
    description:
      - Only report these topics. All topics the groups consume when empty.
      - Each must exist, or the task fails naming the unknown ones; a group that consumes none of them is reported with no
        partition and a warning.
    type: list
    elements: str
    default: []
  topic_pattern:
    description:
      - Python regular expression a topic name must match (anywhere in the name).
      - A pattern that matches no topic of the cluster gives a warning.
    type: str
  include_empty_groups:
    description:
      - Whether to report groups with no active members (state C(Empty), or groups that only commit offsets).
      - Their lagging partitions rate V(STOP) since nobody consumes them.
    type: bool
    default: true
  exclude_idle:
    description:
      - Leave idle partitions out of the group's status and of its totals and maxima.
      - A partition is idle when no record was appended to it during the window, so its lag cannot grow;
        a lag that stays on such a partition (a consumer parked on a quiet topic, a transaction marker) is persistent, not a backlog.
      - Idle partitions stay in RV(groups[].partitions) with RV(groups[].partitions[].excluded=true).
      - Needs O(window_samples) of 2 or more; with one sample no partition is known to be idle.
    type: bool
    default: false
  lag_seconds:
    description:
      - Whether to measure lag in seconds by reading the record at each lagging committed offset.
      - One record per distinct offset is read (groups sharing an offset share the read), in one fetch per broker.
    type: bool
    default: true
  window_samples:
    description:
      - Number of samples of committed and log-end offsets to take.
      - With one sample, only the current state is rated (lag above zero on a partition no member owns is V(STOP));
        the trend rules (V(STALL), V(WARN), V(REWIND)) need two samples or more. Burrow uses ten.
      - At most 100, and the window (O(window_samples) - 1) x O(window_interval) at most 3600 seconds; more is refused.
    type: int
    default: 1
  window_interval:
    description: Seconds between two samples (see O(window_samples) for the longest window).
    type: float
    default: 5.0
  thresholds:
    description:
      - Lag limits that raise a group's status to V(WARN) or V(ERR), on top of Burrow's rules.
      - Per partition limits apply to each partition (messages, or seconds), total limits to the group's total lag.
      - A value is breached when the lag is greater than or equal to it.
    type: dict
    default: {}
    suboptions:
      warn_lag:
        description: Messages behind on one partition that rate the group V(WARN).
        type: int
      error_lag:
        description: Messages behind on one partition that rate the group V(ERR).
        type: int
      warn_lag_seconds:
        description: Age in seconds of the oldest unconsumed record of one partition that rates the group V(WARN).
        type: float
      error_lag_seconds:
        description: Age in seconds of the oldest unconsumed record of one partition that rates the group V(ERR).
        type: float
      warn_total_lag:
        description: Total messages behind over the group's partitions that rate the group V(WARN).
        type: int
      error_total_lag:
        description: Total messages behind over the group's partitions that rate the group V(ERR).
        type: int
  isolation_level:
    description:
      - V(read_uncommitted) measures lag to the log end (high watermark), as C(kafka-consumer-groups.sh) does.
      - V(read_committed) measures it to the last stable offset, which is what a transactional consumer can read.
    type: str
    choices: [read_uncommitted, read_committed]
    default: read_uncommitted
  detail:
    description:
      - How much of each group to return. V(partitions) returns everything; V(topics) leaves out
        RV(groups[].partitions); V(groups) also leaves out RV(groups[].topics).
      - Statuses, totals and maxima are always computed from every partition; only the output is smaller.
        For thousands of groups, a smaller result is what keeps the task fast (Ansible handles every returned value).
    type: str
    choices: [partitions, topics, groups]
    default: partitions
  query:
    description:
      - A JMESPath expression applied to this module's result (RV(groups), RV(summary), RV(window)); its answer is
        returned in RV(query_result) B(instead of) RV(groups), so a large result can be cut down to what the play needs
        before it travels back to the controller. Needs the C(jmespath) Python library.
      - 'For example V(groups[?status!=`OK`].{group: group, lag: lag, seconds: max_lag_seconds}).'
    type: str
notes:
  - Uses the Kafka Admin API and a consumer that never joins a group and never commits, through confluent-kafka (librdkafka).
  - Burrow sees every commit; this module sees what it samples, so C(STOP) means "offset not moving and no live member owns the
    partition" and C(STALL) means "offset not moving while a member owns it". C(docs/lag.md) lists every rule.
requirements:
  - confluent-kafka >= 2.3
  - jmespath (only for O(query))
seealso:
  - name: Burrow consumer lag evaluation rules
    description: The rules this module's status follows.
    link: https://github.com/linkedin/Burrow/wiki/Consumer-Lag-Evaluation-Rules
  - module: streamops.day2.kafka_topic
"""

EXAMPLES = r"""
- name: Lag of every consumer group, one sample
  streamops.day2.kafka_lag_info:
    bootstrap_servers: [kafka-1:9092, kafka-2:9092]
  register: lag

- name: Rate two groups over a window of five samples, two seconds apart, with thresholds
  streamops.day2.kafka_lag_info:
    groups: [orders-app, billing]
    window_samples: 5
    window_interval: 2
    exclude_idle: true
    thresholds:
      warn_lag: 1000
      error_lag_seconds: 300
  register: lag

- name: Fail when a group is not OK
  ansible.builtin.assert:
    that: lag.summary.status == 'OK'
    fail_msg: "{{ lag.groups | selectattr('status', '!=', 'OK') | map(attribute='reasons') | flatten }}"

- name: Only the groups of one team, shaped for a report
  streamops.day2.kafka_lag_info:
    group_pattern: "^payments-"
    query: "groups[].{group: group, state: state, lag: lag, seconds: max_lag_seconds, status: status}"
  register: payments

- name: Groups without members that still have a backlog
  streamops.day2.kafka_lag_info:
    query: "groups[?member_count==`0` && lag > `0`].group"
  register: abandoned
"""

RETURN = r"""
groups:
  description: The selected groups, in name order (or in the order of O(groups)).
  returned: unless O(query) is given
  type: list
  elements: dict
  contains:
    group:
      description: Group id.
      type: str
      sample: orders-app
    state:
      description: Group state as Kafka names it (C(Stable), C(Empty), C(PreparingRebalance), C(CompletingRebalance), C(Dead), ...).
      type: str
      sample: Stable
    type:
      description: Group protocol, C(classic) or C(consumer) (KIP-848), C(unknown) when the broker does not say.
      type: str
      sample: classic
    assignor:
      description: Partition assignor, when the group has one.
      type: str
      sample: range
    coordinator:
      description:
        - Broker id of the group coordinator.
        - V(null) for a group the broker listed as C(Empty) at the start of the call (it has no member to describe, so it is not described).
      type: int
      sample: 2
    simple:
      description: Whether the group only commits offsets and never had a member protocol (consumers using C(assign)).
      type: bool
    member_count:
      description: Number of active members.
      type: int
      sample: 2
    members:
      description: Active members.
      type: list
      elements: dict
      sample:
        - {member_id: "consumer-1-5b1c", client_id: "consumer-1", host: "/10.0.0.7", group_instance_id: null, assignment: {orders: [0, 1]}}
    status:
      description: V(OK), V(WARN) or V(ERR), from Burrow's rules over the window and the thresholds.
      type: str
      sample: ERR
    reasons:
      description: Why the status is not V(OK), one sentence per cause.
      type: list
      elements: str
      sample: ["STOP on 3 partitions (orders[0], orders[1], orders[2]): lag 120 and no live member of the group owns the partition"]
    breaches:
      description:
        - The O(thresholds) the group crossed, one entry per threshold, the stronger of warn/error per measure.
        - V(worst) names the partition with the largest value (V(null) for O(thresholds.warn_total_lag) and O(thresholds.error_total_lag)),
          V(partitions) how many partitions crossed it.
      type: list
      elements: dict
      sample: [{level: ERR, threshold: error_lag_seconds, limit: 600, value: 900.5, worst: "orders[3]", partitions: 2}]
    partition_statuses:
      description: Number of partitions per partition status (V(OK), V(NO_OFFSET), V(WARN), V(STALL), V(STOP), V(REWIND)).
      type: dict
      sample: {OK: 4, STOP: 2}
    lag:
      description: Total lag in messages over the partitions with a committed offset (idle ones left out when O(exclude_idle)); V(null) when there are none.
      type: int
      sample: 1234
    max_lag:
      description: Largest lag in messages of one partition; V(null) when no partition has a committed offset.
      type: int
      sample: 1000
    max_lag_seconds:
      description: Largest lag in seconds of one partition; V(null) when unknown.
      type: float
      sample: 321.5
    partition_count:
      description: Number of partitions reported for the group.
      type: int
    uncommitted_partitions:
      description: Number of partitions with no committed offset.
      type: int
    idle_partitions:
      description: Number of partitions with no record appended during the window.
      type: int
    excluded_partitions:
      description: Number of partitions left out of status and totals by O(exclude_idle).
      type: int
    topics:
      description: Per topic of the group, the same totals and maxima (RV(groups[].lag), RV(groups[].max_lag), ...) with the topic name.
      returned: when O(detail) is V(topics) or V(partitions)
      type: list
      elements: dict
      sample: [{topic: orders, lag: 1234, max_lag: 1000, max_lag_seconds: 321.5, partition_count: 6, uncommitted_partitions: 0,
                idle_partitions: 0, excluded_partitions: 0}]
    partitions:
      description: One entry per partition, sorted by topic and partition.
      returned: when O(detail=partitions)
      type: list
      elements: dict
      contains:
        topic:
          description: Topic name.
          type: str
        partition:
          description: Partition number.
          type: int
        committed_offset:
          description: The group's committed offset (next record to consume); V(null) when the group never committed one.
          type: int
        log_end_offset:
          description: Log-end offset (high watermark, or last stable offset with O(isolation_level=read_committed)).
          type: int
        lag:
          description: RV(groups[].partitions[].log_end_offset) minus RV(groups[].partitions[].committed_offset); V(null) without a committed offset.
          type: int
        lag_seconds:
          description: Age of the oldest unconsumed record at the last sample, V(0) when caught up, V(null) when unknown.
          type: float
        status:
          description: Burrow status of the partition (V(OK), V(WARN), V(STALL), V(STOP), V(REWIND)), or V(NO_OFFSET).
          type: str
        reason:
          description: Why the status is what it is, when not V(OK).
          type: str
        client_id:
          description: Client id of the member that owns the partition; V(null) when no member does.
          type: str
        host:
          description: Host of that member.
          type: str
        idle:
          description: Whether no record was appended during the window.
          returned: when O(window_samples) is 2 or more
          type: bool
        excluded:
          description: Whether the partition is left out of the status and totals (O(exclude_idle)).
          returned: when O(window_samples) is 2 or more
          type: bool
        lag_samples:
          description: Lag in messages at each sample, oldest first.
          returned: when O(window_samples) is 2 or more
          type: list
          elements: int
summary:
  description: Over all reported groups.
  returned: always
  type: dict
  sample: {groups: 3, status: ERR, statuses: {OK: 2, WARN: 0, ERR: 1}, lag: 1234, max_lag: 1000, max_lag_seconds: 321.5,
           partitions: 18, uncommitted_partitions: 1}
window:
  description: The samples taken.
  returned: always
  type: dict
  sample: {samples: 3, interval: 5.0, span: 10.01, started: "2026-01-01T10:00:00.000Z", finished: "2026-01-01T10:00:10.010Z"}
elapsed:
  description:
    - Seconds the module spent on the brokers and on the result, window included (not Ansible's own start-up
      and result handling around it).
  returned: always
  type: float
  sample: 0.734
query_result:
  description: The answer of O(query).
  returned: when O(query) is given
  type: raw
"""

import datetime
import re
import time
import traceback

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.streamops.day2.plugins.module_utils._kafka import KafkaError, KafkaModule
from ansible_collections.streamops.day2.plugins.module_utils._lag import rules
from ansible_collections.streamops.day2.plugins.module_utils._lag.collect import LagCollector
from ansible_collections.streamops.day2.plugins.module_utils._lag.report import (
    Options, all_partitions, build_report, empty_group_warnings, selection_problems, summarise, wanted_reads)


def import_jmespath():
    """(jmespath or None, import traceback or None). Imported only when a task gives query: most tasks do not, and a
    module should not pay at start-up for a library its task does not use."""
    try:
        import jmespath
        return jmespath, None
    except ImportError:
        return None, traceback.format_exc()


def _iso(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


MAX_WINDOW_SAMPLES = 100
MAX_WINDOW_SECONDS = 3600


def check_params(params):
    """Bad input, as one sentence (None when fine)."""
    if params["window_samples"] < 1:
        return "window_samples must be 1 or more (got %d)." % params["window_samples"]
    if params["window_interval"] < 0:
        return "window_interval must not be negative (got %g)." % params["window_interval"]
    if params["window_samples"] > MAX_WINDOW_SAMPLES:
        return "window_samples is %d, more than the %d this module takes (Burrow rates on 10)." % (params["window_samples"], MAX_WINDOW_SAMPLES)
    span = (params["window_samples"] - 1) * params["window_interval"]
    if span > MAX_WINDOW_SECONDS:
        return ("The window spans %gs ((window_samples - 1) x window_interval), more than %ds: a task would hold its connection and "
                "the play that long; take fewer or closer samples, or schedule the task." % (span, MAX_WINDOW_SECONDS))
    for key in ("group_pattern", "topic_pattern"):
        if params[key] is not None:
            try:
                re.compile(params[key])
            except re.error as e:
                return "%s is not a valid regular expression (%s): %s" % (key, e, params[key])
    errors = rules.validate_thresholds(params["thresholds"])
    if errors:
        return " ".join(errors)
    jmespath = import_jmespath()[0] if params["query"] is not None else None
    if jmespath is not None:
        try:
            jmespath.compile(params["query"])
        except jmespath.exceptions.JMESPathError as e:
            return "query is not a valid JMESPath expression (%s): %s" % (str(e).replace("\n", " "), params["query"])
    return None


def run(kafka):
    began = time.monotonic()
    params = kafka.params
    options = Options(topics=tuple(params["topics"]), topic_pattern=params["topic_pattern"], exclude_idle=params["exclude_idle"],
                      thresholds=params["thresholds"] or {}, detail=params["detail"])
    collector = LagCollector(kafka, options)
    collector.ask_groups()
    counts = collector.partition_counts()   # while the brokers list the groups
    names = collector.select_groups(params["groups"], params["group_pattern"])
    kafka.refuse_hidden_topics([topic for topic in params["topics"] if topic not in counts])  # hidden by ACLs, not unknown
    error, warnings = selection_problems(options, params["group_pattern"], collector.listed, names, counts)
    if error:
        raise KafkaError(error)
    if not collector.listed and kafka.invisible_note("groups"):
        warnings.append("The brokers list no consumer group%s, so there is no lag to report." % kafka.invisible_note("groups"))
    start = time.monotonic()
    groups, first = collector.first_sample(names, counts)
    if not params["include_empty_groups"]:
        groups = [g for g in groups if g.members]
    samples = [first]
    for index in range(1, params["window_samples"]):
        time.sleep(max(0.0, start + index * params["window_interval"] - time.monotonic()))
        samples.append(collector.sample(groups, counts))
    if len(samples) > 1 and groups:
        groups = collector.describe_groups([g.name for g in groups])  # members as of the last sample

    partitions = all_partitions(groups, samples, counts, options)
    record_times = {}
    if params["lag_seconds"] and groups:
        record_times = collector.record_times(wanted_reads(groups, samples, counts, options, partitions), kafka.timeout)

    reports = build_report(groups, samples, counts, record_times, options, partitions)
    warnings += empty_group_warnings(options, reports)
    for warning in dict.fromkeys(warnings + collector.warnings):
        kafka.warn(warning)
    first, last = samples[0].at, samples[-1].at
    result = dict(
        changed=False,
        groups=reports,
        summary=summarise(reports),
        window=dict(samples=len(samples), interval=params["window_interval"], span=round(last - first, 3),
                    started=_iso(first), finished=_iso(last)),
    )
    result["elapsed"] = round(time.monotonic() - began, 3)
    if params["query"] is not None:
        jmespath = import_jmespath()[0]
        try:
            result["query_result"] = jmespath.search(params["query"], result)
            del result["groups"]
        except jmespath.exceptions.JMESPathError as e:
            raise KafkaError("query failed on the result (%s): %s" % (str(e).replace("\n", " "), params["query"]))
    return result


def main():
    kafka = KafkaModule(
        argument_spec=dict(
            groups=dict(type="list", elements="str", default=[], aliases=["group"]),
            group_pattern=dict(type="str"),
            topics=dict(type="list", elements="str", default=[]),
            topic_pattern=dict(type="str"),
            include_empty_groups=dict(type="bool", default=True),
            exclude_idle=dict(type="bool", default=False),
            lag_seconds=dict(type="bool", default=True),
            window_samples=dict(type="int", default=1),
            window_interval=dict(type="float", default=5.0),
            thresholds=dict(type="dict", default={}, options=dict(
                warn_lag=dict(type="int"),
                error_lag=dict(type="int"),
                warn_lag_seconds=dict(type="float"),
                error_lag_seconds=dict(type="float"),
                warn_total_lag=dict(type="int"),
                error_total_lag=dict(type="int"),
            )),
            isolation_level=dict(type="str", default="read_uncommitted", choices=["read_uncommitted", "read_committed"]),
            detail=dict(type="str", default="partitions", choices=["partitions", "topics", "groups"]),
            query=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    if kafka.params["query"] is not None:
        jmespath_import_error = import_jmespath()[1]
        if jmespath_import_error:
            kafka.fail_json(msg=missing_required_lib("jmespath"), exception=jmespath_import_error)
    problem = check_params(kafka.params)
    if problem:
        kafka.fail_json(msg=problem)
    kafka.run(run)


if __name__ == "__main__":
    main()
