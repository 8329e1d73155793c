"""benchmarks/pow3r_plateau.py: when POW3R's weights can and do differ from the human ones."""

from __future__ import annotations

import json
from pathlib import Path

import pow3r_plateau as plateau  # benchmarks/pow3r_plateau.py, on sys.path through conftest
import pytest

from rlvr.rewards.transforms import CriterionSpec

RUBRIC = {
    "facts": {"weight": 2.0, "category": "facts", "required": True, "gate": False},
    "figure": {"weight": 1.0, "category": "facts", "required": True, "gate": False},
    "length": {"weight": 1.0, "category": "length", "required": True, "gate": False},
    "integrity/prose": {"weight": 0.0, "category": "integrity", "required": True, "gate": True},
}


def rollout(facts: float, figure: float, length: float = 1.0, prose: float = 1.0) -> dict:
    return {"facts": facts, "figure": figure, "length": length, "integrity/prose": prose}


def test_can_reweight_needs_two_weighted_criteria_in_one_category():
    lone = {"a": CriterionSpec(3.0, "facts"), "b": CriterionSpec(1.0, "length")}
    assert not plateau.can_reweight(lone)
    # a zero-weight gate in the same category does not count
    gated = {**lone, "g": CriterionSpec(0.0, "facts")}
    assert not plateau.can_reweight(gated)
    assert plateau.can_reweight({**lone, "c": CriterionSpec(1.0, "facts")})


def test_group_where_only_one_facts_criterion_splits_is_reweighted():
    split = [rollout(1, 1), rollout(1, 0), rollout(1, 1), rollout(1, 0)]
    stats = plateau.group_stats(RUBRIC, split)
    assert stats.gates_passed == 4
    assert stats.has_signal and stats.reweighted
    # static reward: (2 * 1 + 1 * figure + 1 * 1) / 4
    assert stats.static_rewards == (1.0, 0.75, 1.0, 0.75)


def test_identical_or_gated_out_groups_give_pow3r_nothing():
    same = plateau.group_stats(RUBRIC, [rollout(1, 0)] * 4)
    assert not same.has_signal and not same.reweighted
    # a failed gate zeros every component, as the env does
    gated = plateau.group_stats(RUBRIC, [rollout(0, 0, 0, 0)] * 3 + [rollout(1, 1)])
    assert gated.gates_passed == 1
    # the gate moves every criterion together: equal contrasts, so the human weights again
    assert gated.has_signal and not gated.reweighted
    summary = plateau.summarize([same, gated])
    assert summary["gate_pass_rate"] == pytest.approx(5 / 8)
    assert summary["groups_with_signal"] == 0.5


def test_structure_of_the_env_rubrics():
    shares = plateau.structure([0, 1], tasks=20)
    assert shares[0] < 1.0  # level 0 has tasks with one criterion per category
    assert shares[1] == 1.0


def test_rollouts_of_the_scripted_solver_pass_every_gate(tmp_path: Path):
    out = tmp_path / "r.json"
    plateau.main(["rollouts", "scripted", "--tasks", "2", "--samples", "2", "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["gate_pass_rate"] == 1.0
    # a deterministic solver gives identical rollouts: no advantage, no reweighting
    assert result["groups_with_signal"] == 0.0 and result["groups_reweighted"] == 0.0
    assert len(result["per_group"]) == 2


def test_steps_to_the_static_plateau(tmp_path: Path):
    assert plateau.running_mean([0.0, 1.0, 2.0, 3.0], 2) == [0.0, 0.5, 1.5, 2.5]
    assert plateau.steps_to_reach([0.0, 0.2, 0.4], 0.5, 1) is None
    static = [[0.0, 0.2, 0.4, 0.6, 0.6], [0.0, 0.2, 0.4, 0.6, 0.8]]  # plateau (.6 + .7) / 2
    fast = [[0.2, 0.8, 0.8, 0.8, 0.8], [0.2, 0.6, 0.6, 0.6, 0.6]]
    summary = {"results": {v: [{"curves": {"r": c}} for c in runs]
                           for v, runs in (("static", static), ("pow3r", fast))}}  # fmt: skip
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summary))
    out = tmp_path / "p.json"
    plateau.main(["plateau", str(path), "--metric", "r", "--window", "2", "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["plateau"] == pytest.approx(0.65)
    # running means (w=2): static .0 .1 .3 .5 .65 -> step 5; pow3r .2 .45 .7 -> step 3
    assert result["steps"] == {"static": 5, "pow3r": 3}
