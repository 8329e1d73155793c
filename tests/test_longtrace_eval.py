"""benchmarks/longtrace_eval.py: accuracy, entity recall and each variant's training reward."""

from __future__ import annotations

import json
from pathlib import Path

import longtrace_eval as longtrace  # benchmarks/longtrace_eval.py, on sys.path through conftest
import pytest

from rlvr.agents.evaluation import EpisodeRecord

# one right answer naming both hop entities, one wrong answer naming one of two
GROUP = [{"outcome": 1.0, "rubric": 1.0}, {"outcome": 0.0, "rubric": 0.5}]


def test_variant_rewards_by_hand():
    assert longtrace.variant_rewards("positive_only", GROUP, 0.3) == [1.0, 0.0]
    # (1 - .3) * 0 + .3 * (.5 / max 1): the wrong answer is paid for its entities
    assert longtrace.variant_rewards("rubric_for_all", GROUP, 0.3) == pytest.approx([1.0, 0.15])
    assert longtrace.variant_rewards("outcome", GROUP, 0.3) == [1.0, 0.0]


def test_variant_stats_hacking_signal_and_groups_with_signal():
    flat = [{"outcome": 0.0, "rubric": 0.0}] * 2
    hacked = longtrace.variant_stats("rubric_for_all", [GROUP, flat], 0.3)
    assert hacked.reward_on_wrong == pytest.approx(0.15 / 3)
    assert hacked.groups_with_signal == 0.5
    gated = longtrace.variant_stats("positive_only", [GROUP, flat], 0.3)
    assert gated.reward_on_wrong == 0.0
    assert gated.mean_reward == pytest.approx(1.0 / 4)


def record(task: int, outcome: float, rubric: float, verification: str) -> EpisodeRecord:
    return EpisodeRecord(
        task_id=f"t{task}", task_index=task, sample=0, difficulty=0, family="", success=outcome > 0,
        reward=outcome, turns=1, truncated=False, reply_chars=10, verification=verification,
        components={"outcome": outcome, "rubric": rubric},
    )  # fmt: skip


def test_summarize_groups_records_per_task():
    records = [
        record(0, 1.0, 1.0, "answer status ok (given: 'x')"),
        record(0, 0.0, 0.5, "answer status ok (given: 'y')"),
        record(1, 0.0, 0.0, "answer status no_answer"),
        record(1, 0.0, 0.0, "answer status hedged"),
    ]
    summary = longtrace.summarize(records, 0.3)
    assert summary["accuracy"] == 0.25 and summary["entity_recall"] == pytest.approx(0.375)
    assert summary["answered"] == 0.5 and summary["names_a_hop_entity"] == 0.5
    assert summary["variants"]["positive_only"]["groups_with_signal"] == 0.5


def test_scripted_solver_end_to_end(tmp_path: Path):
    out = tmp_path / "r.json"
    argv = ["scripted", "--tasks", "2", "--samples", "2", "--context-chars", "300"]
    longtrace.main([*argv, "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["accuracy"] == 1.0 and result["entity_recall"] == 1.0
    assert result["answered"] == 1.0
    assert result["variants"]["rubric_for_all"]["reward_on_wrong"] == 0.0
