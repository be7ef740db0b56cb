"""kafka_reassignment's throttle maths: the configs Kafka's tool sets, rate parsing, the time estimate."""

import pytest

from ansible_collections.streamops.day2.plugins.module_utils._reassignment.plan import Move, PlanError, human_bytes
from ansible_collections.streamops.day2.plugins.module_utils._reassignment.throttle import estimate_seconds, parse_rate, throttle_for


def test_leader_lists_name_every_source_and_follower_lists_every_destination():
    throttle = throttle_for({}, [("orders", 0, [1, 2], [2, 3]), ("orders", 1, [2, 3], [3, 1])])
    assert throttle.leader == {"orders": "0:1,0:2,1:2,1:3"}
    assert throttle.follower == {"orders": "0:3,1:1"}
    assert throttle.brokers == [1, 2, 3]
    assert throttle.topics == ["orders"]


def test_lists_sort_as_strings_like_kafkas_treeset():
    throttle = throttle_for({}, [("t", 10, [1], [2]), ("t", 2, [1], [3])])
    assert throttle.leader == {"t": "10:1,2:1"}
    assert throttle.follower == {"t": "10:2,2:3"}


def test_a_reorder_throttles_its_sources_and_no_follower():
    throttle = throttle_for({}, [("t", 0, [1, 2], [2, 1])])
    assert throttle.leader == {"t": "0:1,0:2"} and throttle.follower == {"t": ""}
    assert throttle.brokers == [1, 2]


def test_ongoing_reassignments_keep_their_throttle_and_their_original_sources():
    ongoing = {("t", 0): {"replicas": [3, 4, 1, 2], "adding_replicas": [3, 4], "removing_replicas": [1, 2]},
               ("other", 5): {"replicas": [2, 1], "adding_replicas": [1], "removing_replicas": []}}
    # A resubmission of t-0 uses the sources of the running move, not the union the metadata shows.
    throttle = throttle_for(ongoing, [("t", 0, [3, 4, 1, 2], [3, 4]), ("t", 1, [1], [2])])
    assert throttle.leader == {"t": "0:1,0:2,1:1", "other": "5:2"}
    assert throttle.follower == {"t": "0:3,0:4,1:2", "other": "5:1"}
    assert throttle.brokers == [1, 2, 3, 4]


def test_nothing_to_move_throttles_nothing():
    throttle = throttle_for({}, [])
    assert throttle.leader == {} and throttle.follower == {} and throttle.brokers == []


@pytest.mark.parametrize("value, rate", [
    (52428800, 52428800), ("52428800", 52428800), ("50MB", 50_000_000), ("50 MiB/s", 52_428_800),
    ("1.5GB/s", 1_500_000_000), ("10kB", 10_000), ("10 KiB/sec", 10_240), ("7 b", 7), (None, None), ("", None), (2.5e6, 2_500_000),
])
def test_rates_parse_to_bytes_per_second(value, rate):
    assert parse_rate(value) == rate


@pytest.mark.parametrize("value", ["fast", "-5MB", "10 parsecs", "0", True, 0.1])
def test_bad_rates_are_refused(value):
    with pytest.raises(PlanError, match="throttle"):
        parse_rate(value)


def test_estimate_is_set_by_the_busiest_broker():
    moves = [Move("t", 0, (1,), (2,), leader=1, size=100), Move("t", 1, (1,), (3,), leader=1, size=100),
             Move("t", 2, (3,), (2,), leader=3, size=50)]
    # Broker 1 sends 200 bytes, broker 2 receives 150: at 10 B/s the sender needs 20 s.
    assert estimate_seconds(moves, 10) == 20.0
    assert estimate_seconds(moves, None) is None
    assert estimate_seconds([Move("t", 0, (1, 2), (2, 1), leader=1, size=100)], 10) == 0


def test_human_bytes():
    assert human_bytes(999) == "999 B"
    assert human_bytes(52_428_800) == "52.4 MB"
