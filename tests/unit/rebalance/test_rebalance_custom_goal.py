"""The custom-goal example of docs/rebalance.md, run as a user would: a module on the path, named
by its dotted path in custom_goals."""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

import pytest

from ansible_collections.streamops.day2.plugins.module_utils.rebalance.model import ModelError
from ansible_collections.streamops.day2.plugins.module_utils.rebalance.plan import Planner, plan_rebalance

from rebalance_helpers import random_actions, random_model, state_of

DOC = Path(__file__).resolve().parents[3] / "docs" / "rebalance.md"


@pytest.fixture
def goal_module(tmp_path, monkeypatch):
    """The docs' example goal written to a module `docs_example_goals` on sys.path."""
    text = DOC.read_text()
    section = text[text.index("## Writing a custom goal"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    (tmp_path / "docs_example_goals.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("docs_example_goals", None)
    yield "docs_example_goals"
    sys.modules.pop("docs_example_goals", None)


def test_example_goal_delta_matches_cost(goal_module):
    module = __import__(goal_module)
    state = state_of(random_model(3, brokers=6, partitions=30))
    goal = module.AvoidBrokersGoal(topics=["t1", "t2"], brokers=[2, 5])
    goal.bind(state)
    for action in random_actions(state, random.Random(1), 60):
        before = goal.cost()
        delta = goal.delta(action)
        state.apply(action)
        assert goal.cost() - before == pytest.approx(delta, abs=1e-12)


def test_example_goal_keeps_topics_off_brokers(goal_module):
    model = random_model(4, brokers=8, partitions=60, racks=0, topics=3)
    spec = {"class": goal_module + ".AvoidBrokersGoal", "weight": 50, "options": {"topics": ["t0"], "brokers": [1, 2]}}
    planner = Planner(model, custom_goals=[spec], seed=3)
    before = sum(1 for p in model["partitions"] if p["topic"] == "t0" for b in p["replicas"] if b in (1, 2))
    result = planner.run()
    ids = planner.model.broker_ids
    after = sum(1 for p, reps in enumerate(planner.state.replicas)
                if planner.model.topics[planner.model.p_topic[p]] == "t0" for b in reps if ids[b] in (1, 2))
    assert before > 0 and after == 0
    assert result["summary"]["goals"]["avoid_brokers"]["after"] == 0


def test_custom_goal_veto_is_a_hard_constraint(goal_module):
    module = __import__(goal_module)

    class NeverOntoBrokerOne(module.AvoidBrokersGoal):
        name = "never_onto_1"

        def allows(self, action):
            return self.state.model.broker_ids[action.dst] != 1

    model = random_model(5, brokers=5, partitions=30, racks=0, empty_brokers=0)
    for part in model["partitions"]:
        part["replicas"] = [b for b in part["replicas"] if b != 1] or [2]
        part["leader"] = part["replicas"][0]
    model["brokers"].append({"id": 9})
    result = plan_rebalance(model, custom_goals=[{"class": NeverOntoBrokerOne, "weight": 0.001,
                                                  "options": {"topics": [], "brokers": []}}])
    assert all(1 not in entry["replicas"] for entry in result["plan"]["partitions"])


@pytest.mark.parametrize("spec, culprit", [
    ({"class": "no_such_module_xyz.Goal"}, "no_such_module_xyz"),
    ({"class": "NoDots"}, "NoDots"),
    ({"class": "docs_example_goals.Missing"}, "Missing"),
    ({"class": "docs_example_goals.AvoidBrokersGoal", "options": {"wrong": 1}}, "AvoidBrokersGoal"),
    ({"class": "docs_example_goals.AvoidBrokersGoal", "weight": -1, "options": {"topics": [], "brokers": []}}, "avoid_brokers"),
    ({"klass": "x.Y"}, "custom_goals[0]"),
])
def test_bad_custom_goals_are_one_sentence(goal_module, spec, culprit):
    with pytest.raises(ModelError) as info:
        plan_rebalance(random_model(1), custom_goals=[spec])
    message = str(info.value)
    assert culprit in message and "\n" not in message and message.endswith(".")
