"""Algebra families: linear and quadratic equations, linear systems, simplification.

Problems are built backwards from a chosen solution so that the numbers stay readable, and
the gold answer is then computed by sympy from the very expressions the text shows.
"""

from __future__ import annotations

import random

import sympy as sp
from sympy.solvers.solvers import solve_linear

from rlvr.envs.math.problem import (
    MathProblem,
    grow,
    join_sorted,
    latex,
    nonzero,
    paren,
    pick,
    signed_term,
    tuple_answer,
)

VARIABLES = ("x", "y", "t", "n", "k", "m", "a", "b", "p", "r", "u", "w", "z")
"""Names an unknown may take (never ``e``, ``i`` or ``E``, which read as constants)."""

# ---------------------------------------------------------------- linear equations


def _linear_core(rng: random.Random, var: sp.Symbol, steps: int, bound: int) -> tuple[str, sp.Expr]:
    """The part of one side that holds the unknown: ``a x``, ``a (x + b)`` or ``(a x + b) / d``."""
    form = pick(rng, ("plain", "paren", "frac")) if steps >= 2 else "plain"
    a, b = nonzero(rng, bound), nonzero(rng, bound)
    if form == "paren":
        return latex(sp.Mul(a, var + b, evaluate=False)), a * (var + b)
    if form == "frac":
        den = rng.randint(2, 6)
        return latex(sp.Mul(sp.Rational(1, den), a * var + b, evaluate=False)), (a * var + b) / den
    return "", a * var


def _side(core_tex: str, core: sp.Expr, const: sp.Rational) -> tuple[str, sp.Expr]:
    """A side ``core + const`` as shown and as an expression."""
    if not core_tex:
        return latex(core + const), core + const
    return (f"{core_tex} {signed_term(const)}" if const != 0 else core_tex), core + const


def linear_equation(rng: random.Random, steps: int) -> MathProblem:
    """``a x + b = c``, then unknowns on both sides, then parentheses and fractions."""
    var = sp.Symbol(pick(rng, VARIABLES))
    bound = grow(steps, 9, 3, 60)
    solution = sp.Integer(rng.randint(-bound, bound))
    if steps >= 3 and rng.random() < 0.5:
        solution = sp.Rational(rng.randint(-bound, bound), rng.randint(2, 7))
    while True:
        left_tex, left = _side(*_linear_core(rng, var, steps, bound), nonzero(rng, bound))
        target = left.subs(var, solution)
        if steps == 0:
            right_tex, right = latex(target), target
        else:
            core_tex, core = _linear_core(rng, var, steps, bound)
            right_tex, right = _side(core_tex, core, target - core.subs(var, solution))
        if sp.expand(left - right).coeff(var) != 0:
            break
    _, value = solve_linear(left, right, [var])
    text = f"Solve for ${var}$: ${left_tex} = {right_tex}$."
    return MathProblem("linear_equation", text, latex(value))


# ---------------------------------------------------------------- quadratic equations


def _factored_quadratic(rng: random.Random, var: sp.Symbol, steps: int) -> sp.Expr:
    """``k (q1 x - p1) (q2 x - p2)`` expanded: rational roots, integer ones at first."""
    bound, max_den = grow(steps, 9, 3, 40), 1 if steps == 0 else grow(steps, 3, 1, 8)
    lead = 1 if steps == 0 else nonzero(rng, 2)
    factors = [rng.randint(1, max_den) * var - rng.randint(-bound, bound) for _ in range(2)]
    return sp.expand(lead * factors[0] * factors[1])


def _irrational_quadratic(rng: random.Random, var: sp.Symbol, steps: int) -> sp.Expr:
    """``a x^2 + b x + c`` with a positive discriminant that is not a perfect square."""
    bound = grow(steps, 9, 3, 40)
    while True:
        a, b, c = rng.randint(1, 3), rng.randint(-bound, bound), rng.randint(-bound, bound)
        disc = b * b - 4 * a * c
        if disc > 0 and sp.sqrt(disc).is_Rational is False:
            return a * var**2 + b * var + c


def quadratic_equation(rng: random.Random, steps: int) -> MathProblem:
    """Quadratics with integer, then rational, then (from level 4) irrational real roots."""
    var = sp.Symbol(pick(rng, ("x", "y", "t", "z")))
    if steps >= 2 and rng.random() < 0.4:
        poly = _irrational_quadratic(rng, var, steps)
    else:
        poly = _factored_quadratic(rng, var, steps)
    left, right = poly, sp.Integer(0)
    if steps >= 1 and rng.random() < 0.5:
        moved = poly.coeff(var, 0) if rng.random() < 0.5 else poly.coeff(var, 1) * var
        left, right = poly - moved, -moved
    roots = sp.roots(sp.Poly(left - right, var))
    text = (
        f"Find all real solutions of ${latex(left)} = {latex(right)}$. "
        "Give all solutions, separated by commas (a repeated solution once)."
    )
    return MathProblem("quadratic_equation", text, join_sorted(list(roots)))


# ---------------------------------------------------------------- linear systems


def linear_system(rng: random.Random, steps: int) -> MathProblem:
    """2x2 systems, then 3x3 (level 3 on), then some 4x4 (level 6 on)."""
    size = 2
    if steps >= 1 and (steps >= 2 or rng.random() < 0.6):
        size = 4 if steps >= 4 and rng.random() < 0.5 else 3
    names = ("x", "y", "z", "w")[:size]
    symbols = sp.symbols(names)
    coeff_bound, sol_bound = grow(steps, 5, 2, 30), grow(steps, 6, 3, 50)
    while True:
        if size == 2:  # no zero coefficient: a 2x2 system with one would be a substitution
            matrix = sp.Matrix(2, 2, lambda i, j: nonzero(rng, coeff_bound))
        else:
            matrix = sp.Matrix(size, size, lambda i, j: rng.randint(-coeff_bound, coeff_bound))
        if matrix.det() != 0:
            break
    solution = sp.Matrix([rng.randint(-sol_bound, sol_bound) for _ in range(size)])
    rhs = matrix * solution
    rows = [
        f"${latex(sum(matrix[i, j] * symbols[j] for j in range(size)))} = {rhs[i]}$"
        for i in range(size)
    ]
    order = "(" + ", ".join(names) + ")"
    text = (
        "Solve the system of equations\n"
        + "\n".join(rows)
        + f"\nGive the solution as the ordered tuple ${order}$."
    )
    return MathProblem("linear_system", text, tuple_answer(list(matrix.LUsolve(rhs))))


# ---------------------------------------------------------------- simplification


def _removable(rng: random.Random, var: sp.Symbol, steps: int) -> tuple[str, sp.Expr]:
    """A rational expression with a common factor: ask for its value at the removed hole.

    Asking for a value (rather than the simplified expression) keeps the answer unique under
    a symbolic checker: the unsimplified expression is *equal* to the simplified one, so an
    expression answer would let a model pass by copying the question.
    """
    bound, den = grow(steps, 6, 3, 30), 1 if steps == 0 else rng.randint(1, 3)
    hole = sp.Rational(rng.randint(-bound, bound), den)

    def others(count: int) -> sp.Poly:
        result = sp.Poly(1, var)
        for _ in range(count):
            root = rng.randint(-bound, bound)
            while root == hole:
                root = rng.randint(-bound, bound)
            result *= sp.Poly(var - root, var)
        return result

    common = sp.Poly(den * var - hole * den, var)
    num = common * nonzero(rng, 3) * others(1 + (steps >= 2))
    den_poly = common * others(1 + (steps >= 1))
    reduced_num, reduced_den = num.cancel(den_poly, include=True)
    value = reduced_num.eval(hole) / reduced_den.eval(hole)
    at = f"${var} = {latex(hole)}$"
    text = (
        f"The expression $\\frac{{{latex(num.as_expr())}}}{{{latex(den_poly.as_expr())}}}$ "
        f"is undefined at {at}. "
        f"Simplify it to lowest terms and give the value of the simplified expression at {at}."
    )
    return text, value


def _product_term(rng: random.Random, var: sp.Symbol, bound: int) -> tuple[str, sp.Poly]:
    """``(a x + b)(c x + d)`` or ``(a x + b)^2``, as shown and as a polynomial."""
    first = nonzero(rng, bound // 2 + 1) * var + nonzero(rng, bound)
    if rng.random() < 0.35:
        return f"{paren(latex(first))}^{{2}}", sp.Poly(first, var) ** 2
    second = nonzero(rng, bound // 2 + 1) * var + nonzero(rng, bound)
    shown = f"{paren(latex(first))} {paren(latex(second))}"
    return shown, sp.Poly(first, var) * sp.Poly(second, var)


def _expand(rng: random.Random, var: sp.Symbol, steps: int) -> tuple[str, sp.Expr]:
    """A sum of products to expand; ask for one coefficient (unique, unlike the expansion)."""
    bound = grow(steps, 5, 2, 20)
    shown, total = "", sp.Poly(0, var)
    for index in range(2 + min(steps, 3)):
        term_tex, term = _product_term(rng, var, bound)
        negative = rng.random() < 0.4
        sign = ("- " if negative else "") if index == 0 else (" - " if negative else " + ")
        shown += sign + term_tex
        total = total - term if negative else total + term
    power = rng.randint(0, max(total.degree(), 0))
    asked = {0: "the constant term", 1: f"the coefficient of ${var}$"}.get(
        power, f"the coefficient of ${var}^{{{power}}}$"
    )
    return f"Expand and simplify ${shown}$. What is {asked}?", total.coeff_monomial(var**power)


def simplify(rng: random.Random, steps: int) -> MathProblem:
    """Cancel a common factor of a rational expression, or expand a sum of products."""
    var = sp.Symbol(pick(rng, ("x", "y", "t", "a")))
    build = _removable if rng.random() < 0.5 else _expand
    text, value = build(rng, var, steps)
    return MathProblem("simplify", text, latex(value))
