"""In-process fast paths of the math verifier: normalization and exact value comparison.

Everything here is pure string and :class:`fractions.Fraction` work with bounded sizes, so it
runs in microseconds and cannot hang. It decides the common cases on its own:

1. normalized exact string match (``$``, spaces, ``\\left``/``\\right``, ``\\!``, ``\\dfrac``,
   ``\\text{}`` wrappers, degrees, trailing period, ...);
2. numbers: integers, decimals, ``a/b``, ``\\frac{a}{b}``, ``-\\frac{a}{b}``, ``1{,}000``,
   ``a\\times10^{k}``, ``0.\\overline{3}``, small integer powers, with percentages and units;
3. sets and tuples of such numbers; intervals, unions of intervals and one-variable
   inequalities with such bounds, compared as sets of reals (:mod:`._math_sets`);
4. multiple-choice letters.

Whatever it cannot decide (``None``) goes to the symbolic path (math-verify in a worker process).
Decimal tolerance follows math-verify: when either side is written as a decimal, both sides
are rounded to 6 decimal places before comparing; otherwise the comparison is exact.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, TypeAlias

from rlvr.rewards._math_numbers import (
    FLOAT_ROUNDING,
    INFINITIES,
    Num,
    numbers_equal,
    parse_number,
    single_group,
    split_top_level,
)
from rlvr.rewards._math_sets import RealSet, Span, parse_real_set, real_sets_equal

MAX_FAST_CHARS = 2000
"""Normalized answers longer than this skip the list and set parsers."""

_MAX_TOWER_DIGITS = 100_000
"""Integer power towers with a larger result are refused before any evaluation."""

_UNICODE = str.maketrans(
    {
        "−": "-",
        "–": "-",
        "×": "\\times ",
        "·": "\\cdot ",
        "∞": "\\infty ",
        "π": "\\pi ",
        "°": "^\\circ",
        "≤": "\\le ",
        "≥": "\\ge ",
        "√": "\\sqrt",
        "\u00a0": " ",
    }
)
_DELIMS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_WRAPPER_RE = re.compile(r"^\\(?:boxed|fbox)\s*\{(.*)\}$", re.DOTALL)
_SPACING_RE = re.compile(
    r"\\(?:left|right|displaystyle|textstyle|bigl|bigr|Bigl|Bigr|big|Big)(?![A-Za-z])"
    r"|\\(?:quad|qquad)(?![A-Za-z])|\\[!,;: ]|~"
)
_FRAC_RE = re.compile(r"\\[dtc]frac(?![A-Za-z])")
_DEGREE_RE = re.compile(
    r"\^\s*\{?\s*\\circ\s*\}?|(?<=\d)\s*\\circ(?![A-Za-z])|\\degree(?![A-Za-z])"
)
_PERCENT_RE = re.compile(r"\s*\\?%\s*$")
_DOLLAR_RE = re.compile(r"^\\\$\s*|\\\$\s*$")
_UNIT_RE = re.compile(
    r"^(?P<body>.*?\S)\s*\\(?:text|mbox|mathrm|textrm)\s*\{\s*(?P<unit>[A-Za-z][A-Za-z ./]*?)\s*\}"
    r"(?P<pow>\s*\^\s*\{?\s*\d\s*\}?)?$",
    re.DOTALL,
)
_NOT_UNITS = frozenset({"i", "j", "e", "d"})
"""Upright letters that are math (``2\\mathrm{i}``, ``\\mathrm{e}``), not units."""
_TEXT_RE = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox|mathit)\s*\{([^{}]*)\}")
_FRAC_SHORT_RE = re.compile(r"\\frac(\d)(\d)")
_SQRT_SHORT_RE = re.compile(r"\\sqrt(\d)")
_ASSIGN_RE = re.compile(r"^([A-Za-z](?:_\{?\w+\}?)?)=([^=<>]+)$")
_CHOICE_RE = re.compile(r"^\(?([A-E])\)?$")

_BRACE_TOKEN_RE = re.compile(r"\\.|[{}]", re.DOTALL)
_TOWER_RE = re.compile(r"\d+(?:\s*\^\s*\{?\s*\d+)+")


@dataclass(frozen=True)
class Normalized:
    """An answer string reduced to its canonical spelling."""

    text: str
    """The canonical text (no spaces, no presentation commands, no unit, no ``%``)."""
    percent: bool = False
    """Whether the answer ended in a percent sign."""
    unit: str = ""
    """A trailing ``\\text{...}`` unit that was removed, lower-cased (``""`` if none)."""


@dataclass(frozen=True)
class Choice:
    """A multiple-choice letter such as ``(B)``."""

    letter: str


@dataclass(frozen=True)
class Seq:
    """A bracketed or bare comma-separated list of numbers (set, tuple or interval)."""

    kind: Literal["set", "bare", "bracket"]
    items: tuple[Num | float, ...]
    """The elements; ``math.inf``/``-math.inf`` appear only as the ends of a 2-item bracket."""
    opener: str = ""
    closer: str = ""


Value: TypeAlias = Num | Choice | Seq | RealSet
"""What the fast path can compare."""


def normalize(answer: str) -> Normalized:
    """Reduce ``answer`` to a canonical spelling; never raises on any string."""
    s = answer.translate(_UNICODE).strip()
    s = _strip_delimiters(s)
    s = _SPACING_RE.sub(" ", s)
    s = _FRAC_RE.sub(r"\\frac", s)
    s = _DEGREE_RE.sub("", s)
    s = _DOLLAR_RE.sub("", s).strip()
    percent = bool(_PERCENT_RE.search(s))
    if percent:
        s = _PERCENT_RE.sub("", s)
    unit = ""
    match = _UNIT_RE.match(s)
    if match and match["unit"].strip() not in _NOT_UNITS:
        s, unit = match["body"], re.sub(r"\s+", "", match["unit"].lower())
    for _ in range(3):
        s = _TEXT_RE.sub(r"\1", s)
    s = "".join(s.split()).rstrip(".")
    s = _FRAC_SHORT_RE.sub(r"\\frac{\1}{\2}", s)
    s = _SQRT_SHORT_RE.sub(r"\\sqrt{\1}", s)
    s = s.replace("{,}", ",").replace("\\varnothing", "\\emptyset").replace("\\{\\}", "\\emptyset")
    s = _strip_outer_braces(s)
    if s.startswith("+") and len(s) > 1:
        s = s[1:]
    return Normalized(text=s, percent=percent, unit=unit)


def _strip_delimiters(s: str) -> str:
    """Remove math delimiters and a ``\\boxed{}`` wrapper around the whole answer."""
    for _ in range(3):
        before = s
        for left, right in _DELIMS:
            if len(s) >= len(left) + len(right) and s.startswith(left) and s.endswith(right):
                s = s[len(left) : len(s) - len(right)].strip()
        match = _WRAPPER_RE.match(s)
        if match and _balanced(match[1]):
            s = match[1].strip()
        if s == before:
            break
    return s


def _balanced(s: str) -> bool:
    """Whether the unescaped braces of ``s`` are balanced."""
    depth = 0
    for token in _BRACE_TOKEN_RE.findall(s):
        if token == "{":
            depth += 1
        elif token == "}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def _strip_outer_braces(s: str) -> str:
    """``{{12}}`` -> ``12`` while one brace group spans the whole string (linear time)."""
    if not s.startswith("{"):
        return s
    closing: dict[int, int] = {}
    stack: list[int] = []
    for token in _BRACE_TOKEN_RE.finditer(s):
        if token.group() == "{":
            stack.append(token.start())
        elif token.group() == "}" and stack:
            closing[stack.pop()] = token.start()
    start, end = 0, len(s) - 1
    while start < end and s[start] == "{" and closing.get(start) == end:
        start, end = start + 1, end - 1
    return s[start : end + 1]


def units_compatible(a: str, b: str) -> bool:
    """Whether two trailing units may name the same unit (``inch``/``inches``); empty matches."""
    if not a or not b or a == b:
        return True
    return any(x + suffix == y for x, y in ((a, b), (b, a)) for suffix in ("s", "es"))


def split_assignment(text: str) -> tuple[str, str]:
    """``x=3`` -> (``x``, ``3``); anything else -> (``""``, text)."""
    match = _ASSIGN_RE.match(text)
    return (match[1], match[2]) if match else ("", text)


def _parse_items(texts: list[str], allow_infinity: bool) -> tuple[Num | float, ...] | None:
    """Parse list elements as numbers (or infinities); ``None`` if any is something else."""
    items: list[Num | float] = []
    for item in texts:
        if allow_infinity and item in INFINITIES:
            items.append(INFINITIES[item])
            continue
        num = parse_number(item)
        if num is None:
            return None
        items.append(num)
    return tuple(items)


def parse_sequence(text: str) -> Seq | None:
    """Parse ``\\{1,2\\}``, ``(1,2]``, ``(1,2,3)`` or a bare ``1,2``."""
    if text == "\\emptyset":
        return Seq("set", ())
    if text.startswith("\\{") and text.endswith("\\}") and split_top_level(text, ",") == [text]:
        items = _parse_items(split_top_level(text[2:-2], ","), allow_infinity=False)
        return Seq("set", items) if items is not None else None
    if text[:1] in "([" and text[-1:] in ")]" and single_group(text):
        inner = split_top_level(text[1:-1], ",")
        if len(inner) < 2:
            return None
        items = _parse_items(inner, allow_infinity=len(inner) == 2)
        return Seq("bracket", items, text[0], text[-1]) if items is not None else None
    bare = split_top_level(text, ",")
    if len(bare) > 1:
        items = _parse_items(bare, allow_infinity=False)
        return Seq("bare", items) if items is not None else None
    return None


def parse_value(text: str) -> Value | None:
    """The comparable value of a normalized answer, or ``None`` if the fast path can't read it."""
    if not text:
        return None
    num = parse_number(text)
    if num is not None:
        return num
    match = _CHOICE_RE.match(text)
    if match:
        return Choice(match[1])
    if len(text) > MAX_FAST_CHARS:
        return None
    return parse_sequence(text) or parse_real_set(text)


def _percent_equal(p: Num, g: Num, p_pct: bool, g_pct: bool) -> bool:
    """``p%`` matches both ``p`` and ``p/100``; two percentages compare as written."""
    if p_pct == g_pct:
        return numbers_equal(p, g)
    pct, other = (p, g) if p_pct else (g, p)
    return numbers_equal(pct, other) or numbers_equal(Num(pct.value / 100, pct.decimal), other)


def _item_equal(a: Num | float, b: Num | float) -> bool:
    """Equality of list elements (numbers, or infinities at interval ends)."""
    if isinstance(a, Num) and isinstance(b, Num):
        return numbers_equal(a, b)
    return a == b


def _as_float(item: Num | float) -> float:
    return float(item.value) if isinstance(item, Num) else item


def _proper_interval(seq: Seq) -> bool:
    """Whether a two-element bracket reads as a non-empty interval (left end < right end)."""
    lo, hi = seq.items
    return _as_float(lo) < _as_float(hi)


def _set_equal(a: Seq, b: Seq) -> bool:
    """Set equality of two lists of numbers (duplicates and order ignored)."""
    nums = [x for x in a.items + b.items if isinstance(x, Num)]
    digits = FLOAT_ROUNDING if any(x.decimal for x in nums) else None

    def key(x: Num | float) -> Fraction | float:
        if isinstance(x, Num):
            return round(x.value, digits) if digits is not None else x.value
        return x

    return {key(x) for x in a.items} == {key(x) for x in b.items}


def _bracket_equal(a: Seq, b: Seq) -> bool | None:
    """Compare tuples and intervals written with ``(`` ``[`` ``)`` ``]``."""
    if len(a.items) != len(b.items):
        return False
    same = all(_item_equal(x, y) for x, y in zip(a.items, b.items, strict=True))
    if len(a.items) >= 3:
        return same
    brackets_match = (a.opener, a.closer) == (b.opener, b.closer)
    if same and brackets_match:
        return True
    if _proper_interval(a) and _proper_interval(b):
        return False
    if brackets_match and (a.opener, a.closer) == ("(", ")"):
        return same
    return None


def _as_real_set(value: Value) -> RealSet | None:
    """A value read as a set of reals: itself, or a proper two-element bracket."""
    if isinstance(value, RealSet):
        return value
    if not (isinstance(value, Seq) and value.kind == "bracket" and len(value.items) == 2):
        return None
    if not _proper_interval(value):
        return None
    lo, hi = (x.value if isinstance(x, Num) else x for x in value.items)
    span = Span(lo, hi, value.opener == "[", value.closer == "]")
    decimal = any(isinstance(x, Num) and x.decimal for x in value.items)
    return RealSet((span,), decimal=decimal)


def compare_values(p: Value, g: Value, p_pct: bool, g_pct: bool) -> bool | None:
    """Decide equality of two fast-path values; ``None`` when it takes the symbolic path."""
    if isinstance(p, Num) and isinstance(g, Num):
        return _percent_equal(p, g, p_pct, g_pct)
    if p_pct or g_pct:
        return None
    if isinstance(p, Choice) and isinstance(g, Choice):
        return p.letter == g.letter
    if isinstance(p, RealSet) or isinstance(g, RealSet):
        p_set, g_set = _as_real_set(p), _as_real_set(g)
        return real_sets_equal(p_set, g_set) if p_set and g_set else None
    set_like = ("set", "bare")
    if isinstance(p, Seq) and isinstance(g, Num) and p.kind in set_like:
        return _set_equal(p, Seq("set", (g,)))
    if isinstance(g, Seq) and isinstance(p, Num) and g.kind in set_like:
        return _set_equal(g, Seq("set", (p,)))
    if isinstance(p, Seq) and isinstance(g, Seq):
        if p.kind in set_like and g.kind in set_like:
            return _set_equal(p, g)
        if p.kind == g.kind == "bracket":
            return _bracket_equal(p, g)
    return None


_KIND_NAMES = {Num: "numeric", Choice: "choice", Seq: "list", RealSet: "real set"}


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fast_check(pred: str, gold: str) -> tuple[bool | None, str]:
    """Decide ``pred == gold`` in-process if a fast path applies; ``(None, why)`` otherwise."""
    p, g = normalize(pred), normalize(gold)
    if not p.text:
        return False, "empty answer"
    if not units_compatible(p.unit, g.unit):
        return False, f"units differ: {_short(p.unit)} vs {_short(g.unit)}"
    if p.text == g.text and p.percent == g.percent:
        return True, f"normalized strings match: {_short(p.text)}"
    p_var, p_text = split_assignment(p.text)
    g_var, g_text = split_assignment(g.text)
    if p_var and g_var and p_var != g_var:
        return None, "different variables"
    p_val, g_val = parse_value(p_text), parse_value(g_text)
    if p_val is None or g_val is None:
        return None, "no fast path"
    result = compare_values(p_val, g_val, p.percent, g.percent)
    if result is None:
        return None, "no fast path"
    verb, outcome = ("=", "match") if result else ("!=", "mismatch")
    kind = _KIND_NAMES[type(p_val)]
    return result, f"{kind} {outcome}: {_short(p_text)} {verb} {_short(g_text)}"


def _log10_literal(digits: str) -> float:
    """``log10`` of a non-negative integer literal of any length, without converting it."""
    digits = digits.lstrip("0") or "0"
    if digits == "0":
        return -math.inf
    head = digits[:17]
    return len(digits) - len(head) + math.log10(int(head))


def huge_power(text: str) -> str | None:
    """Describe an integer power (tower) with over 100k digits in ``text``; ``None`` if none.

    Such answers (``9^{9^{9^9}}``) would tie sympy up far beyond any deadline, so they are
    refused before evaluation. Powers are read right-associatively, which can only overestimate.
    """
    for match in _TOWER_RE.finditer(text[:100_000]):
        literals = re.findall(r"\d+", match.group())
        digits = _log10_literal(literals[-1])
        for base in reversed(literals[:-1]):
            log_base = _log10_literal(base)
            if log_base <= 0:
                digits = 0.0
            elif digits > 300:
                digits = math.inf
            else:
                digits = 10.0**digits * log_base
        if digits > _MAX_TOWER_DIGITS:
            size = min(digits, 1e300)
            tower = _short("^".join(literals))
            return f"refused without evaluating: power {tower} has ~{size:.3g} digits"
    return None
