# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Burrow's consumer status rules, evaluated on the samples one call takes, plus thresholds.

Burrow (LinkedIn) rates each partition of a group from a sliding window of its committed
offsets and the broker's log-end offsets, then rates the group by its worst partition. Burrow
sees every commit (it reads ``__consumer_offsets``); a module call sees only what it samples, so
two rules are adapted (see docs/lag.md):

- STOP ("the consumer stopped committing"): the committed offset did not move over the window,
  lag is above zero, and no live member of the group owns the partition (an empty group, or a
  partition nobody is assigned). With a single sample, "did not move" cannot be observed; an
  unowned lagging partition rates STOP on its own then (nobody is there to consume it).
- STALL ("the consumer commits but does not progress"): the committed offset did not move over
  the window, lag stayed above zero, and a member owns the partition (or ownership is unknown).

The other rules are Burrow's, in Burrow's order:

1. current lag zero (or below): OK, whatever happened before;
2. STOP, as above (checked before rule 3, as Burrow does);
3. only when lag was above zero in every sample: REWIND if the committed offset went back,
   STALL as above, WARN if lag never decreased from one sample to the next;
4. otherwise OK.

A group is OK, WARN or ERR: its worst partition (WARN gives WARN; STOP, STALL and REWIND give
ERR), raised by any threshold breach. A partition with no committed offset (NO_OFFSET) cannot be
rated and does not change the group's status; it is counted and listed instead.
"""

from __future__ import annotations

OK = "OK"
WARN = "WARN"
ERR = "ERR"
STALL = "STALL"
STOP = "STOP"
REWIND = "REWIND"
NO_OFFSET = "NO_OFFSET"

PARTITION_STATUSES = (OK, NO_OFFSET, WARN, STALL, STOP, REWIND)
GROUP_STATUSES = (OK, WARN, ERR)

# What a partition status does to its group.
_GROUP_LEVEL = {OK: OK, NO_OFFSET: OK, WARN: WARN, STALL: ERR, STOP: ERR, REWIND: ERR}
_RANK = {OK: 0, WARN: 1, ERR: 2}

THRESHOLD_KEYS = ("warn_lag", "error_lag", "warn_lag_seconds", "error_lag_seconds", "warn_total_lag", "error_total_lag")


def lag_of(committed, log_end):
    """Messages between the committed offset and the log end; None when nothing is committed."""
    if committed is None or log_end is None:
        return None
    return log_end - committed


def is_idle(log_ends):
    """True when no record was appended during the window; None when one sample cannot tell."""
    if len(log_ends) < 2:
        return None
    return all(end == log_ends[0] for end in log_ends)


def rate_partition(committed, log_ends, owned, span=None):
    """Burrow status of one partition: (status, reason or None).

    committed, log_ends: the partition's samples, oldest first (committed entries may be None).
    owned: True if a live member of the group is assigned the partition, False if none is,
    None when that is unknown (members whose assignment could not be read).
    span: seconds between the first and the last sample, for the reason text.
    """
    if not committed or committed[-1] is None:
        return NO_OFFSET, "no committed offset"
    # Only the trailing samples that have an offset count (the first commit may fall in the window).
    first = len(committed)
    while first > 0 and committed[first - 1] is not None:
        first -= 1
    offsets = committed[first:]
    ends = log_ends[first:]
    lags = [end - offset for offset, end in zip(offsets, ends)]
    current = lags[-1]
    if current <= 0:
        return OK, None

    unchanged = all(offset == offsets[0] for offset in offsets)
    window = _window_text(len(offsets), span)
    if owned is False and unchanged:
        if len(offsets) == 1:
            return unowned_stop(current)
        return STOP, "lag %d, committed offset %d did not move %s and no live member owns the partition" % (
            current, offsets[-1], window)
    if len(offsets) < 2 or any(value <= 0 for value in lags):
        return OK, None
    for before, after in zip(offsets, offsets[1:]):
        if after < before:
            return REWIND, "committed offset went back from %d to %d %s" % (before, after, window)
    if unchanged:
        return STALL, "lag %d, committed offset %d did not move %s while a member owns the partition" % (
            current, offsets[-1], window)
    if all(after >= before for before, after in zip(lags, lags[1:])):
        return WARN, "lag never decreased %s (%s)" % (window, " -> ".join(str(v) for v in lags))
    return OK, None


def unowned_stop(lag):
    """STOP of a lagging partition no live member owns, as one sample sees it."""
    return STOP, "lag %d and no live member of the group owns the partition" % lag


def _window_text(samples, span):
    if span is None:
        return "in %d samples" % samples
    return "in %d samples over %gs" % (samples, round(span, 1))


class Breach:
    """One threshold crossed: level (WARN or ERR), the threshold's key, the value and the limit."""

    __slots__ = ("level", "key", "value", "limit")

    def __init__(self, level, key, value, limit):
        self.level, self.key, self.value, self.limit = level, key, value, limit

    def __repr__(self):
        return "Breach(%r, %r, %r, %r)" % (self.level, self.key, self.value, self.limit)

    def __eq__(self, other):
        return isinstance(other, Breach) and repr(self) == repr(other)

    def __hash__(self):
        return hash(repr(self))

    @property
    def text(self):
        unit = "s" if self.key.endswith("seconds") else ""
        measure = self.key.split("_", 1)[1].replace("_", " ")
        return "%s %s%s >= %s %g%s" % (measure, _number(self.value), unit, self.key, self.limit, unit)


def partition_breaches(lag, lag_seconds, thresholds):
    """Threshold breaches of one partition: the stronger one per measure (lag, lag seconds)."""
    return _breach("lag", lag, thresholds) + _breach("lag_seconds", lag_seconds, thresholds)


def total_breaches(total, thresholds):
    """Threshold breaches of a group's total lag."""
    return _breach("total_lag", total, thresholds)


def _breach(measure, value, thresholds):
    if value is None:
        return []
    for level, key in ((ERR, "error_" + measure), (WARN, "warn_" + measure)):
        limit = (thresholds or {}).get(key)
        if limit is not None and value >= limit:
            return [Breach(level, key, value, limit)]
    return []


def _number(value):
    return "%d" % value if float(value).is_integer() else "%.3f" % value


def group_level(partition_status):
    """OK, WARN or ERR: what one partition status means for its group."""
    return _GROUP_LEVEL[partition_status]


def worst(levels):
    """The worst of some group levels (OK when there are none)."""
    result = OK
    for level in levels:
        if _RANK[level] > _RANK[result]:
            result = level
    return result


def validate_thresholds(thresholds):
    """Errors in a thresholds dict, as sentences (an empty list when it is fine)."""
    errors = []
    values = {k: v for k, v in (thresholds or {}).items() if v is not None}
    for key, value in values.items():
        if value < 0:
            errors.append("thresholds.%s must not be negative (got %g)." % (key, value))
    for measure in ("lag", "lag_seconds", "total_lag"):
        warn, error = values.get("warn_" + measure), values.get("error_" + measure)
        if warn is not None and error is not None and warn > error:
            errors.append("thresholds.warn_%s (%g) is above thresholds.error_%s (%g)." % (measure, warn, measure, error))
    return errors
