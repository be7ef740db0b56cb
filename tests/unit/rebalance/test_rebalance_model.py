"""The cluster model: parsing, defaults, and one clear sentence for every kind of bad input."""

from __future__ import annotations

import copy
import json

import pytest

from ansible_collections.streamops.day2.plugins.module_utils.rebalance.model import ClusterModel, ModelError, load_model_file
from ansible_collections.streamops.day2.plugins.module_utils.rebalance.plan import plan_rebalance

BASE = {
    "brokers": [{"id": 1, "rack": "a"}, {"id": 2, "rack": "b"}, {"id": 3, "rack": "c"}, {"id": 4, "rack": "a"}],
    "partitions": [
        {"topic": "orders", "partition": 0, "replicas": [1, 2, 3], "leader": 2, "size": 100, "nw_in": 10, "nw_out": 20},
        {"topic": "orders", "partition": 1, "replicas": [2, 3, 1], "size": 100, "nw_in": 10, "nw_out": 20},
        {"topic": "audit", "partition": 0, "replicas": [3, 1], "size": 50, "nw_in": 1, "nw_out": 0},
    ],
}


def model_with(change):
    data = copy.deepcopy(BASE)
    change(data)
    return data


def test_parses_and_defaults_leader_to_first_replica():
    model = ClusterModel.from_dict(BASE)
    assert model.broker_ids == [1, 2, 3, 4]
    assert model.name(1) == "orders-1"
    assert model.leader[1] == model.broker_index[2]
    assert model.leader[0] == model.broker_index[2]
    assert model.has_racks()
    again = ClusterModel.from_dict(model.to_dict())
    assert again.replicas == model.replicas and again.leader == model.leader


def test_reads_json_and_yaml_files(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps(BASE))
    (tmp_path / "m.yml").write_text("brokers:\n  - id: 1\npartitions:\n  - {topic: t, partition: 0, replicas: [1], size: 1, nw_in: 0, nw_out: 0}\n")
    assert load_model_file(str(tmp_path / "m.json")) == BASE
    assert load_model_file(str(tmp_path / "m.yml"))["partitions"][0]["topic"] == "t"
    with pytest.raises(ModelError, match="Cannot read the cluster model file"):
        load_model_file(str(tmp_path / "absent.json"))
    (tmp_path / "bad.yml").write_text("brokers: [\n")
    with pytest.raises(ModelError, match="neither valid JSON nor valid YAML"):
        load_model_file(str(tmp_path / "bad.yml"))


BAD = [
    ("unknown broker", lambda d: d["partitions"][0].update(replicas=[1, 2, 7]), "broker 7, which is not in the cluster model"),
    ("duplicate partition", lambda d: d["partitions"].append(dict(d["partitions"][0])), "Partition orders-0 is listed twice"),
    ("duplicate replica", lambda d: d["partitions"][0].update(replicas=[1, 1, 3]), "orders-0 lists broker 1 twice"),
    ("negative load", lambda d: d["partitions"][1].update(nw_in=-5), "orders-1 nw_in must be a finite number >= 0"),
    ("missing load", lambda d: d["partitions"][2].pop("size"), "audit-0 has no 'size'"),
    ("missing nw_out", lambda d: d["partitions"][2].pop("nw_out"), "audit-0 has no 'nw_out'"),
    ("string load", lambda d: d["partitions"][2].update(size="big"), "audit-0 size must be a number"),
    ("leader not a replica", lambda d: d["partitions"][0].update(leader=4), "orders-0 has leader 4, which is not one of its replicas"),
    ("duplicate broker", lambda d: d["brokers"].append({"id": 2}), "Broker 2 is listed twice"),
    ("partial racks", lambda d: d["brokers"][3].pop("rack"), "Broker 4 has no rack"),
    ("bad capacity", lambda d: d["brokers"][0].update(capacity={"cpu": 4}), "Broker 1 capacity has unknown resource 'cpu'"),
    ("zero capacity", lambda d: d["brokers"][0].update(capacity={"disk": 0}), "Broker 1 capacity disk must be > 0"),
    ("unknown drain", lambda d: d.update(drain_brokers=[9]), "drain_brokers names broker 9"),
    ("no brokers", lambda d: d.update(brokers=[]), "non-empty list 'brokers'"),
    ("unknown key", lambda d: d.update(topics=[]), "unknown key 'topics'"),
    ("bad partition number", lambda d: d["partitions"][0].update(partition=-1), "needs a 'partition' number >= 0"),
    ("empty replicas", lambda d: d["partitions"][0].update(replicas=[]), "orders-0 needs a non-empty list 'replicas'"),
]


@pytest.mark.parametrize("what, change, culprit", BAD, ids=[b[0] for b in BAD])
def test_bad_models_are_refused_in_one_sentence(what, change, culprit):
    with pytest.raises(ModelError) as info:
        plan_rebalance(model_with(change))
    message = str(info.value)
    assert culprit in message
    assert "\n" not in message and message.endswith(".") and message.count(". ") == 0, message


def test_not_a_mapping():
    with pytest.raises(ModelError, match="must be a mapping"):
        ClusterModel.from_dict([1, 2])
