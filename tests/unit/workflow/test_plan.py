"""The workflow spec planner behind the faas_workflow role: names, defaults, wiring, and one-sentence errors."""

import pytest

from ansible_collections.streamops.day2.plugins.module_utils._workflow import FILE_SINK, FILE_SOURCE, WorkflowError, plan

SPEC = {
    "name": "orders",
    "sources": [{"name": "in", "file": "/data/in.txt"}],
    "steps": [{"name": "upper", "image": "fn:1", "env": {"FN_TRANSFORM": "upper"}, "runners": 2,
               "scaling": {"target_lag": 500, "max": 3, "idle_seconds": 15}},
              {"name": "reverse", "image": "fn:1", "env": {"FN_TRANSFORM": "reverse"}, "scaling": False, "replicas": 2, "dlq": False}],
    "sinks": [{"name": "out", "file": "/data/out.txt"}],
}


def with_step(**changes):
    spec = {k: (list(v) if isinstance(v, list) else v) for k, v in SPEC.items()}
    spec["steps"] = [dict(SPEC["steps"][0], **changes), SPEC["steps"][1]]
    return spec


def test_a_linear_workflow_is_wired_source_to_sink():
    p = plan(SPEC)
    assert p["namespace"] == "orders"
    assert [t["name"] for t in p["topics"]] == ["orders.in", "orders.upper", "orders.upper.dlq", "orders.reverse"]
    assert all(t["partitions"] == 4 for t in p["topics"])
    source, sink = p["connectors"]
    assert (source["name"], source["kind"], source["config"]["connector.class"], source["config"]["topic"]) == \
        ("orders-in", "source", FILE_SOURCE, "orders.in")
    assert (sink["name"], sink["kind"], sink["config"]["connector.class"], sink["config"]["topics"]) == \
        ("orders-out", "sink", FILE_SINK, "orders.reverse")
    assert sink["config"]["consumer.override.isolation.level"] == "read_committed"
    assert source["config"]["value.converter"].endswith("StringConverter")
    upper, reverse = p["runners"]
    assert (upper["input"], upper["output"], upper["dlq"], upper["group"], upper["replicas"]) == \
        (["orders.in"], "orders.upper", "orders.upper.dlq", "orders-upper", 2)
    assert (reverse["input"], reverse["output"], reverse["dlq"], reverse["replicas"]) == (["orders.upper"], "orders.reverse", None, 1)
    fn_upper, fn_reverse = p["functions"]
    assert (fn_upper["name"], fn_upper["replicas"], fn_upper["scaled"]) == ("orders-upper", None, True)
    assert fn_upper["labels"]["com.openfaas.scale.max"] == "3" and fn_upper["labels"]["com.openfaas.scale.zero"] == "true"
    assert (fn_reverse["replicas"], fn_reverse["scaled"]) == (2, False)
    assert p["scaler"] == {"name": "orders-scaler", "steps": [{
        "function": "orders-upper", "input_topics": ["orders.in"], "group": "orders-upper", "target_lag": 500,
        "min_replicas": 1, "max_replicas": 3, "idle_seconds": 15}]}


def test_defaults_fill_what_the_spec_leaves_out():
    p = plan(SPEC, {"partitions": 8, "replication_factor": 3, "runners": 3, "scaling": {"max": 9}})
    assert {t["partitions"] for t in p["topics"]} == {8} and {t["replication_factor"] for t in p["topics"]} == {3}
    assert p["runners"][0]["replicas"] == 2 and p["runners"][1]["replicas"] == 3
    assert p["scaler"]["steps"][0]["max_replicas"] == 3  # the step's own value wins
    p = plan(with_step(scaling=False, replicas=None, runners=None))
    assert p["scaler"] is None and p["functions"][0]["replicas"] == 1
    fixed = dict(SPEC["steps"][1])
    del fixed["scaling"]
    assert plan(dict(SPEC, steps=[fixed]))["functions"][0]["replicas"] == 2  # replicas alone: not scaled


def test_explicit_topics_and_fan_in():
    spec = dict(SPEC, sources=[{"name": "a", "file": "/a", "topic": "raw-a"}, {"name": "b", "file": "/b", "topic": "raw-b"}])
    p = plan(spec)
    assert p["runners"][0]["input"] == ["raw-a", "raw-b"]
    assert p["scaler"]["steps"][0]["input_topics"] == ["raw-a", "raw-b"]


@pytest.mark.parametrize("spec, message", [
    ({"name": "Orders", "steps": []}, "DNS label"),
    ({"name": "o", "steps": []}, "has no steps"),
    (dict(SPEC, colour="blue"), "unknown keys colour"),
    (with_step(image=None), "step upper has no image"),
    (with_step(input="elsewhere"), "step upper reads topic elsewhere, which no source or earlier step writes"),
    (with_step(output="orders.in"), "topic orders.in is written by both source in and step upper"),
    (with_step(replicas=2), "both replicas and scaling"),
    (dict(SPEC, steps=[dict(SPEC["steps"][1], scaling={"max": 2})]), "both replicas and scaling"),
    (with_step(scaling={"min": 4, "max": 2}), "scaling.min of step upper is more than its scaling.max"),
    (with_step(scaling={"target_lag": 0}), "scaling.target_lag of step upper must be at least 1"),
    (with_step(runners="two"), "runners of step upper must be an integer"),
    (dict(SPEC, sinks=[{"name": "out", "topics": ["nowhere"], "file": "/x"}]), "sink out reads topic nowhere"),
    (dict(SPEC, sources=[{"name": "in"}]), "source in needs a file or a config with connector.class"),
    (dict(SPEC, steps=[SPEC["steps"][0], dict(SPEC["steps"][0], output="orders.other")]), "two steps are named upper"),
])
def test_errors_name_the_culprit_in_one_sentence(spec, message):
    with pytest.raises(WorkflowError, match=message) as info:
        plan(spec)
    assert "\n" not in str(info.value)
