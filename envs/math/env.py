"""``rlvr/Math-v0``: math problems whose ``\\boxed{}`` answer is checked symbolically."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from faker import Faker

from rlvr.envs.core import DifficultySpec, TextEnv, parse_max_turns
from rlvr.envs.math.generators import FAMILIES, generate_problem
from rlvr.envs.types import Outcome, Reply, Task
from rlvr.rewards.math import MathVerdict, VerifierError, check_math_reply

SYSTEM_PROMPT = (
    "You are solving a math problem. Reason step by step, then give your final answer "
    "exactly once as \\boxed{...}. A reply that boxes several different answers is not "
    "accepted."
)

_RETRY_HINTS = {
    "wrong": "Your answer {answer} is not correct.",
    "no_answer": "I found no \\boxed{{...}} answer in your reply.",
    "hedged": "You boxed several different answers ({answers}); give exactly one.",
    "timeout": "Your answer {answer} could not be checked in time; give a simpler form.",
}


class MathEnv(TextEnv):
    """Math problems with a verifiable final answer.

    **Tasks.** Generated from a seed with sympy across families (arithmetic, fractions,
    percentages, linear and quadratic equations, systems, simplification, derivatives,
    integrals, word problems with Faker names); difficulty 0 is small-integer arithmetic and
    every level above adds steps, terms and larger numbers. Or read from a JSONL dataset with
    records ``{"id": str, "problem": str, "answer": str}`` (optional ``"difficulty": int``).

    **Observation.** The problem statement (first turn), then, after a wrong attempt,
    feedback naming the problem with the reply (``info["role"] == "user"``).

    **Action.** The agent's reply; its final answer is its ``\\boxed{...}``. A reply that
    boxes several answers that are not all equivalent is hedging and counts as wrong.

    **Reward.** 1.0 when the boxed answer is equivalent to the gold answer (checked by
    :func:`rlvr.rewards.math.check_math_reply`: exact and numeric fast paths, then math-verify
    with a hard time bound), else 0.0. ``reward_components``: ``answer`` (the same 0/1) and
    ``format`` (1.0 when the reply held exactly one boxed answer, or several equal ones).
    ``info["answer"]``: the boxed answer the verifier judged (absent when there was none, or
    the reply hedged), for label-free rewards that compare a group's answers.

    **Episode end.** Terminated on a correct answer, or on a wrong one when no attempt is
    left (``max_turns`` attempts, default 1 = single-shot). A reply that cannot be read
    (not text, too long) counts as a wrong attempt. A check that exceeds ``timeout`` (a
    pathological answer such as ``9^{9^{9^9}}``) is charged to the agent as a wrong answer,
    with ``verification`` starting ``timeout:``. If the verifier itself fails, ``step`` raises
    :class:`~rlvr.rewards.math.VerifierError` instead of paying 0 for a reply it could not
    score. The env never truncates by itself; ``gym.make(..., max_episode_steps=n)`` adds a
    turn limit that does.

    Args:
        difficulty: level or ``(low, high)`` range drawn per episode (default ``(0, 3)``).
        dataset: JSONL path; the episodes then come from it.
        max_turns: attempts allowed; wrong attempts before the last get feedback.
        timeout: seconds allowed for one answer check (``env.unwrapped.timeout``).
        families: draw generated problems only from these families (see
            :data:`~rlvr.envs.math.generators.FAMILIES`), at sizes that follow the level;
            ``None`` (the default) uses each level's own mix.

    **Version History.**

    * v0: first version.
    """

    task_prefix = "math"

    def __init__(
        self,
        *,
        difficulty: DifficultySpec = (0, 3),
        dataset: str | Path | None = None,
        max_turns: int = 1,
        timeout: float = 1.0,
        families: Sequence[str] | None = None,
        render_mode: str | None = None,
    ):
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        if families is not None:
            unknown = sorted(set(families) - set(FAMILIES))
            if unknown or not families or isinstance(families, str):
                raise ValueError(
                    f"families must be a non-empty list drawn from {list(FAMILIES)}, "
                    f"got {families!r}"
                )
        self.families = tuple(families) if families is not None else None
        self.max_turns = parse_max_turns(max_turns)
        self.timeout = float(timeout)
        self._fake = Faker()
        super().__init__(difficulty=difficulty, dataset=dataset, render_mode=render_mode)

    def generate_task(self, task_id: str, difficulty: int, rng: random.Random) -> Task:
        self._fake.seed_instance(rng.getrandbits(64))
        family = None
        if self.families is not None:
            family = self.families[rng.randrange(len(self.families))]
        problem = generate_problem(rng, difficulty, self._fake, family)
        return Task(
            task_id=task_id,
            prompt=problem.problem,
            answer=problem.answer,
            difficulty=difficulty,
            family=problem.family,
        )

    def task_from_record(self, record: Mapping[str, Any], line: int) -> Task:
        for key in ("id", "problem", "answer"):
            if not isinstance(record.get(key), str) or not record[key].strip():
                raise ValueError(f"line {line}: field {key!r} must be a non-empty string")
        difficulty = record.get("difficulty", 0)
        if not isinstance(difficulty, int) or isinstance(difficulty, bool) or difficulty < 0:
            raise ValueError(f"line {line}: 'difficulty' must be an int >= 0")
        return Task(
            task_id=record["id"],
            prompt=record["problem"],
            answer=record["answer"],
            difficulty=difficulty,
            family=str(record.get("family", "dataset")),
        )

    def system_prompt(self) -> str:
        return SYSTEM_PROMPT

    def begin(self, task: Task) -> str:
        return task.prompt

    def respond(self, action: str) -> Reply:
        assert self.task is not None and self.task.answer is not None
        verdict = check_math_reply(action, self.task.answer, timeout=self.timeout)
        if verdict.status == "error":
            # The verifier itself failed: not the agent's fault, so no reward of 0 is paid.
            raise VerifierError(f"could not score the reply: {verdict.detail}")
        return self._judge(verdict)

    def reject(self, reason: str) -> Reply:
        verdict = MathVerdict(status="no_answer", answer=None, candidates=(), detail=reason)
        return self._judge(verdict, hint=reason)

    def oracle_action(self) -> str | None:
        if self.task is None or self.task.answer is None:
            return None
        return f"The answer is \\boxed{{{self.task.answer}}}."

    def cheat_actions(self) -> list[str]:
        probes = super().cheat_actions()
        if self.task is not None and self.task.answer is not None:
            gold = self.task.answer
            probes += [
                " ".join(f"\\boxed{{{n}}}" for n in range(-50, 51)),
                f"\\boxed{{{gold}}} or maybe \\boxed{{{gold}+1}}",
                f"\\boxed{{0}} \\boxed{{1}} \\boxed{{{gold}}}",
                f"The answer is {gold}.",  # right value, but not boxed
                "\\boxed{" * 500,
                "\\boxed{9^{9^{9^{9}}}}",
            ]
        return probes

    def _judge(self, verdict: MathVerdict, hint: str | None = None) -> Reply:
        assert self.task is not None
        correct = verdict.correct
        attempts_left = self.max_turns - self.turn
        if not correct and attempts_left > 0:
            hint = hint or _RETRY_HINTS[verdict.status].format(
                answer=verdict.answer, answers=", ".join(verdict.candidates[:8])
            )
            left = "attempt" if attempts_left == 1 else "attempts"
            return Reply(observation=f"{hint} Try again ({attempts_left} {left} left).")
        gold = self.task.answer
        well_formed = verdict.status in ("correct", "wrong", "timeout")
        outcome = Outcome(
            success=correct,
            reward=float(correct),
            reward_components={"answer": float(correct), "format": float(well_formed)},
            verification=f"{verdict.status}: {verdict.detail}",
            feedback=self._feedback(verdict),
            reference=gold,
            answer=verdict.answer,
        )
        closing = "Correct." if correct else f"Not correct. The expected answer was {gold}."
        return Reply(observation=closing, reward=outcome.reward, terminated=True, outcome=outcome)

    def _feedback(self, verdict: MathVerdict) -> str:
        assert self.task is not None
        gold = self.task.answer
        if verdict.correct:
            return f"Correct: {verdict.answer} is equivalent to the expected answer {gold}."
        if verdict.status == "hedged":
            listed = ", ".join(verdict.candidates[:8])
            return f"Several different boxed answers ({listed}); the expected answer is {gold}."
        if verdict.status == "no_answer":
            return f"No readable \\boxed{{}} answer ({verdict.detail}); expected {gold}."
        return f"The answer {verdict.answer} is {verdict.status}; the expected answer is {gold}."
