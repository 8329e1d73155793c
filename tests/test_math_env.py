"""rlvr/Math-v0: single-shot and retries, datasets, hedging, bad input, info contents."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

import rlvr
from rlvr.agents.scripted.math import MathSolver
from rlvr.envs import play

gym.register_envs(rlvr)


def make(**kwargs):
    return gym.make("rlvr/Math-v0", **kwargs)


def test_single_shot_correct_and_wrong():
    env = make()
    _, info = env.reset(seed=4)
    assert info["role"] == "user" and "boxed" in info["system_prompt"]
    gold = env.unwrapped.task.answer
    _, reward, terminated, truncated, info = env.step(f"so \\boxed{{{gold}}}")
    assert (reward, terminated, truncated, info["success"]) == (1.0, True, False, True)
    assert info["reward_components"] == {"answer": 1.0, "format": 1.0}
    assert info["reference"] == gold
    env.reset(seed=4)
    obs, reward, terminated, _, info = env.step("\\boxed{nonsense123}")
    assert reward == 0.0 and terminated and not info["success"]
    assert gold in info["feedback"] and gold in obs


def test_retries_give_feedback_without_revealing_the_answer():
    env = make(max_turns=3)
    env.reset(seed=8)
    gold = env.unwrapped.task.answer
    obs, reward, terminated, _, info = env.step("\\boxed{1}\\boxed{2}")
    assert not terminated and reward == 0.0 and "several different" in obs
    assert "2 attempts left" in obs and gold not in obs
    obs, _, terminated, _, _ = env.step("no box here")
    assert not terminated and "no \\boxed" in obs and "1 attempt left" in obs
    _, reward, terminated, _, info = env.step(f"\\boxed{{{gold}}}")
    assert terminated and reward == 1.0 and info["turn"] == 3


def test_wrong_on_the_last_attempt_terminates_not_truncates():
    env = make(max_turns=2)
    env.reset(seed=1)
    env.step("\\boxed{x}")
    _, reward, terminated, truncated, info = env.step("\\boxed{y}")
    assert (reward, terminated, truncated, info["success"]) == (0.0, True, False, False)


def test_time_limit_from_make_truncates():
    env = make(max_turns=5, max_episode_steps=2)
    env.reset(seed=1)
    env.step("\\boxed{x}")
    _, _, terminated, truncated, _ = env.step("\\boxed{y}")
    assert truncated and not terminated


def test_pathological_answer_is_a_timeout_not_a_hang():
    env = make(timeout=0.5)
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step("\\boxed{9^{9^{9^{9}}}}")
    assert terminated and reward == 0.0
    assert info["verification"].startswith("timeout")


def test_dataset(tmp_path):
    path = tmp_path / "math.jsonl"
    rows = [
        {"id": "a", "problem": "What is $1+1$?", "answer": "2"},
        {"id": "b", "problem": "What is half of $1$?", "answer": "\\frac{1}{2}", "difficulty": 2},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    env = make(dataset=str(path))
    obs, info = env.reset(options={"task_id": "b"})
    assert obs == "What is half of $1$?" and info["difficulty"] == 2
    _, reward, *_ = env.step("\\boxed{0.5}")
    assert reward == 1.0
    assert {make(dataset=str(path)).reset(seed=s)[1]["task_id"] for s in range(12)} == {"a", "b"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "problem": "p"}\n')
    with pytest.raises(ValueError, match="line 1: field 'answer'"):
        make(dataset=str(bad))


@pytest.mark.parametrize(
    "kwargs",
    [{"max_turns": 0}, {"max_turns": 1.5}, {"max_turns": "2"}, {"timeout": 0}, {"difficulty": -1}],
)
def test_bad_config_is_a_value_error(kwargs):
    with pytest.raises(ValueError):
        make(**kwargs)


def test_scripted_solver_solves_levels_0_to_3():
    env = make()
    solver = MathSolver()
    results = [play(env, solver, seed=s, options={"difficulty": s % 4}) for s in range(120)]
    assert sum(t.success for t in results) >= 119
    assert {t.difficulty for t in results} == {0, 1, 2, 3}


def test_timeout_is_readable():
    assert make(timeout=2.5).unwrapped.timeout == 2.5


def test_unreadable_replies_get_their_reason_on_retry():
    env = make(max_turns=2)
    env.reset(seed=0)
    obs, _, terminated, _, _ = env.step(None)
    assert not terminated and "must be text" in obs and not obs.startswith("Your answer None")
    env.reset(seed=0)
    obs, *_ = env.step("x" * 200_001)
    assert "characters, more than the limit" in obs


def test_observations_are_valid_utf8_even_when_quoting_lone_surrogates():
    env = make(max_turns=2)
    env.reset(seed=0)
    obs, *_ = env.step("\\boxed{\ud800}")
    obs.encode("utf-8")  # would raise on a lone surrogate
    assert "?" in obs


def test_a_verifier_failure_raises_instead_of_paying_zero(monkeypatch):
    from rlvr.envs.math import env as math_env
    from rlvr.rewards.math import MathVerdict, VerifierError

    def broken(reply, gold, *, timeout):
        return MathVerdict("error", None, (), "worker could not start")

    monkeypatch.setattr(math_env, "check_math_reply", broken)
    env = make()
    env.reset(seed=0)
    with pytest.raises(VerifierError, match="worker could not start"):
        env.step("\\boxed{1}")
