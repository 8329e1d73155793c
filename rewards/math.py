"""Math answer verification: is the agent's ``\\boxed{...}`` answer equivalent to the gold one?

Pipeline of :func:`answers_equivalent` (cheapest first):

1. a verdict cache (LRU) keyed by the two strings;
2. in-process fast paths (:mod:`rlvr.rewards._math_fast`): normalized exact string match,
   exact rational/decimal numbers (with percentages and units), sets and tuples of numbers,
   intervals, unions of intervals and one-variable inequalities compared as sets of reals,
   multiple-choice letters;
3. a pre-screen that refuses integer power towers too large to evaluate (``9^{9^{9^9}}``);
4. math-verify (``parse`` + ``verify``) in a persistent worker process
   (:mod:`rlvr.rewards._math_symbolic`) that is killed and replaced when a check overruns its
   deadline, so every check ends in time in any thread.

:func:`check_math_reply` applies it to a whole reply: the final answer is the ``\\boxed{}``
(or ``\\fbox{}``) content; no box means ``no_answer``; several boxes that are not all
equivalent mean ``hedged`` (not correct), even if one of them is right.

Decisions (see docs/math_verifier.md): a percentage ``p\\%`` matches both ``p`` and ``p/100``;
decimals match after rounding both sides to 6 places (math-verify's ``float_rounding``); a
trailing ``\\text{unit}`` is ignored unless both sides name different units; ``x=3`` matches
``3``. A boxed answer longer than ``max(2000, 20 * len(gold))`` characters is judged wrong
without a symbolic check.

``warm_up()`` starts the worker ahead of the first symbolic check (about 0.25 s);
``clear_caches()`` empties the caches (for benchmarks that time cold checks).
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from rlvr.rewards._math_fast import Normalized, fast_check, huge_power, normalize
from rlvr.rewards._math_symbolic import WORKER, VerifierError

VerdictStatus = Literal["correct", "wrong", "no_answer", "hedged", "timeout", "error"]

MAX_CANDIDATES = 8
"""More distinct boxed answers than this is hedging, without checking them."""

MAX_ANSWER_CHARS = 2000
"""Boxed answers longer than ``max(MAX_ANSWER_CHARS, 20 * len(gold))`` are judged wrong."""

_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])(\s*)")
_BRACE_TOKEN_RE = re.compile(r"\\.|[{}]", re.DOTALL)
_BARE_TOKEN_RE = re.compile(r"[^\s${}\\]+")


@dataclass(frozen=True)
class MathVerdict:
    """The outcome of checking one reply against one gold answer."""

    status: VerdictStatus
    """``correct``, ``wrong``, ``no_answer``, ``hedged``, ``timeout`` or ``error``."""
    answer: str | None
    """The single boxed answer that was judged (``None`` if there was none, or hedging)."""
    candidates: tuple[str, ...]
    """Every ``\\boxed{...}`` content found in the reply, in order."""
    detail: str
    """One line: what was checked and what was found."""

    @property
    def correct(self) -> bool:
        """Whether the reply earns the reward."""
        return self.status == "correct"


class _LRU:
    """A small thread-safe LRU map for decided verdicts."""

    def __init__(self, maxsize: int) -> None:
        self._data: OrderedDict[tuple[str, str], tuple[bool, str]] = OrderedDict()
        self._maxsize = maxsize
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> tuple[bool, str] | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: tuple[str, str], value: tuple[bool, str]) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._maxsize:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


_VERDICTS = _LRU(maxsize=4096)


def extract_boxed(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` and ``\\fbox{...}`` in ``text``, in order.

    Braces are matched (``\\{`` and ``\\}`` are literal and do not count); a box whose brace
    never closes is skipped; a box nested in another is part of the outer content. Also reads
    the brace-less ``\\boxed 5``. Linear time; never raises on any string.
    """
    if not isinstance(text, str) or ("\\boxed" not in text and "\\fbox" not in text):
        return []
    found: list[str] = []
    closing: dict[int, int] | None = None
    end = 0
    for match in _BOX_RE.finditer(text):
        if match.start() < end:
            continue
        i = match.end()
        if text.startswith("{", i):
            if closing is None:
                closing = _closing_braces(text, match.start())
            close = closing.get(i)
            if close is not None:
                found.append(text[i + 1 : close].strip())
                end = close + 1
        elif match.group(1):
            token = _BARE_TOKEN_RE.match(text, i)
            if token:
                found.append(token.group().rstrip(".,;:"))
                end = token.end()
    return found


def _closing_braces(text: str, start: int) -> dict[int, int]:
    """Map each ``{`` at or after ``start`` to its matching ``}`` (one linear pass)."""
    stack: list[int] = []
    pairs: dict[int, int] = {}
    for token in _BRACE_TOKEN_RE.finditer(text, start):
        if token.group() == "{":
            stack.append(token.start())
        elif token.group() == "}" and stack:
            pairs[stack.pop()] = token.start()
    return pairs


def answers_equivalent(pred: str, gold: str, *, timeout: float = 1.0) -> bool | None:
    """Whether answer ``pred`` is mathematically equivalent to ``gold``.

    Returns ``None`` when that could not be decided within ``timeout`` seconds (never a quiet
    ``False``). Raises :class:`VerifierError` if the symbolic worker cannot run, and
    ``ValueError`` for an empty gold answer.
    """
    result, _ = _equivalent(pred, gold, time.monotonic() + timeout)
    return result


def _equivalent(pred: str, gold: str, deadline: float) -> tuple[bool | None, str]:
    """:func:`answers_equivalent` with a detail line and an absolute deadline."""
    if not gold.strip():
        raise ValueError("empty gold answer")
    key = (pred, gold)
    cached = _VERDICTS.get(key)
    if cached is not None:
        return cached
    limit = max(MAX_ANSWER_CHARS, 20 * len(gold))
    if len(pred) > limit:
        return False, f"answer has {len(pred)} characters (limit {limit}); not checked"
    result, detail = fast_check(pred, gold)
    if result is None:
        refusal = huge_power(pred) or huge_power(gold)
        if refusal:
            return None, refusal
        result, detail = WORKER.check(pred, gold, deadline - time.monotonic())
    if result is not None:
        _VERDICTS.put(key, (result, detail))
    return result, detail


def check_math_reply(reply: str, gold: str, *, timeout: float = 1.0) -> MathVerdict:
    """Judge a whole reply: its ``\\boxed{}`` answer against ``gold``, within ``timeout`` s.

    Never raises: internal failures give status ``error`` with the reason in ``detail``.
    """
    candidates: tuple[str, ...] = ()
    try:
        if not isinstance(reply, str) or not isinstance(gold, str):
            raise TypeError(f"reply and gold must be str, not {type(reply).__name__}")
        candidates = tuple(extract_boxed(reply))
        return _judge(candidates, gold, time.monotonic() + timeout)
    except Exception as exc:
        detail = f"verifier error: {type(exc).__name__}: {exc}"
        return MathVerdict("error", None, candidates, _one_line(detail))


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _distinct_answers(candidates: tuple[str, ...]) -> list[str]:
    """Non-empty candidates, one per normalized spelling, in order of appearance."""
    seen: dict[Normalized, str] = {}
    memo: dict[str, Normalized] = {}
    for candidate in candidates:
        if candidate not in memo:
            memo[candidate] = normalize(candidate)
        norm = memo[candidate]
        if norm.text and norm not in seen:
            seen[norm] = candidate
            if len(seen) > MAX_CANDIDATES:
                break
    return list(seen.values())


def _judge(candidates: tuple[str, ...], gold: str, deadline: float) -> MathVerdict:
    """The status of a reply with these boxed ``candidates``."""
    answers = _distinct_answers(candidates)
    if not answers:
        what = "only empty \\boxed{}" if candidates else "no \\boxed{...} answer in the reply"
        return MathVerdict("no_answer", None, candidates, what)
    if len(answers) > MAX_CANDIDATES:
        detail = f"more than {MAX_CANDIDATES} different boxed answers"
        return MathVerdict("hedged", None, candidates, detail)
    if len(answers) == 1:
        result, detail = _equivalent(answers[0], gold, deadline)
        return MathVerdict(_status(result), answers[0], candidates, _one_line(detail))
    return _judge_several(answers, candidates, gold, deadline)


def _status(result: bool | None) -> VerdictStatus:
    return "timeout" if result is None else "correct" if result else "wrong"


def _judge_several(
    answers: list[str], candidates: tuple[str, ...], gold: str, deadline: float
) -> MathVerdict:
    """Several distinct boxed answers: correct only if every one of them matches ``gold``."""
    verdicts: dict[str, tuple[bool | None, str]] = {}
    for answer in answers:
        verdicts[answer] = _equivalent(answer, gold, deadline)
        results = {result for result, _ in verdicts.values()}
        if True in results and False in results:
            right = next(a for a, (r, _) in verdicts.items() if r)
            wrong = next(a for a, (r, _) in verdicts.items() if r is False)
            detail = f"boxed answers disagree: {right!r} matches the gold, {wrong!r} does not"
            return MathVerdict("hedged", None, candidates, _one_line(detail))
    timed_out = [(a, d) for a, (r, d) in verdicts.items() if r is None]
    if timed_out:
        return MathVerdict("timeout", None, candidates, _one_line(timed_out[0][1]))
    last = answers[-1]
    if all(result for result, _ in verdicts.values()):
        detail = f"all {len(answers)} boxed answers match the gold; last: {verdicts[last][1]}"
        return MathVerdict("correct", last, candidates, _one_line(detail))
    for answer in answers[:-1]:
        same, _ = _equivalent(answer, last, deadline)
        if same is not True:
            detail = f"boxed answers differ ({answer!r} vs {last!r}) and none matches the gold"
            return MathVerdict("hedged", None, candidates, _one_line(detail))
    detail = f"all {len(answers)} boxed answers agree; {verdicts[last][1]}"
    return MathVerdict("wrong", last, candidates, _one_line(detail))


def warm_up() -> None:
    """Start the symbolic worker now and wait until it is ready (optional; ~0.6 s)."""
    WORKER.start(wait=True)


def clear_caches() -> None:
    """Forget cached verdicts and parsed answers (benchmarks use it to time cold checks)."""
    _VERDICTS.clear()
    WORKER.clear_caches()


__all__ = [
    "MAX_CANDIDATES",
    "MathVerdict",
    "VerdictStatus",
    "VerifierError",
    "answers_equivalent",
    "check_math_reply",
    "clear_caches",
    "extract_boxed",
    "warm_up",
]
