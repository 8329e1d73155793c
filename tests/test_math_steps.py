"""Worked arithmetic solutions (agents/scripted/math_steps.py) and the solver's `worked` share."""

from __future__ import annotations

import gymnasium as gym
import pytest

import rlvr  # noqa: F401
from rlvr.agents.scripted.math import MathSolver
from rlvr.agents.scripted.math_steps import worked_steps
from rlvr.envs.types import Message


@pytest.mark.parametrize(
    ("problem", "steps", "value"),
    [
        # parentheses first, negative intermediate results in parentheses
        ("Evaluate $\\left(5 - 9\\right) \\times 9$.", ["5 - 9 = -4", "(-4) \\times 9 = -36"], -36),
        # precedence: the product before the sum
        ("Compute $10 + 5 \\times 3$.", ["5 \\times 3 = 15", "10 + 15 = 25"], 25),
        # left to right at equal precedence; exact division
        (
            "Compute $12 \\div 4 \\times 2 - 7$.",
            ["12 \\div 4 = 3", "3 \\times 2 = 6", "6 - 7 = -1"],
            -1,
        ),
        # unary minus on a literal
        ("Compute $-3 + 4$.", ["(-3) + 4 = 1"], 1),
        ("Compute $4 + 5$.", ["4 + 5 = 9"], 9),
    ],
)
def test_worked_steps_by_hand(problem, steps, value):
    assert worked_steps(problem) == (steps, value)


@pytest.mark.parametrize(
    "problem",
    [
        "Compute $7 \\div 2$.",  # inexact division
        "Compute $2^{3} + 1$.",  # powers are not read
        "Compute $\\frac{1}{2} + 1$.",
        "Compute $\\left(1 + 2$.",  # unbalanced
        "Solve $x + 1 = 2$.",  # not an arithmetic problem
        "Compute $1 + 2$ and then some.",
    ],
)
def test_worked_steps_refuses_what_it_cannot_read(problem):
    assert worked_steps(problem) is None


def test_solver_worked_share_is_reproducible_and_always_right():
    env = gym.make("rlvr/Math-v0", families=["arithmetic"])
    replies = {0.0: [], 0.5: [], 1.0: []}
    for seed in range(60):
        observation, _ = env.reset(seed=seed, options={"difficulty": 0})
        for share, out in replies.items():
            reply = MathSolver(worked=share).act([Message("user", observation)])
            assert MathSolver(worked=share).act([Message("user", observation)]) == reply
            env.reset(seed=seed, options={"difficulty": 0})
            _, reward, *_ = env.step(reply)
            assert reward == 1.0, (observation, reply)
            out.append(reply.startswith("The answer"))
    direct = {share: sum(flags) for share, flags in replies.items()}
    assert direct[0.0] == 60  # never worked
    multi_step = 60 - direct[1.0]  # problems of two operations or more
    assert multi_step > 15
    assert direct[1.0] < direct[0.5] < direct[0.0]


def test_solver_boxed_share_writes_prose_answers_the_env_refuses():
    env = gym.make("rlvr/Math-v0", families=["arithmetic"])
    outcomes = []
    for seed in range(80):
        observation, _ = env.reset(seed=seed, options={"difficulty": 0})
        reply = MathSolver(boxed=0.4).act([Message("user", observation)])
        assert MathSolver(boxed=0.4).act([Message("user", observation)]) == reply
        _, reward, _, _, info = env.step(reply)
        boxed = "\\boxed{" in reply
        # a prose answer states the right value but scores 0 (and fails the format)
        assert reward == float(boxed), (observation, reply)
        assert info["reward_components"]["format"] == float(boxed)
        outcomes.append(boxed)
    assert 0.25 < sum(outcomes) / len(outcomes) < 0.55
    # worked steps and the answer format are chosen independently: both kinds of worked reply
    styles = set()
    for seed in range(80):
        observation, _ = env.reset(seed=seed, options={"difficulty": 0})
        reply = MathSolver(worked=1.0, boxed=0.4).act([Message("user", observation)])
        if not reply.startswith("The answer"):
            styles.add("\\boxed{" in reply)
    assert styles == {True, False}


def test_solver_hedged_share_adds_a_second_guess_the_env_refuses():
    env = gym.make("rlvr/Math-v0", families=["arithmetic"])
    hedges = 0
    for seed in range(80):
        observation, _ = env.reset(seed=seed, options={"difficulty": 0})
        reply = MathSolver(hedged=0.6).act([Message("user", observation)])
        _, reward, _, _, info = env.step(reply)
        hedged = ", or maybe \\boxed{" in reply
        assert reward == float(not hedged) == info["reward_components"]["format"], reply
        if hedged:  # the first guess is the right answer, the second one more
            first, second = (int(part.split("}")[0]) for part in reply.split("\\boxed{")[1:])
            assert second == first + 1 and info["verification"].startswith("hedged")
        hedges += hedged
    assert 0.45 < hedges / 80 < 0.75


def test_solver_boxes_its_answer_after_feedback():
    env = gym.make("rlvr/Math-v0", families=["arithmetic"], max_turns=2)
    solver = MathSolver(boxed=0.0, hedged=1.0)
    observation, _ = env.reset(seed=3, options={"difficulty": 0})
    first = solver.act([Message("user", observation)])
    feedback, reward, terminated, _, _ = env.step(first)
    assert "\\boxed" not in first and reward == 0.0 and not terminated
    assert "no \\boxed" in feedback
    dialogue = [
        Message("user", observation),
        Message("assistant", first),
        Message("user", feedback),
    ]
    second = solver.act(dialogue)
    _, reward, terminated, _, _ = env.step(second)
    assert reward == 1.0 and terminated


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan")])
@pytest.mark.parametrize("name", ["worked", "boxed", "hedged"])
def test_solver_rejects_a_bad_share(name, share):
    with pytest.raises(ValueError, match=f"{name} must be a share"):
        MathSolver(**{name: share})
