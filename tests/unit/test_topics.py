"""kafka_topic's pure logic: the change between the topic the brokers hold and the one asked for."""

import pytest

from ansible_collections.streamops.day2.plugins.module_utils._topics import normalize_config, plan_topic_change


def params(**kw):
    base = dict(name="orders", state="present", partitions=None, replication_factor=None, replica_assignment=None)
    base.update(kw)
    return base


def existing(partitions=3, rf=2, config=None):
    replicas = [[(i + j) % 3 + 1 for j in range(rf)] for i in range(partitions)]
    return dict(name="orders", partitions=partitions, replication_factor=rf, replicas=replicas, config=config or {})


def test_config_values_become_the_strings_kafka_stores():
    assert normalize_config({"a": True, "b": 86400000, "c": 1.0, "d": 0.5, "e": ["compact", "delete"], "f": None}) == {
        "a": "true", "b": "86400000", "c": "1", "d": "0.5", "e": "compact,delete", "f": None}


def test_absent_topic_is_created_with_partitions_rf_and_config():
    change = plan_topic_change(None, params(partitions=6, replication_factor=3), {"retention.ms": "1000"})
    assert change.changed and change.create
    assert change.after["partitions"] == 6 and change.after["replication_factor"] == 3
    assert change.actions == ["create topic orders with 6 partitions, replication factor 3", "set retention.ms=1000"]


def test_creation_without_partitions_is_refused_with_the_way_out():
    with pytest.raises(ValueError, match="give partitions"):
        plan_topic_change(None, params(), {})


def test_replica_assignment_sets_partitions_and_rf_at_creation():
    change = plan_topic_change(None, params(replica_assignment=[[1, 2], [2, 3], [3, 1]]), {})
    assert change.after["partitions"] == 3 and change.after["replication_factor"] == 2
    assert change.new_partition_replicas == [[1, 2], [2, 3], [3, 1]]


@pytest.mark.parametrize("assignment, message", [
    ([[1, 1]], "names a broker twice"),
    ([[1, 2], [3]], "different replica counts"),
    ([["x"]], "not an integer"),
    ([[]], "no replicas"),
])
def test_malformed_replica_assignment_is_refused(assignment, message):
    with pytest.raises(ValueError, match=message):
        plan_topic_change(None, params(replica_assignment=assignment), {})


def test_assignment_and_partitions_must_agree():
    with pytest.raises(ValueError, match="make them agree"):
        plan_topic_change(None, params(partitions=4, replica_assignment=[[1], [2]]), {})


def test_same_topic_is_unchanged():
    change = plan_topic_change(existing(config={"retention.ms": "1000"}), params(partitions=3, replication_factor=2),
                               {"retention.ms": "1000"})
    assert not change.changed and change.actions == []


def test_partitions_only_grow():
    with pytest.raises(ValueError, match="cannot remove partitions"):
        plan_topic_change(existing(partitions=3), params(partitions=2), {})
    change = plan_topic_change(existing(partitions=3), params(partitions=5), {})
    assert change.add_partitions and change.after["partitions"] == 5
    assert change.actions == ["add 2 partitions to topic orders (3 -> 5)"]


def test_new_partitions_take_their_rows_of_the_assignment():
    before = existing(partitions=2, rf=2)
    change = plan_topic_change(before, params(replica_assignment=before["replicas"] + [[3, 1]]), {})
    assert change.new_partition_replicas == [[3, 1]] and not change.warnings


def test_replication_factor_change_is_refused_and_points_to_reassignment():
    with pytest.raises(ValueError, match="kafka_reassignment"):
        plan_topic_change(existing(rf=2), params(replication_factor=3), {})


def test_moved_existing_replicas_only_warn():
    change = plan_topic_change(existing(partitions=2, rf=2), params(replica_assignment=[[3, 2], [3, 2]]), {})
    assert not change.changed and "partitions 0, 1" in change.warnings[0]


def test_only_given_config_keys_change_and_null_resets():
    before = existing(config={"retention.ms": "1000", "cleanup.policy": "compact"})
    change = plan_topic_change(before, params(), {"retention.ms": "2000", "cleanup.policy": None})
    assert change.config_updates == {"retention.ms": "2000", "cleanup.policy": None}
    assert change.actions == ["reset cleanup.policy to its default", "set retention.ms=2000"]
    assert change.after["config"] == {"retention.ms": "2000", "cleanup.policy": None}


def test_absent_is_idempotent():
    assert not plan_topic_change(None, params(state="absent"), {}).changed
    change = plan_topic_change(existing(), params(state="absent"), {})
    assert change.delete and change.after is None


def test_zero_partitions_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        plan_topic_change(None, params(partitions=0), {})


def test_replica_assignment_given_as_json_text_as_an_ad_hoc_command_gives_it():
    from ansible_collections.streamops.day2.plugins.module_utils._topics import validate_assignment
    assert validate_assignment("orders", "[[1,2],[2,3]]", None) == [[1, 2], [2, 3]]
    assert validate_assignment("orders", " ", None) == []
    for bad, text in (("[[1", "neither a list of lists of broker ids nor their JSON text"), ("[1, 2]", "one list of broker ids per partition"),
                      (5, "one list of broker ids per partition"), ([[1, True]], "not an integer"), ([[1.5, 2]], "not an integer")):
        with pytest.raises(ValueError, match=text):
            validate_assignment("orders", bad, None)


def test_check_mode_lists_one_entry_per_partition_the_brokers_will_place():
    created = plan_topic_change(None, params(partitions=3, replication_factor=2), {})
    assert created.after["replicas"] == [[], [], []]
    grown = plan_topic_change(existing(partitions=2), params(partitions=4), {})
    assert grown.after["replicas"][2:] == [[], []] and len(grown.after["replicas"]) == 4
