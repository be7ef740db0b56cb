"""Burrow's status rules as kafka_lag_info adapts them to the samples one call takes."""

import pytest

from ansible_collections.streamops.day2.plugins.module_utils._lag import rules
from ansible_collections.streamops.day2.plugins.module_utils._lag.rules import (
    ERR, NO_OFFSET, OK, REWIND, STALL, STOP, WARN, Breach, is_idle, lag_of, partition_breaches, rate_partition,
    total_breaches, validate_thresholds, worst)


def status(committed, ends, owned=True):
    return rate_partition(committed, ends, owned)[0]


def test_lag_is_log_end_minus_committed_and_none_without_offset():
    assert lag_of(10, 25) == 15
    assert lag_of(25, 25) == 0
    assert lag_of(None, 25) is None
    assert lag_of(30, 25) == -5  # committed beyond the log end (topic recreated): shown, not hidden


@pytest.mark.parametrize("committed, ends, owned", [
    ([10, 10, 10], [10, 10, 10], True),     # caught up and idle
    ([10, 10, 10], [10, 10, 10], False),    # caught up, nobody there: still fine (Burrow rule 4's exception)
    ([5, 7, 12], [10, 11, 12], True),       # lag back to zero now
    ([5, 5, 12], [15, 15, 12], True),       # current lag zero wins over anything earlier
])
def test_zero_current_lag_is_ok(committed, ends, owned):
    assert status(committed, ends, owned) == OK


def test_lag_that_touched_zero_in_the_window_is_ok():
    # Burrow rule 1: any zero lag in the window means the consumer keeps up.
    assert status([10, 20, 20], [20, 20, 30], owned=True) == OK


def test_unowned_partition_whose_offset_does_not_move_is_stop():
    result = rate_partition([10, 10, 10], [20, 25, 30], owned=False, span=10)
    assert result[0] == STOP
    assert result[1] == "lag 20, committed offset 10 did not move in 3 samples over 10s and no live member owns the partition"


def test_stop_is_checked_before_the_zero_lag_rule_like_burrow():
    # Lag was zero at first, then records came and nobody is there to consume them.
    assert status([10, 10, 10], [10, 12, 15], owned=False) == STOP


def test_owned_partition_whose_offset_does_not_move_is_stall():
    result = rate_partition([10, 10, 10], [20, 25, 30], owned=True, span=4)
    assert result == (STALL, "lag 20, committed offset 10 did not move in 3 samples over 4s while a member owns the partition")


def test_unknown_ownership_never_infers_stop():
    assert status([10, 10, 10], [20, 20, 20], owned=None) == STALL
    assert status([10], [20], owned=None) == OK


def test_unowned_partition_with_moving_offsets_is_judged_on_its_trend():
    # A consumer that uses assign() (no group members) but commits: not stopped.
    assert status([10, 12, 14], [20, 21, 22], owned=False) == OK
    assert status([10, 12, 14], [20, 23, 26], owned=False) == WARN


def test_committed_offset_going_back_is_rewind():
    result = rate_partition([100, 50, 60], [200, 200, 210], owned=True)
    assert result[0] == REWIND and "from 100 to 50" in result[1]


def test_lag_never_decreasing_while_consuming_is_warn():
    assert status([10, 20, 30], [50, 60, 70], owned=True) == WARN       # lag constant 40
    assert status([10, 20, 30], [50, 70, 90], owned=True) == WARN       # lag growing
    assert status([10, 20, 30], [50, 70, 60], owned=True) == OK         # lag went down once


def test_single_sample_rates_only_what_it_can_see():
    assert status([10], [20], owned=True) == OK
    assert rate_partition([10], [20], owned=False) == (STOP, "lag 10 and no live member of the group owns the partition")
    assert status([20], [20], owned=False) == OK


def test_no_committed_offset_is_its_own_status_never_a_zero_lag():
    assert rate_partition([None, None], [5, 9], owned=True) == (NO_OFFSET, "no committed offset")
    assert status([], [], owned=False) == NO_OFFSET
    assert status([5, None], [9, 9], owned=True) == NO_OFFSET


def test_first_commit_inside_the_window_judges_the_samples_after_it():
    assert status([None, 10, 10], [20, 20, 30], owned=True) == STALL
    assert status([None, None, 10], [20, 20, 30], owned=True) == OK  # one sample with an offset: no trend


def test_idle_means_no_record_appended_during_the_window():
    assert is_idle([5, 5, 5]) is True
    assert is_idle([5, 6, 6]) is False
    assert is_idle([5]) is None


def test_group_level_is_the_worst():
    assert worst([]) == OK
    assert worst([OK, WARN]) == WARN
    assert worst([WARN, ERR, OK]) == ERR
    assert [rules.group_level(s) for s in (OK, NO_OFFSET, WARN, STALL, STOP, REWIND)] == [OK, OK, WARN, ERR, ERR, ERR]


def test_thresholds_keep_the_stronger_breach_per_measure():
    thresholds = dict(warn_lag=100, error_lag=1000, warn_lag_seconds=60, error_lag_seconds=600)
    assert partition_breaches(50, 10.0, thresholds) == []
    assert partition_breaches(100, 10.0, thresholds) == [Breach(WARN, "warn_lag", 100, 100)]
    assert partition_breaches(5000, 700.5, thresholds) == [
        Breach(ERR, "error_lag", 5000, 1000), Breach(ERR, "error_lag_seconds", 700.5, 600)]
    assert partition_breaches(None, None, thresholds) == []
    assert partition_breaches(5000, None, {}) == []


def test_breach_text_names_value_and_limit():
    assert Breach(ERR, "error_lag_seconds", 700.5, 600).text == "lag seconds 700.500s >= error_lag_seconds 600s"
    assert Breach(WARN, "warn_lag", 120, 100).text == "lag 120 >= warn_lag 100"
    assert total_breaches(5000, dict(warn_total_lag=1000))[0].text == "total lag 5000 >= warn_total_lag 1000"
    assert total_breaches(None, dict(warn_total_lag=1000)) == []


def test_threshold_validation():
    assert validate_thresholds(dict(warn_lag=10, error_lag=100)) == []
    assert validate_thresholds(dict(warn_lag=None, error_lag=5)) == []
    assert validate_thresholds(dict(warn_lag=100, error_lag=10)) == ["thresholds.warn_lag (100) is above thresholds.error_lag (10)."]
    assert validate_thresholds(dict(error_lag_seconds=-1)) == ["thresholds.error_lag_seconds must not be negative (got -1)."]
