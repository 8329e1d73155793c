"""The procedural math generators (``rlvr.envs.math.generators``) and the scripted solver.

Checks determinism (in-process and across fresh interpreters), family coverage, that the
difficulty grows, that the solver (which reads only the text) matches the gold answers, and
that no gold answer is equivalent to a perturbed wrong one.
"""

from __future__ import annotations

import os
import random
import re
import statistics
import subprocess
import sys

import pytest
from faker import Faker
from math_verify import parse, verify

from rlvr.agents.scripted.math import GIVE_UP, MathSolver, solve
from rlvr.envs.math.generators import (
    FAMILIES,
    FAMILY_LEVELS,
    MathProblem,
    families_at,
    generate_problem,
)
from rlvr.envs.types import Message
from rlvr.rewards.math import check_math_reply


def make(seed: int, level: int, family: str | None = None, fake_seed: int = 0) -> MathProblem:
    """A problem from a fresh rng, with a Faker in an arbitrary state."""
    fake = Faker()
    fake.seed_instance(fake_seed)
    return generate_problem(random.Random(seed), level, fake, family=family)


def equivalent(pred: str, gold: str) -> bool:
    """math-verify with its default settings, both sides wrapped in ``$...$``."""
    return bool(verify(parse(f"${gold}$"), parse(f"${pred}$")))


def solver_rate(levels: range, per_level: int) -> tuple[float, list[tuple[str, str, str | None]]]:
    """The solver's success rate over ``per_level`` problems per level, and its failures."""
    failures, total = [], 0
    for level in levels:
        for seed in range(per_level):
            problem = make(10_000 * level + seed, level)
            answer = solve(problem.problem)
            total += 1
            if answer is None or not equivalent(answer, problem.answer):
                failures.append((problem.problem, problem.answer, answer))
    return 1 - len(failures) / total, failures


# ---------------------------------------------------------------- determinism


def test_same_seed_same_problem() -> None:
    for level in range(7):
        for seed in range(15):
            first = make(seed, level, fake_seed=1)
            assert first == make(seed, level, fake_seed=2)  # Faker state does not matter
            assert isinstance(first, MathProblem) and first.family in FAMILIES


def test_same_seed_same_problem_in_a_fresh_process() -> None:
    cases = [(3, 1), (3, 3), (11, 2), (11, 5)]
    code = (
        "import random, sys\n"
        "from faker import Faker\n"
        "from rlvr.envs.math.generators import generate_problem\n"
        f"for seed, level in {cases!r}:\n"
        "    print(repr(generate_problem(random.Random(seed), level, Faker())))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "4242"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    here = [repr(make(seed, level)) for seed, level in cases]
    assert result.stdout.splitlines() == here


def test_seeds_give_different_problems() -> None:
    problems = {make(seed, 2).problem for seed in range(60)}
    assert len(problems) >= 55


# ---------------------------------------------------------------- families and levels


def test_every_family_appears_at_levels_0_to_4() -> None:
    seen = {make(seed, level).family for level in range(5) for seed in range(120)}
    assert seen == set(FAMILIES)
    assert set(families_at(0)) == {"arithmetic", "fractions"}
    assert all(FAMILY_LEVELS[f] <= level for level in range(9) for f in families_at(level))


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="difficulty"):
        make(0, -1)
    with pytest.raises(ValueError, match="unknown family"):
        make(0, 1, family="astrology")


def _digits(problem: MathProblem) -> int:
    return sum(ch.isdigit() for ch in problem.problem)


@pytest.mark.parametrize("family", FAMILIES)
def test_difficulty_grows_within_each_family(family: str) -> None:
    """Four levels above its first, a family shows more and larger numbers."""
    first = FAMILY_LEVELS[family]
    easy = statistics.mean(_digits(make(s, first, family)) for s in range(40))
    hard = statistics.mean(_digits(make(s, first + 4, family)) for s in range(40))
    assert hard > easy, (family, easy, hard)


def test_difficulty_grows_in_structure() -> None:
    """More operators in arithmetic, more unknowns in systems, at higher levels."""

    def operators(level: int) -> float:
        texts = [make(s, level, "arithmetic").problem for s in range(40)]
        return statistics.mean(len(re.findall(r" [-+] |\\times|\\div", t)) for t in texts)

    def unknowns(level: int) -> float:
        return statistics.mean(
            make(s, level, "linear_system").answer.count(",") + 1 for s in range(40)
        )

    assert operators(0) < operators(2) < operators(5)
    assert unknowns(2) == 2 < unknowns(3) < unknowns(8)


def test_answers_are_well_formed() -> None:
    for level in range(7):
        for seed in range(25):
            problem = make(seed, level)
            assert problem.answer.strip() and "\\log" not in problem.answer
            assert parse(f"${problem.answer}$"), problem
            if problem.family == "quadratic_equation" and ", " in problem.answer:
                roots = [float(parse(f"${r}$")[0]) for r in problem.answer.split(", ")]
                assert roots == sorted(roots) and len(set(roots)) == len(roots)


# ---------------------------------------------------------------- the scripted solver


def test_solver_matches_gold_at_levels_0_to_3() -> None:
    rate, failures = solver_rate(range(4), per_level=75)
    print(f"scripted solver, levels 0-3: {rate:.1%}")
    assert rate >= 0.99, failures[:5]


def test_solver_rate_at_levels_4_to_6() -> None:
    rate, failures = solver_rate(range(4, 7), per_level=20)
    print(f"scripted solver, levels 4-6: {rate:.1%}")
    assert rate >= 0.9, failures[:5]


def test_solver_agent_protocol() -> None:
    solver = MathSolver()
    assert solver.name == "scripted"
    problem = make(5, 2)
    dialogue = [Message("system", "Solve it."), Message("user", problem.problem)]
    reply = solver.act(dialogue)
    boxed = re.search(r"\\boxed\{(.*)\}$", reply)
    assert boxed is not None and equivalent(boxed.group(1), problem.answer)
    feedback = [
        Message("assistant", "\\boxed{0}"),
        Message("user", "Your answer 0 is not correct."),
    ]
    assert solver.act(dialogue + feedback) == reply


@pytest.mark.parametrize(
    "text",
    ["", "What is love?", "$$$", "Compute $x + 1$.", "What is $9^{9^{9^{9}}}$?", "é" * 30_000],
)
def test_solver_gives_up_honestly(text: str) -> None:
    assert MathSolver().act([Message("system", ""), Message("user", text)]) == GIVE_UP
    assert MathSolver().act([]) == GIVE_UP


# ---------------------------------------------------------------- answers are unique


def perturb(answer: str) -> str:
    """A wrong answer next to the gold one: its first value plus one."""
    if answer.startswith("(") and answer.endswith(")"):
        first, _, rest = answer[1:-1].partition(", ")
        return f"({first} + 1, {rest})"
    first, sep, rest = answer.partition(", ")
    return f"{first} + 1{sep}{rest}"


def test_gold_is_not_equivalent_to_a_perturbed_answer() -> None:
    for level in range(7):
        for seed in range(15):
            problem = make(500 + seed, level)
            assert equivalent(problem.answer, problem.answer), problem
            assert not equivalent(perturb(problem.answer), problem.answer), problem


def test_solver_passes_the_env_verifier() -> None:
    """The replies also pass the verifier the env uses."""
    solver = MathSolver()
    for level in range(6):
        for seed in range(8):
            problem = make(900 + seed, level)
            reply = solver.act([Message("system", ""), Message("user", problem.problem)])
            verdict = check_math_reply(reply, problem.answer, timeout=5.0)
            assert verdict.status == "correct", (problem, reply, verdict)
