"""Procedural math problems for ``rlvr/Math-v0``: a pure function of a seeded rng and a level.

Difficulty levels (no ceiling; each family keeps growing its numbers, terms and steps with
the levels above the one that introduces it, up to internal caps):

====  ==========================================================================
0     ``arithmetic`` (small integers), ``fractions`` (sums of two fractions)
1     + ``percent``, ``number_theory`` (gcd, lcm), ``linear_equation``, ``word_problem``
2     + ``quadratic_equation`` (integer roots), ``linear_system`` (2x2), ``simplify``,
      ``derivative`` (polynomials)
3     + ``integral`` (polynomials); 3x3 systems, rational roots, product and chain rules,
      ages / joint work / ticket word problems; ``arithmetic`` and ``fractions`` retire
4+    irrational roots, 4x4 systems, quotients, exponential / trig / ``1/x`` integrals,
      integration by parts, larger numbers and more terms everywhere
====  ==========================================================================

At each level the family is drawn uniformly from :func:`families_at`. Every gold answer is
unique under a symbolic checker: several roots are asked for as a comma-separated list,
integrals are definite or pinned by ``F(0) = 0``, and simplification asks for a value.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from faker import Faker

from rlvr.envs.math import families_algebra, families_arith, families_calculus, word_problems
from rlvr.envs.math.problem import MathProblem

__all__ = ["FAMILIES", "FAMILY_LEVELS", "MathProblem", "families_at", "generate_problem"]

FAMILY_LEVELS: dict[str, int] = {
    "arithmetic": 0,
    "fractions": 0,
    "percent": 1,
    "number_theory": 1,
    "linear_equation": 1,
    "word_problem": 1,
    "quadratic_equation": 2,
    "linear_system": 2,
    "simplify": 2,
    "derivative": 2,
    "integral": 3,
}
"""The level at which each family first appears."""

FAMILIES: tuple[str, ...] = tuple(FAMILY_LEVELS)
"""Every problem family, in the order they are introduced."""

RETIRE_AFTER = 2
"""A family stays in the mix for this many levels after the newest family's first level."""

Builder = Callable[[random.Random, int, Faker], MathProblem]


def _numeric(build: Callable[[random.Random, int], MathProblem]) -> Builder:
    """Adapt a builder that needs no Faker to the common signature."""
    return lambda rng, steps, fake: build(rng, steps)


_BUILDERS: dict[str, Builder] = {
    "arithmetic": _numeric(families_arith.arithmetic),
    "fractions": _numeric(families_arith.fractions),
    "percent": _numeric(families_arith.percent),
    "number_theory": _numeric(families_arith.number_theory),
    "linear_equation": _numeric(families_algebra.linear_equation),
    "word_problem": word_problems.word_problem,
    "quadratic_equation": _numeric(families_algebra.quadratic_equation),
    "linear_system": _numeric(families_algebra.linear_system),
    "simplify": _numeric(families_algebra.simplify),
    "derivative": _numeric(families_calculus.derivative),
    "integral": _numeric(families_calculus.integral),
}


def families_at(difficulty: int) -> tuple[str, ...]:
    """The families drawn from at ``difficulty``: those introduced at most ``RETIRE_AFTER``
    levels before it (counting from the last level that introduces a family)."""
    if difficulty < 0:
        raise ValueError(f"difficulty must be >= 0, got {difficulty}")
    newest = min(difficulty, max(FAMILY_LEVELS.values()))
    return tuple(f for f, lvl in FAMILY_LEVELS.items() if newest - RETIRE_AFTER <= lvl <= newest)


def generate_problem(
    rng: random.Random, difficulty: int, fake: Faker, family: str | None = None
) -> MathProblem:
    """One problem at ``difficulty``, a pure function of the state of ``rng``.

    Args:
        rng: a seeded ``random.Random``; the only source of randomness.
        difficulty: level 0 (easiest) and up, with no ceiling.
        fake: a per-env ``Faker`` for names, cities and items in word problems; it is
            re-seeded from ``rng`` before use, so the problem does not depend on its state.
        family: draw from this family instead of the level's mix (it may lie below or above
            the level's families; sizes still follow ``difficulty``).

    Raises:
        ValueError: for a negative difficulty or an unknown family.
    """
    allowed = families_at(difficulty)
    if family is None:
        family = allowed[rng.randrange(len(allowed))]
    elif family not in _BUILDERS:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    steps = max(0, difficulty - FAMILY_LEVELS[family])
    return _BUILDERS[family](rng, steps, fake)
