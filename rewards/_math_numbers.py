"""Exact numbers for the math verifier's fast path: parsing and comparison.

Numerals become :class:`fractions.Fraction` values with bounded sizes (no unbounded
exponentiation), so everything here runs in microseconds and cannot hang.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

FLOAT_ROUNDING = 6
"""Decimal places compared when either side is a decimal (math-verify's ``float_rounding``)."""

MAX_NUMBER_CHARS = 120
"""Longest numeral the fast path converts; longer ones go to the symbolic path."""

_MAX_POWER_DIGITS = 2000
"""Largest result (in decimal digits) of an integer power the fast path evaluates."""

_INT = r"\d+|\d{1,3}(?:,\d{3})+"
_DECIMAL_RE = re.compile(rf"^(?:(?:{_INT})(?:\.\d*)?|\.\d+)$")
_SLASH_RE = re.compile(r"^(\d+(?:\.\d+)?)/(\d+(?:\.\d+)?)$")
_FRAC_RE = re.compile(r"^\\frac\{([-+]?\d+(?:\.\d+)?)\}\{([-+]?\d+(?:\.\d+)?)\}$")
_SCI_RE = re.compile(r"^(\d+(?:\.\d+)?)(?:\\times|\\cdot)10\^(?:\{([-+]?\d+)\}|(\d))$")
_REPEAT_RE = re.compile(r"^(\d*)\.(\d*)\\overline\{(\d+)\}$")
_POW_RE = re.compile(r"^(\d+)\^(?:\{([-+]?\d+)\}|(\d))$")

INFINITIES = {"\\infty": math.inf, "+\\infty": math.inf, "-\\infty": -math.inf}
"""Spellings of the infinities (as interval ends), after normalization."""


@dataclass(frozen=True)
class Num:
    """An exact rational number, and whether it was written as a decimal."""

    value: Fraction
    decimal: bool


def numbers_equal(a: Num, b: Num) -> bool:
    """Exact equality, or equality after rounding to 6 places when either is a decimal."""
    if a.decimal or b.decimal:
        return round(a.value, FLOAT_ROUNDING) == round(b.value, FLOAT_ROUNDING)
    return a.value == b.value


def single_group(text: str) -> bool:
    """Whether the first bracket of ``text`` closes at its last character."""
    depth = 0
    for i, ch in enumerate(text):
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        if depth == 0:
            return i == len(text) - 1
    return False


def split_top_level(text: str, sep: str) -> list[str]:
    """Split ``text`` on ``sep`` outside any bracket, brace or ``\\{ \\}`` group."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        if text.startswith("\\{", i) or text.startswith("\\}", i):
            depth += 1 if text[i + 1] == "{" else -1
            i += 2
            continue
        ch = text[i]
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        elif depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i])
            i += len(sep)
            start = i
            continue
        i += 1
    parts.append(text[start:])
    return parts


def parse_number(text: str) -> Num | None:
    """Parse a plain numeral, fraction, scientific form or small power; ``None`` if not one."""
    if len(text) > MAX_NUMBER_CHARS:
        return None
    while text[:1] in "({" and text[-1:] in ")}" and single_group(text):
        text = text[1:-1]
    sign = 1
    if text[:1] in "+-" and len(text) > 1:
        sign, text = (-1 if text[0] == "-" else 1), text[1:]
    num = _unsigned_number(text)
    if num is None:
        return None
    return Num(num.value * sign, num.decimal)


def _unsigned_number(text: str) -> Num | None:
    """The unsigned forms of :func:`parse_number`."""
    if _DECIMAL_RE.match(text):
        return Num(Fraction(text.replace(",", "")), "." in text)
    for pattern in (_SLASH_RE, _FRAC_RE):
        match = pattern.match(text)
        if match:
            num, den = Fraction(match[1]), Fraction(match[2])
            if den == 0:
                return None
            return Num(num / den, "." in match[1] + match[2])
    match = _SCI_RE.match(text)
    if match:
        exp = int(match[2] or match[3])
        if abs(exp) > 400:
            return None
        return Num(Fraction(match[1]) * Fraction(10) ** exp, "." in match[1])
    match = _REPEAT_RE.match(text)
    if match:
        return Num(_repeating(match[1], match[2], match[3]), False)
    match = _POW_RE.match(text)
    if match:
        return _small_power(int(match[1]), int(match[2] or match[3]))
    return None


def _repeating(head: str, fixed: str, cycle: str) -> Fraction:
    """The value of ``head.fixed(cycle)(cycle)...``, e.g. ``0.1\\overline{6}`` = 1/6."""
    scale = 10 ** len(fixed)
    value = int(head or "0") + Fraction(int(fixed or "0"), scale)
    return value + Fraction(int(cycle), (10 ** len(cycle) - 1) * scale)


def _small_power(base: int, exp: int) -> Num | None:
    """``base ** exp`` when the result has at most a couple of thousand digits."""
    if base == 0 and exp < 0:
        return None
    if base > 1 and abs(exp) * math.log10(base) > _MAX_POWER_DIGITS:
        return None
    return Num(Fraction(base) ** exp, False)
