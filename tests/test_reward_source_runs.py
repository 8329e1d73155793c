"""Short training runs with the reward sources: label-free RLIF, POW3R resume, unjudged
groups dropped, turn credit against GRPO, verifier-extracted answers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import pytest
from conftest import SMALL
from test_trainer import _metrics

from rlvr.envs.spaces import UnicodeText
from rlvr.training.config import load_config

pytestmark = pytest.mark.usefixtures("tiny_cache")

ROOT = Path(__file__).resolve().parents[1]


def _small(tmp_path: Path, name: str) -> list[str]:
    return [
        f"model.tiny={json.dumps(SMALL)}",
        "sft.steps=2",
        "sft.episodes=8",
        "sft.batch_size=4",
        "eval.episodes=2",
        "eval.batch_size=2",
        "rollout.group_size=4",
        "rollout.prompts_per_step=2",
        "run.progress=false",
        f"run.output_dir={tmp_path / name}",
    ]


def test_the_label_free_scenario_trains_without_ground_truth(tmp_path: Path) -> None:
    from rlvr.training.trainer import train

    overrides = [*_small(tmp_path, "rlif"), "run.steps=2", "rollout.max_new_tokens=8"]
    config = load_config(ROOT / "scenarios" / "rlif.yaml", overrides)
    assert [c.name for c in config.algorithm.rewards] == ["transform", "self_certainty"]
    assert config.algorithm.advantage == "gdpo" and config.algorithm.regularizer.name == "kl_cov"
    summary = train(config)
    records = _metrics(tmp_path / "rlif")
    assert [r["step"] for r in records] == [1, 2]
    for record in records:
        assert record["rewards/self_certainty"] > 0.0  # a trained-for-2-steps model is not uniform
        assert 0.0 <= record["rewards/transform:cluster_vote"] <= 1.0
        assert "rewards/transform:cluster_vote/vote/top_share" in record
        assert "success" in record and "rewards/env" not in record  # logged, not trained on
    assert summary["after"]["episodes"] == 2


class RubricParityEnv(gym.Env[str, str]):
    """A two-criterion rubric a random model meets by chance: an even-length reply, and a
    reply of at most 6 characters; ``info["rubric"]`` as rubric envs give it."""

    observation_space = UnicodeText(100)
    action_space = UnicodeText(10_000)
    rubric: ClassVar[dict[str, dict[str, Any]]] = {
        "even": {"weight": 1.0, "category": "form", "required": True},
        "short": {"weight": 2.0, "category": "form", "required": False},
    }

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        super().reset(seed=seed)
        info = {"system_prompt": "", "role": "user", "rubric": self._rubric()}
        return "Reply briefly with an even number of characters.", info

    def step(self, action: str) -> Any:
        scores = {"even": float(len(action) % 2 == 0), "short": float(len(action) <= 6)}
        reward = (scores["even"] + 2 * scores["short"]) / 3
        info = {"success": scores["even"] == 1.0, "reward_components": scores}
        return "ok", reward, True, False, {**info, "rubric": self._rubric()}

    def _rubric(self) -> dict[str, dict[str, Any]]:
        return {name: dict(spec) for name, spec in self.rubric.items()}


gym.register("test/RubricParity-v0", entry_point=RubricParityEnv)


def _short_rl(env_id: str) -> list[str]:
    """Overrides for a few RL steps of 8-token replies on ``env_id``: no warm-up, no eval."""
    return [
        f"envs=[{{id: {env_id}}}]",
        "sft.steps=0",
        "eval.episodes=0",
        "rollout.max_new_tokens=8",
        "rollout.max_total_tokens=160",
    ]


def test_pow3r_run_resumes_exactly_with_its_ema(tmp_path: Path) -> None:
    from rlvr.training.checkpoint import list_checkpoints
    from rlvr.training.trainer import train

    scenario = ROOT / "scenarios" / "pow3r.yaml"
    base = [*_short_rl("test/RubricParity-v0"), "algorithm.lr=1e-3", "run.save_every=2"]
    whole = [*_small(tmp_path, "whole"), *base, "run.steps=4"]
    train(load_config(scenario, whole))
    first = [*_small(tmp_path, "split"), *base, "run.steps=2"]
    train(load_config(scenario, first))
    saved = list_checkpoints(tmp_path / "split")[-1].trainer_state()["rewards"]
    contrast = saved[0]["transform:pow3r"]["contrast"]
    assert set(contrast) == {"even", "short"} and any(v > 0 for v in contrast.values())
    train(load_config(scenario, [*first[:-1], "run.steps=4"]))

    def comparable(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        timing = ("time/", "completions_per_s")
        return [{k: v for k, v in r.items() if not k.startswith(timing)} for r in records]

    resumed, uninterrupted = _metrics(tmp_path / "split"), _metrics(tmp_path / "whole")
    assert [r["step"] for r in resumed] == [1, 2, 3, 4]
    assert comparable(resumed) == comparable(uninterrupted)
    assert "rewards/transform:pow3r/static_reward" in resumed[-1]
    assert "rewards/transform:pow3r/strict_completion" in resumed[-1]


class SecondReplyEnv(RubricParityEnv):
    """:class:`RubricParityEnv` judging the second reply: the first gets "again" and no
    ``reward_components``, so ``rollout.max_turns=1`` cuts every episode before the verdict."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        self.turn = 0
        return super().reset(seed=seed, options=options)

    def step(self, action: str) -> Any:
        self.turn += 1
        if self.turn == 1:
            return "again", 0.0, False, False, {"role": "user", "rubric": self._rubric()}
        return super().step(action)


gym.register("test/SecondReply-v0", entry_point=SecondReplyEnv)


def test_episodes_cut_before_the_verdict_are_dropped_not_scored(tmp_path: Path) -> None:
    from rlvr.training.trainer import train

    scenario = ROOT / "scenarios" / "pow3r.yaml"
    base = [*_short_rl("test/SecondReply-v0"), "run.steps=2"]
    train(load_config(scenario, [*_small(tmp_path, "full"), *base, "rollout.max_turns=2"]))
    judged = _metrics(tmp_path / "full")
    assert [r["groups_failed"] for r in judged] == [0, 0]
    assert all(math.isfinite(r["rewards/transform:pow3r"]) for r in judged)
    assert not (tmp_path / "full" / "failures.jsonl").exists()
    # one turn: every episode is cut before the env's verdict, every group is dropped
    train(load_config(scenario, [*_small(tmp_path, "cut"), *base, "rollout.max_turns=1"]))
    records = _metrics(tmp_path / "cut")
    # 2 groups per round, refilled for max_sampling_rounds (3) rounds
    assert [(r["groups_failed"], r["sampling_rounds"]) for r in records] == [(6, 3), (6, 3)]
    assert all("rewards/transform:pow3r" not in r for r in records)  # nothing was scored
    lines = (tmp_path / "cut" / "failures.jsonl").read_text(encoding="utf-8").splitlines()
    failures = [json.loads(line) for line in lines]
    assert len(failures) == 2 * 6 * 4 and {f["step"] for f in failures} == {1, 2}
    assert all(f["error"].startswith("unscored: reward source transform:pow3r") for f in failures)
    assert all(f["truncated"] and f["components"] == {} for f in failures)


def test_turn_credit_with_gamma_one_on_single_turns_is_grpo(tmp_path: Path) -> None:
    from test_trainer import _parity_run

    plain = _parity_run(tmp_path, "plain")
    turn = _parity_run(tmp_path, "turn", "algorithm.token_credit={name: turn, params: {gamma: 1}}")
    assert [r["loss"] for r in turn] == pytest.approx([r["loss"] for r in plain], rel=1e-5)


def test_envs_report_the_answer_their_verifier_extracted() -> None:
    import rlvr

    gym.register_envs(rlvr)
    env = gym.make("rlvr/Math-v0", difficulty=0)
    env.reset(seed=3)
    info = env.step("First 2/4, simplified: \\boxed{\\frac{1}{2}}")[-1]
    assert info["answer"] == "\\frac{1}{2}"  # as boxed, whether right or wrong
    env.reset(seed=3)
    assert "answer" not in env.step("\\boxed{1} or \\boxed{2}")[-1]  # hedged: no answer
    env.reset(seed=3)
    assert "answer" not in env.step("no box at all")[-1]
    multihop = gym.make("rlvr/MultiHop-v0", difficulty=0, context_chars=600)
    multihop.reset(seed=1)
    oracle = multihop.unwrapped.oracle_action()
    gold = multihop.unwrapped.task.answer
    assert multihop.step(oracle)[-1]["answer"] == gold
