"""Calculus families: derivatives (polynomials, then product, chain and quotient rules) and
integrals (definite integrals, or the antiderivative with ``F(0) = 0``, so answers are unique).
"""

from __future__ import annotations

import random

import sympy as sp

from rlvr.envs.math.problem import MathProblem, grow, latex, nonzero, paren, pick, polynomial

# ---------------------------------------------------------------- derivatives


def _trig(rng: random.Random, arg: sp.Expr) -> sp.Expr:
    return sp.sin(arg) if rng.random() < 0.5 else sp.cos(arg)


def _composite(rng: random.Random, var: sp.Symbol, steps: int) -> sp.Expr:
    """One function that needs the product or the chain rule."""
    bound = grow(steps, 5, 2, 12)
    k = nonzero(rng, 3) if rng.random() < 0.7 else rng.randint(2, 5)
    kinds = ["poly_trig", "poly_exp", "power", "trig_poly", "exp_poly", "log_poly"]
    kind = pick(rng, kinds + (["quotient", "sqrt"] if steps >= 2 else []))
    if kind == "poly_trig":
        return polynomial(rng, var, rng.randint(1, 2), bound) * _trig(rng, k * var)
    if kind == "poly_exp":
        return polynomial(rng, var, rng.randint(1, 2), bound) * sp.exp(k * var)
    if kind == "power":
        return (nonzero(rng, bound) * var + nonzero(rng, bound)) ** rng.randint(3, 5 + steps)
    if kind == "trig_poly":
        return _trig(rng, polynomial(rng, var, 2, bound))
    if kind == "exp_poly":
        return sp.exp(polynomial(rng, var, 2, bound))
    inner = rng.randint(1, bound) * var**2 + rng.randint(1, bound)
    if kind == "log_poly":
        return sp.log(inner)
    if kind == "sqrt":
        return sp.sqrt(inner)
    return polynomial(rng, var, rng.randint(1, 2), bound) / (var + nonzero(rng, bound))


def derivative(rng: random.Random, steps: int) -> MathProblem:
    """Polynomials first; then product and chain rules; then sums and quotients of those."""
    var = sp.Symbol(pick(rng, ("x", "t")))
    while True:
        if steps == 0:
            f = polynomial(rng, var, rng.randint(2, 3), 9)
        elif steps == 1:
            f = _composite(rng, var, steps)
        else:
            f = _composite(rng, var, steps) + _composite(rng, var, steps)
        result = sp.diff(f, var)
        if result != f and result != 0:
            break
    text = f"Let $f({var}) = {latex(f)}$. Find $f'({var})$."
    return MathProblem("derivative", text, latex(result))


# ---------------------------------------------------------------- integrals


def _bounds_for(rng: random.Random, kind: str, k: int, steps: int) -> tuple[sp.Expr, sp.Expr]:
    """Integration bounds that keep the value readable for each kind of integrand."""
    if kind in ("trig", "parts_trig"):
        return sp.Integer(0), sp.pi * rng.randint(1, 2) / (2 * abs(k))
    if kind == "reciprocal":
        return sp.Integer(1), sp.Integer(rng.randint(2, 4 + steps))
    if kind in ("exp", "parts_exp"):
        return sp.Integer(rng.randint(-1, 0)), sp.Integer(1)
    low = rng.randint(-3, 2)
    return sp.Integer(low), sp.Integer(low + rng.randint(1, 3 + min(steps, 5)))


def _integrand(rng: random.Random, var: sp.Symbol, kind: str, k: int, steps: int) -> sp.Expr:
    """The function to integrate for each kind."""
    c = nonzero(rng, grow(steps, 4, 2, 12))
    if kind == "trig":
        return c * _trig(rng, k * var)
    if kind == "exp":
        return c * sp.exp(k * var)
    if kind == "reciprocal":
        return c / var
    if kind == "parts_exp":
        return c * var * sp.exp(k * var)
    if kind == "parts_trig":
        return c * var * _trig(rng, k * var)
    degree = rng.randint(1, min(2 + steps, 5))
    return polynomial(rng, var, degree, grow(steps, 6, 2, 20))


def integral(rng: random.Random, steps: int) -> MathProblem:
    """Definite integrals (polynomials, then exponentials, trig, ``1/x``, integration by parts),
    and antiderivatives pinned by ``F(0) = 0``."""
    var = sp.Symbol(pick(rng, ("x", "t", "u")))
    kinds = ["poly"] + (["exp", "trig", "reciprocal"] if steps >= 1 else [])
    kinds += ["parts_exp", "parts_trig"] if steps >= 2 else []
    kind, k = pick(rng, kinds), nonzero(rng, 3)
    f = _integrand(rng, var, kind, k, steps)
    if steps >= 2 and kind != "poly" and rng.random() < 0.5:
        f += polynomial(rng, var, 1, grow(steps, 6, 2, 20))
    if kind == "poly":
        antiderivative = sp.Poly(f, var).integrate().as_expr()
    else:
        antiderivative = sp.integrate(f, var)
    if kind in ("poly", "exp", "trig") and rng.random() < 0.3:
        pinned = antiderivative - antiderivative.subs(var, 0)
        text = (
            f"Find the antiderivative $F({var})$ of $f({var}) = {latex(f)}$ "
            f"that satisfies $F(0) = 0$."
        )
        return MathProblem("integral", text, latex(pinned))
    low, high = _bounds_for(rng, kind, k, steps)
    value = antiderivative.subs(var, high) - antiderivative.subs(var, low)
    shown = f"\\int_{{{latex(low)}}}^{{{latex(high)}}} {paren(latex(f))}\\, d{var}"
    return MathProblem("integral", f"Evaluate ${shown}$.", latex(value))
