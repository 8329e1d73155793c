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


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan")])
def test_solver_rejects_a_bad_share(share):
    with pytest.raises(ValueError, match="worked must be a share"):
        MathSolver(worked=share)
