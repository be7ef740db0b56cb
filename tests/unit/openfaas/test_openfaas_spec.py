"""openfaas_function's pure logic: the user's spec normalized, compared with the live function, the body sent, the views returned."""

from decimal import Decimal

import pytest

from ansible_collections.streamops.day2.plugins.module_utils._openfaas_spec import (
    SpecError,
    deployment_body,
    describe,
    desired_spec,
    differences,
    function_view,
    initial_replicas,
    normalize_constraint,
    parse_quantity,
    predicted_status,
    replicas_reached,
)

# What the lab's provider (and faas-netes) answer for a function: server-filled label and annotation, canonical quantities.
LIVE = {
    "name": "upper", "namespace": "openfaas-fn", "image": "streamops-lab/fn:1",
    "envVars": {"FN_TRANSFORM": "upper"},
    "labels": {"faas_function": "upper", "com.openfaas.scale.min": "1"},
    "annotations": {"prometheus.io.scrape": "false", "topic": "orders"},
    "secrets": ["b", "a"], "constraints": ["topology.kubernetes.io/region=b"],
    "limits": {"memory": "128Mi", "cpu": "500m"},
    "replicas": 2, "availableReplicas": 2, "createdAt": "2026-12-01T15:53:54Z",
}


def params(**kw):
    base = dict(image=None, env_vars=None, env_process=None, labels=None, annotations=None, secrets=None, constraints=None,
                limits=None, requests=None, read_only_root_filesystem=None)
    base.update(kw)
    return base


@pytest.mark.parametrize("text, value", [
    ("500m", Decimal("0.5")), ("0.5", Decimal("0.5")), ("1", Decimal(1)), ("128Mi", Decimal(128 * 2 ** 20)),
    ("1Gi", Decimal(2 ** 30)), ("1G", Decimal(10 ** 9)), ("1e3", Decimal(1000)), (".5", Decimal("0.5")), ("100k", Decimal(100000)),
])
def test_quantities_parse_as_kubernetes_reads_them(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "lots", "1.2.3", "128MB", "1 Gi", "-"])
def test_a_value_that_is_no_quantity_is_refused(text):
    with pytest.raises(SpecError):
        parse_quantity(text)


@pytest.mark.parametrize("text, out", [
    ("topology.kubernetes.io/region=b", "topology.kubernetes.io/region=b"),
    ("topology.kubernetes.io/region == b", "topology.kubernetes.io/region=b"),
    (" disk==ssd ", "disk=ssd"),
])
def test_constraints_in_every_written_form_normalize(text, out):
    assert normalize_constraint(text) == out


@pytest.mark.parametrize("text", ["region", "=b", "a=b=c"])
def test_a_constraint_without_key_and_value_is_refused(text):
    with pytest.raises(SpecError):
        normalize_constraint(text)


def test_only_given_fields_are_in_the_desired_spec_and_values_become_strings():
    spec = desired_spec(params(image="img:1", labels={"com.openfaas.scale.zero": True, "n": 3}, secrets=["b", "a", "b"]))
    assert spec == {"image": "img:1", "labels": {"com.openfaas.scale.zero": "true", "n": "3"}, "secrets": ["a", "b"]}


def test_bad_resources_are_one_sentence_naming_the_field():
    with pytest.raises(SpecError, match=r"limits\.cpu"):
        desired_spec(params(limits={"cpu": "fast"}))
    with pytest.raises(SpecError, match="memory and cpu only"):
        desired_spec(params(requests={"gpu": "1"}))


def test_the_same_spec_as_the_live_function_differs_in_nothing():
    spec = desired_spec(params(
        image="streamops-lab/fn:1", env_vars={"FN_TRANSFORM": "upper"},
        labels={"com.openfaas.scale.min": 1}, annotations={"topic": "orders"},
        secrets=["a", "b"], constraints=["topology.kubernetes.io/region == b"], limits={"memory": "128Mi", "cpu": "0.5"}))
    assert differences(spec, LIVE) == []


def test_server_filled_labels_and_annotations_never_count_as_changes():
    assert differences(desired_spec(params(labels={"com.openfaas.scale.min": "1"}, annotations={"topic": "orders"})), LIVE) == []


def test_a_server_label_named_by_the_user_is_compared():
    assert differences(desired_spec(params(labels={"com.openfaas.scale.min": "1", "faas_function": "other"})), LIVE) == ["labels"]


def test_dicts_are_complete_sets_a_missing_key_is_a_change():
    spec = desired_spec(params(labels={}, env_vars={}))
    assert differences(spec, LIVE) == ["envVars", "labels"]
    assert describe(["envVars", "labels"], spec, LIVE) == "env_vars (remove FN_TRANSFORM), labels (remove com.openfaas.scale.min)"


def test_each_kind_of_field_change_is_seen():
    changes = dict(image="streamops-lab/fn:2", env_vars={"FN_TRANSFORM": "reverse"}, secrets=["a"],
                   constraints=["topology.kubernetes.io/region=a"], limits={"memory": "128Mi"}, requests={"cpu": "100m"},
                   read_only_root_filesystem=True, env_process="python3 x.py", annotations={"topic": "other"})
    for option, value in changes.items():
        assert len(differences(desired_spec(params(**{option: value})), LIVE)) == 1, option


def test_quantities_compare_by_value():
    assert differences(desired_spec(params(limits={"memory": "134217728", "cpu": "500m"})), LIVE) == []
    assert differences(desired_spec(params(limits={"memory": "128M", "cpu": "500m"})), LIVE) == ["limits"]


def test_update_body_keeps_what_the_user_left_out_without_server_fields():
    spec = desired_spec(params(env_vars={"FN_TRANSFORM": "reverse"}))
    body = deployment_body("upper", "openfaas-fn", spec, LIVE)
    assert body == {
        "service": "upper", "namespace": "openfaas-fn", "image": "streamops-lab/fn:1",
        "envVars": {"FN_TRANSFORM": "reverse"}, "labels": {"com.openfaas.scale.min": "1"}, "annotations": {"topic": "orders"},
        "secrets": ["a", "b"], "constraints": ["topology.kubernetes.io/region=b"],
        "limits": {"memory": "128Mi", "cpu": "500m"}, "requests": {}, "readOnlyRootFilesystem": False,
    }


def test_create_body_has_only_what_was_given():
    body = deployment_body("f", None, desired_spec(params(image="img:1")), None)
    assert body == {"service": "f", "image": "img:1", "envVars": {}, "labels": {}, "annotations": {}, "limits": {}, "requests": {},
                    "readOnlyRootFilesystem": False}


def test_an_unchanged_function_predicts_itself():
    spec = desired_spec(params(limits={"cpu": "0.5", "memory": "128Mi"}))
    after = predicted_status("upper", None, spec, LIVE, None)
    assert function_view(after) == function_view(LIVE)


def test_predicted_update_keeps_server_labels_and_sets_replicas():
    after = predicted_status("upper", "openfaas-fn", desired_spec(params(labels={"x": "1"})), LIVE, 0)
    assert after["labels"] == {"faas_function": "upper", "x": "1"}
    assert after["replicas"] == 0


def test_a_new_function_starts_with_its_minimum_scale():
    assert initial_replicas({}) == 1
    assert initial_replicas({"labels": {"com.openfaas.scale.min": "3"}}) == 3
    assert initial_replicas({"labels": {"com.openfaas.scale.min": "0"}}) == 1
    assert predicted_status("f", None, {"image": "i"}, None, None)["replicas"] == 1


def test_views_are_snake_case_with_zero_defaults_for_omitted_counts():
    view = function_view({"name": "f", "image": "i"}, invocations=True)
    assert view["replicas"] == 0 and view["available_replicas"] == 0 and view["invocation_count"] == 0
    assert "invocation_count" not in function_view(LIVE)
    assert function_view(dict(LIVE, invocationCount=41.0), invocations=True)["invocation_count"] == 41


@pytest.mark.parametrize("available, wanted, reached", [(0, 0, True), (1, 0, False), (1, 1, True), (1, 2, False), (3, 2, True)])
def test_replicas_reached(available, wanted, reached):
    assert replicas_reached({"availableReplicas": available}, wanted) is reached
