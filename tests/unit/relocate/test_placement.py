"""Where a pod template pins its pods, how the relocation changes that, and whether a region has room."""

import pytest

from ansible_collections.streamops.day2.plugins.module_utils._relocate import (
    fits, placement_patch, pod_requests, quantity, template_region)

LABEL = "topology.kubernetes.io/region"


def affinity(*terms):
    return {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}}


def test_node_selector_region_is_read_and_replaced_without_touching_other_keys():
    spec = {"nodeSelector": {LABEL: "a", "disk": "ssd"}}
    assert template_region(spec, LABEL, "node_selector") == "a"
    assert placement_patch(spec, LABEL, "node_selector", "b") == {"nodeSelector": {LABEL: "b"}}  # strategic merge keeps disk


def test_unpinned_template_has_no_region():
    assert template_region({}, LABEL, "node_selector") is None
    assert template_region({}, LABEL, "affinity") is None


def test_affinity_keeps_each_terms_other_expressions():
    zone = {"key": "zone", "operator": "In", "values": ["z1"]}
    spec = affinity({"matchExpressions": [zone, {"key": LABEL, "operator": "In", "values": ["a"]}]}, {"matchExpressions": []})
    assert template_region(spec, LABEL, "affinity") == "a"
    patch = placement_patch(spec, LABEL, "affinity", "b")
    terms = patch["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"] == [zone, {"key": LABEL, "operator": "In", "values": ["b"]}]
    assert terms[1]["matchExpressions"] == [{"key": LABEL, "operator": "In", "values": ["b"]}]
    assert template_region(patch, LABEL, "affinity") == "b"


def test_affinity_with_several_regions_is_not_a_pin():
    spec = affinity({"matchExpressions": [{"key": LABEL, "operator": "In", "values": ["a", "b"]}]})
    assert template_region(spec, LABEL, "affinity") is None


@pytest.mark.parametrize("text, value", [("500m", 0.5), ("2", 2.0), ("256Mi", 256 * 2 ** 20), ("1Gi", 2 ** 30), ("1k", 1000.0), ("1.5", 1.5)])
def test_quantities(text, value):
    assert quantity(text) == pytest.approx(value)


def test_requests_sum_over_containers():
    spec = {"containers": [{"resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}}, {"resources": {"requests": {"cpu": "250m"}}}, {}]}
    assert pod_requests(spec) == {"cpu": 0.5, "memory": 64 * 2 ** 20}


def node(name, cpu="2", memory="4Gi"):
    return {"metadata": {"name": name}, "status": {"allocatable": {"cpu": cpu, "memory": memory}}}


def test_fits_places_pods_first_fit_across_nodes():
    nodes = [node("n1", cpu="1"), node("n2", cpu="1")]
    assert fits(nodes, {}, {"cpu": 0.5}, 4)
    assert not fits(nodes, {}, {"cpu": 0.5}, 5)
    assert not fits(nodes, {"n1": {"cpu": 0.8}}, {"cpu": 0.5}, 3)
    assert fits(nodes, {"n1": {"cpu": 0.8}}, {"cpu": 0.5}, 2)


def test_a_pod_bigger_than_any_node_does_not_fit_even_when_the_sum_would():
    assert not fits([node("n1", cpu="1"), node("n2", cpu="1")], {}, {"cpu": 1.5}, 1)


def test_rotate_moves_on_from_the_current_region_and_wraps_around():
    from ansible_collections.streamops.day2.plugins.module_utils._relocate import candidate_regions
    assert candidate_regions(["a", "b", "c"], "b", True) == ["c", "a"]
    assert candidate_regions(["a", "b", "c"], "c", True) == ["a", "b"]
    assert candidate_regions(["a", "b", "c"], "b", False) == ["a", "b", "c"]
    assert candidate_regions(["a", "b"], "z", True) == ["a", "b"]
    assert candidate_regions(["a"], "a", True) == []


def test_cooldown_counts_from_the_relocated_at_annotation():
    from ansible_collections.streamops.day2.plugins.module_utils._relocate import AT, cooldown_remaining
    moved = {"metadata": {"annotations": {AT: "2026-12-01T10:00:00Z"}}}
    at = 1796119200.0  # 2026-12-01T10:00:00Z
    assert cooldown_remaining(moved, 300, now=at + 100) == 200
    assert cooldown_remaining(moved, 300, now=at + 301) == 0
    assert cooldown_remaining(moved, 0, now=at) == 0
    assert cooldown_remaining({"metadata": {}}, 300, now=at) == 0
    assert cooldown_remaining({"metadata": {"annotations": {AT: "yesterday"}}}, 300, now=at) == 0
