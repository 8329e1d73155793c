"""The math problem record, and the sampling and formatting helpers every family shares.

Everything here is torch-free and draws randomness only from the ``random.Random`` it is
handed, so a problem is a pure function of the generator's seed and difficulty.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import sympy as sp

MAX_DECIMALS = 8
"""Exact decimals with more digits after the point than this are written as fractions."""


@dataclass(frozen=True)
class MathProblem:
    """One generated problem: what the agent sees, and the gold answer it is checked against."""

    family: str
    """The problem family (``arithmetic``, ``linear_system``, ``integral``...)."""
    problem: str
    """The statement shown to the agent: plain text with LaTeX between ``$...$``."""
    answer: str
    """The gold answer as a short LaTeX string: ``"7"``, ``"\\frac{3}{4}"``, ``"-2, 5"``
    (several solutions, ascending), ``"(3, -1)"`` (a system), ``"3 x^{2} + 2"``."""


def latex(expr: sp.Basic | int) -> str:
    """Sympy's LaTeX for ``expr``, writing the natural log ``\\ln`` (``\\log`` reads as base 10)."""
    return sp.latex(expr, ln_notation=True)


def format_number(value: sp.Rational | int) -> str:
    """An exact rational as the answer a person would write.

    Integers stay integers, rationals with a short terminating decimal expansion become
    decimals (``12.5``), everything else is a LaTeX fraction (``\\frac{12}{7}``).
    """
    q = sp.Rational(value)
    if q.q == 1:
        return str(q.p)
    den, twos, fives = int(q.q), 0, 0
    while den % 2 == 0:
        den, twos = den // 2, twos + 1
    while den % 5 == 0:
        den, fives = den // 5, fives + 1
    digits = max(twos, fives)
    if den != 1 or digits > MAX_DECIMALS:
        return latex(q)
    scaled = abs(q.p) * 10**digits // q.q
    sign = "-" if q < 0 else ""
    whole, frac = divmod(int(scaled), 10**digits)
    return f"{sign}{whole}.{frac:0{digits}d}"


def paren(text: str) -> str:
    """``text`` between ``\\left(`` and ``\\right)``."""
    return f"\\left({text}\\right)"


def signed_term(value: sp.Rational | int) -> str:
    """``+ 5`` or ``- 5``: a constant appended to an expression already written."""
    q = sp.Rational(value)
    return f"- {latex(-q)}" if q < 0 else f"+ {latex(q)}"


def nonzero(rng: random.Random, bound: int) -> int:
    """A uniform integer in ``[-bound, bound]`` other than 0."""
    value = rng.randint(1, bound)
    return value if rng.random() < 0.5 else -value


def pick(rng: random.Random, options: Sequence[str]) -> str:
    """One of ``options``, uniformly."""
    return options[rng.randrange(len(options))]


def grow(steps: int, start: int, per_step: int, cap: int) -> int:
    """A size that starts at ``start`` and grows by ``per_step`` a level, up to ``cap``."""
    return min(cap, start + per_step * max(0, steps))


def polynomial(rng: random.Random, var: sp.Symbol, degree: int, bound: int) -> sp.Expr:
    """A random polynomial of exactly ``degree``, integer coefficients in ``[-bound, bound]``."""
    coeffs = [nonzero(rng, bound)] + [rng.randint(-bound, bound) for _ in range(degree)]
    return sp.Add(*(c * var ** (degree - i) for i, c in enumerate(coeffs)))


def join_sorted(values: Sequence[sp.Expr]) -> str:
    """Comma-separated LaTeX of real values, ascending, each once."""
    unique = sorted(set(values), key=lambda v: (float(v), sp.default_sort_key(v)))
    return ", ".join(latex(v) for v in unique)


def tuple_answer(values: Sequence[sp.Expr]) -> str:
    """``(3, -1)``: an ordered tuple of values."""
    return "(" + ", ".join(latex(v) for v in values) + ")"
