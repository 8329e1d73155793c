"""A scripted solver for ``rlvr/Math-v0`` that reads only the problem text.

:class:`MathSolver` finds the problem statement (the first user message), matches it against
one regular expression per problem template, turns the LaTeX it quotes into sympy with
``latex2sympy2_extended`` and solves it with sympy. It never sees the generator or the gold
answer. After feedback such as "Your answer ... is not correct" it simply answers again.
Text it cannot read gets the honest reply :data:`GIVE_UP`; it never raises.

A few generic fallbacks (a lone equation to solve, a lone expression to evaluate) also let
it try problems from datasets that it has no template for.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Callable, Sequence

import sympy as sp
from latex2sympy2_extended import latex2sympy

from rlvr.agents.base import Agent
from rlvr.agents.scripted.math_steps import worked_steps
from rlvr.envs.types import Message

GIVE_UP = "I cannot solve this."
"""The reply when no template matches or solving fails."""

MAX_PROBLEM_CHARS = 20_000
"""Longer statements are not read at all (no template is anywhere near this long)."""

Handler = Callable[[re.Match[str]], sp.Expr | str | None]
"""Turns a template match into the answer (an exact value, or LaTeX ready to box)."""


# ---------------------------------------------------------------- parsing helpers


def tex(text: str) -> sp.Expr:
    """A sympy expression for a LaTeX fragment (operations evaluated)."""
    expr = latex2sympy(text)
    return expr.doit() if isinstance(expr, sp.Basic) else sp.sympify(expr)


def num(text: str) -> sp.Rational:
    """An exact number for a plain decimal such as ``12``, ``-3`` or ``2.75``."""
    return sp.Rational(text)


def symbol_in(expr: sp.Expr, name: str) -> sp.Symbol:
    """The free symbol of ``expr`` called ``name`` (a fresh one if it does not occur)."""
    for candidate in expr.free_symbols:
        if isinstance(candidate, sp.Symbol) and candidate.name == name:
            return candidate
    return sp.Symbol(name)


def braced(text: str, start: int) -> tuple[str, int]:
    """The content of the ``{...}`` group opening at ``text[start]``, and the index after it."""
    if text[start] != "{":
        raise ValueError(f"expected '{{' at {start}")
    depth = 0
    for index in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return text[start + 1 : index], index + 1
    raise ValueError("unbalanced braces")


def latex_of(value: sp.Expr) -> str:
    """LaTeX of a result, writing the natural log as ``\\ln`` (``\\log`` reads as base 10)."""
    return sp.latex(value, ln_notation=True)


def real_solutions(left: sp.Expr, right: sp.Expr, var: sp.Symbol) -> str | None:
    """All real solutions of ``left = right``, ascending and comma-separated."""
    found = sp.solve(sp.Eq(left, right), var)
    real = sorted({s for s in found if s.is_real}, key=lambda s: (float(s), sp.default_sort_key(s)))
    return ", ".join(latex_of(s) for s in real) if real else None


# ---------------------------------------------------------------- algebra and calculus


def _plain(fragment: str) -> bool:
    """Whether a fragment is safe to hand to sympy: short, with no tower of powers (which
    sympy would try to evaluate exactly, e.g. ``9^{9^{9}}``)."""
    return len(fragment) < 2000 and re.search(r"\^\{[^}]*\^|\^\w+\^", fragment) is None


def _evaluate(m: re.Match[str]) -> sp.Expr | None:
    if not _plain(m.group(1)):
        return None
    value = tex(m.group(1))
    if value.free_symbols or value.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        return None
    return value


def _linear(m: re.Match[str]) -> str | None:
    left, right = tex(m.group(2)), tex(m.group(3))
    return real_solutions(left, right, symbol_in(left - right, m.group(1)))


def _equation(m: re.Match[str]) -> str | None:
    if not (_plain(m.group(1)) and _plain(m.group(2))):
        return None
    left, right = tex(m.group(1)), tex(m.group(2))
    unknowns = sorted((left - right).free_symbols, key=sp.default_sort_key)
    return real_solutions(left, right, unknowns[0]) if len(unknowns) == 1 else None


def _system(m: re.Match[str]) -> str | None:
    equations = re.findall(r"\$([^$=]+)=([^$=]+)\$", m.group(1))
    parsed = [tex(left) - tex(right) for left, right in equations]
    free = set().union(*(e.free_symbols for e in parsed))
    by_name = {s.name: s for s in free if isinstance(s, sp.Symbol)}
    names = [name.strip() for name in m.group(2).split(",")]
    unknowns = [by_name.get(name, sp.Symbol(name)) for name in names]
    solutions = sp.linsolve(parsed, unknowns)
    if len(solutions) != 1:
        return None
    (values,) = solutions
    if any(v.free_symbols for v in values):
        return None
    return "(" + ", ".join(latex_of(v) for v in values) + ")"


def _hole(m: re.Match[str]) -> sp.Expr:
    expr = tex(m.group(1))
    var = symbol_in(expr, m.group(2))
    return sp.cancel(sp.together(expr)).subs(var, tex(m.group(3)))


def _coefficient(m: re.Match[str]) -> sp.Expr | None:
    expr = sp.expand(tex(m.group(1)))
    if m.group(2) == "constant term":
        return expr.as_coeff_add(*expr.free_symbols)[0] if expr.free_symbols else expr
    var = symbol_in(expr, m.group(3))
    power = int(m.group(4)) if m.group(4) else 1
    return sp.Poly(expr, var).coeff_monomial(var**power)


def _derivative(m: re.Match[str]) -> str:
    expr = tex(m.group(2))
    return latex_of(sp.diff(expr, symbol_in(expr, m.group(1))))


def _antiderivative(m: re.Match[str]) -> str:
    expr = tex(m.group(2))
    var = symbol_in(expr, m.group(1))
    antiderivative = sp.integrate(expr, var)
    return latex_of(antiderivative - antiderivative.subs(var, 0))


def _definite(m: re.Match[str]) -> sp.Expr | None:
    text = m.group(1)
    low, after_low = braced(text, 0)
    if not text[after_low:].startswith("^"):
        return None
    high, after_high = braced(text, after_low + 1)
    body = re.fullmatch(r"\s*(.+?)\s*\\,\s*d([a-zA-Z])\s*", text[after_high:])
    if body is None:
        return None
    integrand = tex(body.group(1))
    var = symbol_in(integrand, body.group(2))
    return sp.integrate(integrand, (var, tex(low), tex(high)))


# ---------------------------------------------------------------- numbers


def _percent_change(m: re.Match[str]) -> sp.Expr:
    start, end = num(m.group(2)), num(m.group(3))
    return abs(end - start) / start * 100


def _successive(m: re.Match[str]) -> sp.Expr:
    price = num(m.group(1))
    for verb, rate in ((m.group(2), m.group(3)), (m.group(4), m.group(5))):
        sign = 1 if verb == "increased" else -1
        price *= 1 + sign * num(rate) / 100
    return price


def _lcm(m: re.Match[str]) -> sp.Expr:
    return sp.ilcm(*(int(n) for n in re.findall(r"\$(\d+)\$", m.group(1))))


# ---------------------------------------------------------------- word problems


def _ages(m: re.Match[str]) -> sp.Expr:
    gap, later, total = (num(g) for g in m.groups())
    age = sp.Symbol("age")
    return sp.solve(sp.Eq((age + later) + (age + gap + later), total), age)[0]


def _tickets(m: re.Match[str]) -> sp.Expr:
    adult, child, sold, total = (num(g) for g in m.groups())
    count = sp.Symbol("count")
    return sp.solve(sp.Eq(adult * count + child * (sold - count), total), count)[0]


def _consecutive(m: re.Match[str]) -> sp.Expr:
    count, gap, total = int(m.group(1)), 2 if m.group(2) else 1, num(m.group(3))
    first = sp.Symbol("first")
    terms = [first + gap * i for i in range(count)]
    (solution,) = sp.solve(sp.Eq(sp.Add(*terms), total), first)
    return terms[-1].subs(first, solution)


def _n(m: re.Match[str], index: int) -> sp.Rational:
    return num(m.group(index))


NUMBER = r"(-?\d+(?:\.\d+)?)"
"""A plain decimal number in the text."""

# Order matters: specific templates come before the generic fallbacks at the end.
TEMPLATES: tuple[tuple[str, Handler], ...] = (
    # calculus
    (r"Let \$f\(([a-zA-Z])\) = (.+?)\$\. Find \$f'\(\1\)\$", _derivative),
    (
        r"antiderivative \$F\(([a-zA-Z])\)\$ of \$f\(\1\) = (.+?)\$ that satisfies \$F\(0\) = 0\$",
        _antiderivative,
    ),
    (r"\$\\int_(.+?)\$", _definite),
    # algebra
    (
        r"Solve the system of equations\s*(.+?)\s*Give the solution as the ordered tuple "
        r"\$\((.+?)\)\$",
        _system,
    ),
    (r"The expression \$(.+?)\$ is undefined at \$([a-zA-Z]) = (.+?)\$", _hole),
    (
        r"Expand and simplify \$(.+?)\$\. What is the "
        r"(constant term|coefficient of \$([a-zA-Z])(?:\^\{(\d+)\})?\$)",
        _coefficient,
    ),
    (r"Solve for \$([a-zA-Z])\$: \$(.+?) = (.+?)\$", _linear),
    (r"Find all real solutions of \$(.+?) = (.+?)\$", _equation),
    # numbers
    (rf"What is \${NUMBER}\\%\$ of \${NUMBER}\$", lambda m: _n(m, 1) * _n(m, 2) / 100),
    (rf"What percent of \${NUMBER}\$ is \${NUMBER}\$", lambda m: _n(m, 2) / _n(m, 1) * 100),
    (
        rf"costs \${NUMBER}\$ dollars\. Its price is (increased|decreased) by \${NUMBER}\\%\$",
        lambda m: _n(m, 1) * (1 + (1 if m.group(2) == "increased" else -1) * _n(m, 3) / 100),
    ),
    (
        rf"After a discount of \${NUMBER}\\%\$, an item costs \${NUMBER}\$ dollars",
        lambda m: _n(m, 2) / (1 - _n(m, 1) / 100),
    ),
    (
        rf"A price of \${NUMBER}\$ dollars is first (increased|decreased) by \${NUMBER}\\%\$ "
        rf"and then (increased|decreased) by \${NUMBER}\\%\$",
        _successive,
    ),
    (rf"A population (grows|falls) from \${NUMBER}\$ to \${NUMBER}\$", _percent_change),
    (
        r"greatest common divisor of \$(\d+)\$ and \$(\d+)\$",
        lambda m: sp.igcd(*map(int, m.groups())),
    ),
    (r"least common multiple of (.+?)\.", _lcm),
    (
        r"remainder when \$(\d+)\^\{(\d+)\}\$ is divided by \$(\d+)\$",
        lambda m: sp.Integer(pow(*(int(g) for g in m.groups()))),
    ),
    (r"How many positive divisors does \$(\d+)\$ have", lambda m: sp.divisor_count(int(m[1]))),
    # word problems
    (
        rf"buys {NUMBER} .+? at {NUMBER} dollars each and pays with a {NUMBER}-dollar bill",
        lambda m: _n(m, 3) - _n(m, 1) * _n(m, 2),
    ),
    (
        rf"a distance of {NUMBER} km, at an average speed of {NUMBER} km/h",
        lambda m: _n(m, 1) / _n(m, 2),
    ),
    (
        rf"bakes {NUMBER} trays of {NUMBER} .+? each .+? sells {NUMBER} of them",
        lambda m: _n(m, 1) * _n(m, 2) - _n(m, 3),
    ),
    (
        rf"has {NUMBER} .+? and shares them equally among {NUMBER} friends",
        lambda m: _n(m, 1) / _n(m, 2),
    ),
    (
        rf"has already saved {NUMBER} dollars and saves {NUMBER} more dollars every week\. "
        rf"After how many weeks will .+? have exactly {NUMBER} dollars",
        lambda m: (_n(m, 3) - _n(m, 1)) / _n(m, 2),
    ),
    (
        rf"pays {NUMBER} dollars for {NUMBER} .+?\. At the same price per item, how much do "
        rf"{NUMBER} ",
        lambda m: _n(m, 1) / _n(m, 2) * _n(m, 3),
    ),
    (
        rf"is {NUMBER} years older than .+?\. In {NUMBER} years, the sum of their ages will be "
        rf"{NUMBER}\.",
        _ages,
    ),
    (
        rf"alone in {NUMBER} hours, and .+? alone in {NUMBER} hours",
        lambda m: 1 / (1 / _n(m, 1) + 1 / _n(m, 2)),
    ),
    (
        rf"adult tickets for {NUMBER} dollars and child tickets for {NUMBER} dollars\. "
        rf"One evening it sells {NUMBER} tickets for a total of {NUMBER} dollars",
        _tickets,
    ),
    (rf"The sum of {NUMBER} consecutive (even )?integers is {NUMBER}\.", _consecutive),
    (
        rf"mixes {NUMBER} liters of a {NUMBER}% salt solution with {NUMBER} liters of a "
        rf"{NUMBER}% salt solution",
        lambda m: (_n(m, 1) * _n(m, 2) + _n(m, 3) * _n(m, 4)) / (_n(m, 1) + _n(m, 3)),
    ),
    (
        rf"deposits {NUMBER} dollars .+? simple interest rate of {NUMBER}% per year\. "
        rf".+? in {NUMBER} years",
        lambda m: _n(m, 1) * _n(m, 2) * _n(m, 3) / 100,
    ),
    (
        rf"deposits {NUMBER} dollars .+? at {NUMBER}% interest per year, compounded annually\. "
        rf".+? after {NUMBER} years",
        lambda m: _n(m, 1) * (1 + _n(m, 2) / 100) ** int(m.group(3)),
    ),
    # generic fallbacks: arithmetic and fraction templates, then lone equations / expressions
    (r"(?:Compute|Evaluate|Calculate|Simplify) \$([^$]+)\$", _evaluate),
    (r"^[^$]*\$([^$=]+)=([^$=]+)\$[^$]*$", _equation),
    (r"^[^$]*\$([^$=]+)\$[^$]*$", _evaluate),
)

_COMPILED = tuple((re.compile(pattern, re.DOTALL), handler) for pattern, handler in TEMPLATES)


def solve(problem: str) -> str | None:
    """The answer to ``problem`` as LaTeX, or ``None`` when no template reads it."""
    if len(problem) > MAX_PROBLEM_CHARS:
        return None
    for pattern, handler in _COMPILED:
        match = pattern.search(problem)
        if match is None:
            continue
        try:
            answer = handler(match)
        except Exception:  # a template matched but sympy could not finish: try the next one
            continue
        if answer is not None:
            return answer if isinstance(answer, str) else latex_of(answer)
    return None


def _chosen(salt: bytes, problem: str, share: float) -> bool:
    """Whether ``problem`` falls in a share of problems fixed by a salted hash of its text."""
    return zlib.crc32(salt + problem.encode()) < share * 2**32


def _near(answer: str) -> str:
    """A different answer close to ``answer`` (one more, for anything not an integer: 1)."""
    try:
        return str(int(answer) + 1)
    except ValueError:
        return "1" if answer != "1" else "2"


class MathSolver(Agent):
    """Solves generated ``rlvr/Math-v0`` problems from their text, answering ``\\boxed{...}``.

    Args:
        worked: the share of integer arithmetic problems (of two operations or more) answered
            with their operations one at a time before the answer (see
            :mod:`~rlvr.agents.scripted.math_steps`) instead of the answer alone. Which
            problems get the worked reply is fixed by a hash of the problem text, so the
            transcripts are reproducible. 0 (the default) never shows steps, 1 always does.
        boxed: the share of first answers written in the env's format, ``\\boxed{...}``; the
            others state the answer in prose (``The answer is 7.``), as transcripts from a
            source with another answer convention do, and score 0 in ``rlvr/Math-v0``. Which
            problems get which is fixed by a (separate) hash of the problem text. After
            feedback the solver always boxes its answer. 1 (the default) always boxes.
        hedged: the share of first answers followed by a second, different guess
            (``The answer is \\boxed{7}, or maybe \\boxed{8}``), which ``rlvr/Math-v0``
            refuses as a hedge (reward 0, format 0). Chosen by a third hash of the problem
            text; never after feedback. 0 (the default) never hedges.
    """

    name = "scripted"

    def __init__(self, worked: float = 0.0, boxed: float = 1.0, hedged: float = 0.0):
        for name, share in (("worked", worked), ("boxed", boxed), ("hedged", hedged)):
            if not (isinstance(share, int | float) and math.isfinite(share) and 0 <= share <= 1):
                raise ValueError(f"{name} must be a share in [0, 1], got {share!r}")
        super().__init__()
        self.worked = worked
        self.boxed = boxed
        self.hedged = hedged

    def act(self, dialogue: Sequence[Message]) -> str:
        """Solve the first user message of ``dialogue``; after feedback, answer again."""
        problem = next((m.content for m in dialogue if m.role == "user"), "")
        try:
            answer = solve(problem)
        except Exception:  # never raise on odd input
            answer = None
        if answer is None:
            return GIVE_UP
        steps = self._steps(problem, answer)
        if any(m.role == "assistant" for m in dialogue):  # a retry: follow the env's format
            return f"{steps}The answer is \\boxed{{{answer}}}"
        if not _chosen(b"boxed:", problem, self.boxed):
            return f"{steps}The answer is {answer}."
        if _chosen(b"hedged:", problem, self.hedged):
            return f"{steps}The answer is \\boxed{{{answer}}}, or maybe \\boxed{{{_near(answer)}}}"
        return f"{steps}The answer is \\boxed{{{answer}}}"

    def _steps(self, problem: str, answer: str) -> str:
        """``"a + b = c. c \\times d = e. "`` when this problem gets a worked reply, else ``""``."""
        if not _chosen(b"", problem, self.worked):
            return ""
        worked = worked_steps(problem)
        if worked is None or len(worked[0]) < 2 or str(worked[1]) != answer:
            return ""
        return "".join(f"{step}. " for step in worked[0])
