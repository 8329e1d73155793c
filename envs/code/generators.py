"""Generated code tasks: a pure function of ``(rng, difficulty, fake)``.

:func:`generate_code_task` draws a family (:mod:`rlvr.envs.code.families`) among those whose
level is at most the difficulty, favouring the highest such level; larger difficulties draw
longer inputs and more hidden tests. Expected outputs come from running the family's reference
source on the host (trusted code), so the reference and the tests always agree.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from faker import Faker

from rlvr.envs.code.families import FAMILIES, Family
from rlvr.rewards.sandbox import Case

EXAMPLES_SHOWN = 2
"""Test cases shown in the prompt; the others are hidden."""


@dataclass(frozen=True)
class CodeProblem:
    """One generated task."""

    family: str
    entry_point: str
    prompt: str
    reference: str
    """The reference solution's source."""
    cases: tuple[Case, ...]


@lru_cache(maxsize=512)
def _compiled(source: str, entry_point: str) -> Any:
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<reference {entry_point}>", "exec"), namespace)  # trusted source
    return namespace[entry_point]


def _pick_family(rng: random.Random, difficulty: int) -> Family:
    top = min(difficulty, max(f.level for f in FAMILIES))
    candidates = [f for f in FAMILIES if f.level <= top]
    weights = [4.0 if f.level == top else 1.0 for f in candidates]
    return rng.choices(candidates, weights=weights)[0]


def _call_text(function: str, args: tuple[Any, ...]) -> str:
    return f"{function}({', '.join(repr(a) for a in args)})"


def render_prompt(family: Family, sentence: str, cases: tuple[Case, ...]) -> str:
    """The task statement the agent sees."""
    examples = "\n".join(
        f">>> {_call_text(family.function, c.args)}\n{c.expected!r}" for c in cases[:EXAMPLES_SHOWN]
    )
    return (
        f"Write a Python function `{family.function}({family.params})`.\n\n{sentence}\n\n"
        f"Examples:\n{examples}\n\n"
        f"Hidden tests will call `{family.function}` with other inputs, including edge cases. "
        "Reply with the complete function in a ```python code block."
    )


def generate_code_task(rng: random.Random, difficulty: int, fake: Faker) -> CodeProblem:
    """Draw one task; the same ``rng`` state and ``fake`` seed give the same task."""
    family = _pick_family(rng, difficulty)
    constants = family.constants(rng)
    sentence = family.sentence.format(**constants) if constants else family.sentence
    source = family.source.format(**constants) if constants else family.source
    reference = _compiled(source, family.function)
    cases_t = _draw_cases(family, reference, rng, fake, difficulty, constants)
    return CodeProblem(
        family=family.name,
        entry_point=family.function,
        prompt=render_prompt(family, sentence, cases_t),
        reference=source,
        cases=cases_t,
    )


MAX_DRAWS = 20
"""Input sets drawn at most, looking for one whose expected outputs are not all equal."""


def _draw_cases(
    family: Family,
    reference: Any,
    rng: random.Random,
    fake: Faker,
    difficulty: int,
    constants: dict[str, Any],
) -> tuple[Case, ...]:
    """Hidden test cases. A set whose expected outputs are all equal would let a constant
    function pass every test, so such sets are redrawn (deterministically, from ``rng``)."""
    cases: tuple[Case, ...] = ()
    for _ in range(MAX_DRAWS):
        arguments = family.inputs(rng, fake, difficulty, constants)
        cases = tuple(Case(tuple(args), reference(*[_copy(a) for a in args])) for args in arguments)
        if len({repr(case.expected) for case in cases}) > 1:
            break
    return cases


def _copy(value: Any) -> Any:
    """A deep copy of plain data (the reference must not alter the test inputs)."""
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
