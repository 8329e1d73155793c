"""Number families: integer arithmetic, fractions, percentages and elementary number theory.

Each builder takes ``(rng, steps)``, where ``steps`` counts the levels above the one that
introduces the family, and grows its numbers and its number of operations with it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sympy as sp

from rlvr.envs.math.problem import MathProblem, format_number, grow, latex, paren, pick

# ---------------------------------------------------------------- expression trees


@dataclass(frozen=True)
class _Node:
    """A rendered sub-expression with its exact value and operator precedence."""

    tex: str
    value: sp.Rational
    prec: int  # 1 additive, 2 multiplicative, 3 power or parenthesized atom, 4 bare atom


_PREC = {"+": 1, "-": 1, "\\times": 2, "\\div": 2}


def _leaf(value: sp.Rational) -> _Node:
    """A number; negative numbers are parenthesized so they can sit anywhere."""
    if value < 0:
        return _Node(paren(latex(value)), value, 3)
    return _Node(latex(value), value, 4)


def _power_leaf(base: int, exponent: int) -> _Node:
    base_tex = paren(str(base)) if base < 0 else str(base)
    return _Node(f"{base_tex}^{{{exponent}}}", sp.Integer(base) ** exponent, 3)


def _apply(op: str, a: sp.Rational, b: sp.Rational) -> sp.Rational:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "\\times":
        return a * b
    return a / b


def _combine(op: str, left: _Node, right: _Node, integer: bool, cap: int) -> _Node:
    """``left op right``, falling back to ``+`` when the result would be invalid or too big."""
    if op == "\\div" and (right.value == 0 or (integer and left.value % right.value != 0)):
        op = "\\times"
    if op == "\\times" and abs(left.value * right.value) > cap:
        op = "+"
    prec = _PREC[op]
    left_tex = paren(left.tex) if left.prec < prec else left.tex
    tight = right.prec < prec or (right.prec == prec and op in ("-", "\\div"))
    right_tex = paren(right.tex) if tight else right.tex
    return _Node(f"{left_tex} {op} {right_tex}", _apply(op, left.value, right.value), prec)


def _random_tree(
    rng: random.Random, leaves: list[_Node], ops: Sequence[str], integer: bool, cap: int
) -> _Node:
    """Join neighbouring leaves with random operators until one expression is left."""
    nodes = list(leaves)
    while len(nodes) > 1:
        i = rng.randrange(len(nodes) - 1)
        nodes[i : i + 2] = [_combine(pick(rng, ops), nodes[i], nodes[i + 1], integer, cap)]
    return nodes[0]


# ---------------------------------------------------------------- families


def arithmetic(rng: random.Random, steps: int) -> MathProblem:
    """Integer expressions: more operands, bigger numbers, then ``÷``, negatives, powers."""
    count = rng.randint(2, 3) + min(steps, 7)
    bound = grow(steps, 10, 10, 1000)
    ops = ["+", "-", "\\times"] + (["\\div"] if steps >= 1 else [])
    leaves = []
    for _ in range(count):
        if steps >= 3 and rng.random() < 0.2:
            leaves.append(_power_leaf(rng.randint(-5, 9) or 2, rng.randint(2, 3)))
            continue
        value = rng.randint(1, bound)
        if steps >= 2 and rng.random() < 0.3:
            value = -value
        leaves.append(_leaf(sp.Integer(value)))
    tree = _random_tree(rng, leaves, ops, integer=True, cap=bound * bound)
    verb = pick(rng, ("Compute", "Evaluate"))
    return MathProblem("arithmetic", f"{verb} ${tree.tex}$.", latex(tree.value))


def _fraction(rng: random.Random, max_den: int, negative: bool) -> sp.Rational:
    """A non-integer fraction with denominator up to ``max_den``."""
    while True:
        den = rng.randint(2, max_den)
        value = sp.Rational(rng.randint(1, 2 * den), den)
        if value.q != 1:
            return -value if negative and rng.random() < 0.3 else value


def fractions(rng: random.Random, steps: int) -> MathProblem:
    """Sums, differences, then products and quotients of fractions."""
    count = 2 + min(steps // 2, 4)
    max_den = grow(steps, 6, 3, 40)
    ops = ["+", "-"] + (["\\times"] if steps >= 1 else []) + (["\\div"] if steps >= 2 else [])
    leaves = [_leaf(_fraction(rng, max_den, negative=steps >= 2)) for _ in range(count)]
    tree = _random_tree(rng, leaves, ops, integer=False, cap=10**9)
    text = f"Compute ${tree.tex}$. Write the result as a fraction in lowest terms."
    return MathProblem("fractions", text, latex(tree.value))


# percentages ---------------------------------------------------------------


def _percent(rng: random.Random, steps: int) -> int:
    return 5 * rng.randint(1, 19) if steps == 0 else rng.randint(1, 99 + 50 * min(steps, 4))


def _percent_of(rng: random.Random, steps: int) -> tuple[str, sp.Rational]:
    p, n = _percent(rng, steps), 20 * rng.randint(1, grow(steps, 10, 20, 500))
    return f"What is ${p}\\%$ of ${n}$?", sp.Rational(p * n, 100)


def _what_percent(rng: random.Random, steps: int) -> tuple[str, sp.Rational]:
    p = _percent(rng, steps)
    whole = (20 if p % 5 == 0 else 100) * rng.randint(1, grow(steps, 10, 10, 200))
    part = sp.Rational(p * whole, 100)
    return f"What percent of ${whole}$ is ${part}$?", sp.Rational(100) * part / whole


def _price_change(rng: random.Random, steps: int) -> tuple[str, sp.Rational]:
    price, p = 20 * rng.randint(1, grow(steps, 10, 20, 500)), min(_percent(rng, steps), 95)
    up = rng.random() < 0.5
    word = "increased" if up else "decreased"
    text = (
        f"An item costs ${price}$ dollars. Its price is {word} by ${p}\\%$. "
        "What is the new price, in dollars?"
    )
    return text, price * (1 + sp.Rational(p if up else -p, 100))


def _before_discount(rng: random.Random, steps: int) -> tuple[str, sp.Rational]:
    price, p = 20 * rng.randint(1, grow(steps, 10, 20, 500)), min(_percent(rng, steps), 95)
    sale = price * (1 - sp.Rational(p, 100))
    text = (
        f"After a discount of ${p}\\%$, an item costs ${format_number(sale)}$ dollars. "
        "What was its price before the discount, in dollars?"
    )
    return text, sale / (1 - sp.Rational(p, 100))


def _successive(rng: random.Random, steps: int) -> tuple[str, sp.Rational]:
    price = sp.Integer(20 * rng.randint(1, grow(steps, 10, 20, 500)))
    changes = [(min(_percent(rng, steps), 95), rng.random() < 0.5) for _ in range(2)]
    words = ["increased" if up else "decreased" for _, up in changes]
    text = (
        f"A price of ${price}$ dollars is first {words[0]} by ${changes[0][0]}\\%$ and then "
        f"{words[1]} by ${changes[1][0]}\\%$. What is the final price, in dollars?"
    )
    for rate, up in changes:
        price *= 1 + sp.Rational(rate if up else -rate, 100)
    return text, price


def _percent_change(rng: random.Random, steps: int) -> tuple[str, sp.Rational]:
    start, p = 100 * rng.randint(1, grow(steps, 10, 20, 500)), min(_percent(rng, steps), 95)
    up = rng.random() < 0.5
    end = start * (1 + sp.Rational(p if up else -p, 100))
    verb, noun = ("grows", "increase") if up else ("falls", "decrease")
    text = (
        f"A population {verb} from ${start}$ to ${format_number(end)}$. "
        f"By what percent did it {noun}?"
    )
    return text, abs(end - start) * 100 / sp.Integer(start)


_PERCENT_TEMPLATES: tuple[tuple[int, Callable[[random.Random, int], tuple[str, sp.Rational]]], ...]
_PERCENT_TEMPLATES = (
    (0, _percent_of),
    (0, _what_percent),
    (0, _price_change),
    (1, _before_discount),
    (1, _percent_change),
    (2, _successive),
)


def percent(rng: random.Random, steps: int) -> MathProblem:
    """Percent of a number, percent ratios, price changes, reverse and successive changes."""
    allowed = [build for first, build in _PERCENT_TEMPLATES if first <= steps]
    text, answer = allowed[rng.randrange(len(allowed))](rng, steps)
    return MathProblem("percent", text, format_number(answer))


# number theory -------------------------------------------------------------


def number_theory(rng: random.Random, steps: int) -> MathProblem:
    """Greatest common divisors, least common multiples, powers mod m, divisor counts."""
    kinds = ["gcd", "lcm"] + (["power_mod"] if steps >= 1 else [])
    kinds += ["divisors"] if steps >= 2 else []
    kind = pick(rng, kinds)
    if kind == "gcd":
        g, top = rng.randint(2, grow(steps, 12, 8, 200)), grow(steps, 10, 5, 100)
        a, b = g * rng.randint(2, top), g * rng.randint(2, top)
        text, answer = f"Find the greatest common divisor of ${a}$ and ${b}$.", sp.igcd(a, b)
    elif kind == "lcm":
        top = grow(steps, 20, 10, 300)
        nums = [rng.randint(2, top) for _ in range(2 + (steps >= 1))]
        listed = ", ".join(f"${n}$" for n in nums[:-1]) + f" and ${nums[-1]}$"
        text, answer = f"Find the least common multiple of {listed}.", sp.ilcm(*nums)
    elif kind == "power_mod":
        base, exp = rng.randint(2, 9 + steps), rng.randint(10, grow(steps, 50, 50, 2000))
        mod = rng.randint(3, grow(steps, 13, 10, 1000))
        text = f"Find the remainder when ${base}^{{{exp}}}$ is divided by ${mod}$."
        answer = sp.Mod(sp.Integer(base) ** exp, mod)
    else:
        n = rng.randint(12, grow(steps, 200, 300, 100000))
        text, answer = f"How many positive divisors does ${n}$ have?", sp.divisor_count(n)
    return MathProblem("number_theory", text, latex(sp.Integer(answer)))
