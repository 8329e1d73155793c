"""Subsets of the real line for the math verifier's fast path.

Reads intervals (``(1,2]``, ``[0,\\infty)``), unions of them (``\\cup``), membership
(``x\\in(1,2)``) and one-variable inequalities with numeric bounds (``x>2``, ``1\\le x<2``),
and compares them as sets: both sides are reduced to a canonical list of disjoint intervals,
so ``(0,1]\\cup(1,2)`` equals ``(0,2)`` and ``x\\ge2`` equals ``[2,\\infty)``. The result is
exact (decided, never ``None``) whenever both sides can be read.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from rlvr.rewards._math_numbers import (
    FLOAT_ROUNDING,
    INFINITIES,
    parse_number,
    single_group,
    split_top_level,
)

Bound = Fraction | float
"""An interval end: an exact number, or ``math.inf`` / ``-math.inf``."""

_OP = r"(<=|>=|<|>|\\leqslant|\\geqslant|\\leq|\\geq|\\le|\\ge|\\lt|\\gt)"
_OP_RE = re.compile(_OP)
_LESS = {"<": False, "\\lt": False, "<=": True, "\\le": True, "\\leq": True, "\\leqslant": True}
"""Less-than operators, mapped to whether they include the bound."""
_GREATER = {">": False, "\\gt": False, ">=": True, "\\ge": True, "\\geq": True, "\\geqslant": True}
_VAR_RE = re.compile(r"^[A-Za-z]$")
_MEMBER_RE = re.compile(r"^([A-Za-z])\\in(.+)$")


@dataclass(frozen=True)
class Span:
    """One interval of the real line."""

    lo: Bound
    hi: Bound
    lo_closed: bool
    hi_closed: bool


@dataclass(frozen=True)
class RealSet:
    """A union of intervals, as written, with the variable of an inequality (if any)."""

    spans: tuple[Span, ...]
    var: str = ""
    decimal: bool = False
    """Whether any bound was written as a decimal (then bounds compare to 6 places)."""


def _bound(text: str) -> tuple[Bound, bool] | None:
    """An interval end and whether it was a decimal; ``None`` if not a number or infinity."""
    if text in INFINITIES:
        return INFINITIES[text], False
    num = parse_number(text)
    return (num.value, num.decimal) if num is not None else None


def parse_interval(text: str) -> RealSet | None:
    """``(a,b)``, ``[a,b)``, ``(a,b]`` or ``[a,b]`` with number or infinite ends."""
    if not (text[:1] in "([" and text[-1:] in ")]" and single_group(text)):
        return None
    items = split_top_level(text[1:-1], ",")
    if len(items) != 2:
        return None
    lo, hi = _bound(items[0]), _bound(items[1])
    if lo is None or hi is None:
        return None
    span = Span(lo[0], hi[0], text[0] == "[", text[-1] == "]")
    return RealSet((span,), decimal=lo[1] or hi[1])


def parse_real_set(text: str) -> RealSet | None:
    """A union of intervals, ``x\\in ...``, or a one-variable inequality; else ``None``.

    A lone interval is not read here (the caller reads it as a pair or interval and converts
    it with :func:`parse_interval` when the other side is a set of reals).
    """
    member = _MEMBER_RE.match(text)
    if member:
        inner = parse_interval(member[2]) or parse_real_set(member[2])
        return RealSet(inner.spans, member[1], inner.decimal) if inner else None
    parts = split_top_level(text, "\\cup")
    if len(parts) > 1:
        sets = [parse_interval(part) for part in parts]
        if any(s is None for s in sets):
            return None
        spans = tuple(span for s in sets if s for span in s.spans)
        return RealSet(spans, decimal=any(s.decimal for s in sets if s))
    return _parse_inequality(text)


def _parse_inequality(text: str) -> RealSet | None:
    """``x<a``, ``a\\le x``, ``a<x\\le b``, ``b>x>a`` and the like."""
    tokens = _OP_RE.split(text)
    if len(tokens) == 3:
        left, op, right = tokens
        if _VAR_RE.match(left):
            return _one_sided(left, op, right)
        if _VAR_RE.match(right):
            return _one_sided(right, _flip(op), left)
        return None
    if len(tokens) == 5 and _VAR_RE.match(tokens[2]):
        low, op1, var, op2, high = tokens
        if op1 in _GREATER and op2 in _GREATER:
            low, op1, op2, high = high, _flip(op2), _flip(op1), low
        if op1 not in _LESS or op2 not in _LESS:
            return None
        lo, hi = _bound(low), _bound(high)
        if lo is None or hi is None:
            return None
        span = Span(lo[0], hi[0], _LESS[op1], _LESS[op2])
        return RealSet((span,), var, lo[1] or hi[1])
    return None


def _flip(op: str) -> str:
    """The operator read from the other side (``<`` <-> ``>``)."""
    table = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "\\lt": "\\gt", "\\gt": "\\lt"}
    if op in table:
        return table[op]
    return op.replace("\\le", "\\ge") if op.startswith("\\le") else op.replace("\\ge", "\\le")


def _one_sided(var: str, op: str, bound_text: str) -> RealSet | None:
    """``var op bound`` as a half-line."""
    bound = _bound(bound_text)
    if bound is None:
        return None
    value, decimal = bound
    if op in _LESS:
        span = Span(-math.inf, value, False, _LESS[op])
    else:
        span = Span(value, math.inf, _GREATER[op], False)
    return RealSet((span,), var, decimal)


def canonical(real_set: RealSet, digits: int | None) -> tuple[Span, ...]:
    """Sorted, merged, non-empty intervals (bounds rounded to ``digits`` places if given)."""
    spans = sorted(
        (_clean(span, digits) for span in real_set.spans),
        key=lambda s: (s.lo, not s.lo_closed),
    )
    merged: list[Span] = []
    for span in spans:
        if span.lo > span.hi or (span.lo == span.hi and not (span.lo_closed and span.hi_closed)):
            continue
        if merged and _touches(merged[-1], span):
            merged[-1] = _join(merged[-1], span)
        else:
            merged.append(span)
    return tuple(merged)


def _clean(span: Span, digits: int | None) -> Span:
    """Round finite bounds if asked, and open every infinite end."""

    def fix(bound: Bound) -> Bound:
        if isinstance(bound, Fraction) and digits is not None:
            return round(bound, digits)
        return bound

    lo, hi = fix(span.lo), fix(span.hi)
    return Span(lo, hi, span.lo_closed and math.isfinite(lo), span.hi_closed and math.isfinite(hi))


def _touches(a: Span, b: Span) -> bool:
    """Whether ``b`` (starting at or after ``a``) overlaps or abuts ``a`` with no gap."""
    return b.lo < a.hi or (b.lo == a.hi and (a.hi_closed or b.lo_closed))


def _join(a: Span, b: Span) -> Span:
    """The union of two touching intervals."""
    if b.hi > a.hi:
        return Span(a.lo, b.hi, a.lo_closed, b.hi_closed)
    if b.hi == a.hi:
        return Span(a.lo, a.hi, a.lo_closed, a.hi_closed or b.hi_closed)
    return a


def real_sets_equal(a: RealSet, b: RealSet) -> bool | None:
    """Set equality; ``None`` when both name a variable and the variables differ."""
    if a.var and b.var and a.var != b.var:
        return None
    digits = FLOAT_ROUNDING if a.decimal or b.decimal else None
    return canonical(a, digits) == canonical(b, digits)
