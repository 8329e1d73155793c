"""The pieces every rubric checker shares: the answer view, the check result, the base class.

A checker is a frozen dataclass that scores one :class:`Answer` in [0, 1] and says why
(:class:`Check`). It describes itself in one English instruction (:meth:`Checker.describe`,
what a task shows the writer) and serialises to a plain dict (:meth:`Checker.to_spec`,
``{"type": kind, **fields}``) that :func:`rlvr.rewards.rubric.checker_from_spec` reads back.

Text units, fixed here once for every checker:

* **word**: a whitespace-separated token holding at least one letter or digit;
* **line**: a line of the answer, stripped; **heading**: a line starting with ``#``;
* **sentence**: a stretch of a non-heading line ending in ``.``, ``!`` or ``?`` followed by a
  space or the line end; what is left of a line without such an end counts as one sentence;
* **paragraph**: a block separated from the next by a blank line; a block that is only a
  heading does not count.
"""

from __future__ import annotations

import dataclasses
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

WORD = re.compile(r"\S*[^\W_]\S*")
"""A whitespace token with at least one letter or digit."""
TOKEN = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?|[^\W\d_]+")
"""Number or letter-run tokens: ``1,234.50``, ``-3``, ``price`` (``_`` and punctuation split)."""
SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*(?:\s+|$)")
HEADING = re.compile(r"^\s*#{1,6}\s+\S")

# fmt: off
STOPWORDS: frozenset[str] = frozenset((
    "a", "about", "above", "after", "again", "all", "also", "am", "an", "and", "any", "are",
    "as", "at", "be", "because", "been", "before", "being", "below", "between", "both",
    "but", "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each",
    "even", "every", "few", "for", "from", "further", "had", "has", "have", "having", "he",
    "her", "here", "hers", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its",
    "itself", "just", "let", "me", "more", "most", "my", "no", "nor", "not", "now", "of",
    "off", "on", "once", "only", "or", "other", "our", "ours", "out", "over", "own",
    "please", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their",
    "theirs", "them", "then", "there", "these", "they", "this", "those", "through", "to",
    "too", "under", "until", "up", "us", "very", "was", "we", "were", "what", "when",
    "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your",
    "yours",
))
# fmt: on
"""English function words; natural prose is rarely under 15% of them."""


def normalize(text: str, *, case_sensitive: bool = False) -> str:
    """Collapse whitespace (and case, unless ``case_sensitive``) for phrase matching."""
    collapsed = " ".join(text.split())
    return collapsed if case_sensitive else collapsed.casefold()


def phrase_pattern(phrase: str, *, case_sensitive: bool = False) -> re.Pattern[str]:
    """``phrase`` as a regex that matches it whole (not inside a longer word), any spacing."""
    parts = [re.escape(part) for part in phrase.split()]
    body = r"\s+".join(parts) if parts else r"(?!)"
    left = r"(?<!\w)" if phrase[:1].isalnum() else ""
    right = r"(?!\w)" if phrase[-1:].isalnum() else ""
    return re.compile(left + body + right, 0 if case_sensitive else re.IGNORECASE)


def _sentences_of(line: str) -> list[str]:
    return [part.strip() for part in SENTENCE_END.split(line) if WORD.search(part)]


def _json_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [text for item in value.values() for text in _json_strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _json_strings(item)]
    return []


@dataclass(frozen=True)
class Answer:
    """An answer to score, with the views checkers read (computed once, on first use).

    ``prompt`` is the task text the writer saw; the echo guard compares against it.
    """

    text: str
    prompt: str = ""

    @cached_property
    def words(self) -> tuple[str, ...]:
        return tuple(WORD.findall(self.text))

    @cached_property
    def lines(self) -> tuple[str, ...]:
        return tuple(line.strip() for line in self.text.splitlines())

    @cached_property
    def sentences(self) -> tuple[str, ...]:
        found: list[str] = []
        for line in self.lines:
            if line and not HEADING.match(line):
                found += _sentences_of(line)
        return tuple(found)

    @cached_property
    def paragraphs(self) -> tuple[str, ...]:
        blocks = re.split(r"\n\s*\n", self.text)
        kept = []
        for block in blocks:
            lines = [line for line in block.strip().splitlines() if line.strip()]
            if lines and not all(HEADING.match(line) for line in lines):
                kept.append(block.strip())
        return tuple(kept)

    @cached_property
    def tokens(self) -> tuple[str, ...]:
        """Number and letter-run tokens, casefolded (for cue and number matching)."""
        return tuple(token.casefold() for token in TOKEN.findall(self.text))

    @cached_property
    def json_value(self) -> Any:
        """The JSON value the answer holds (whole text or one fenced block), else ``None``."""
        return parse_json_answer(self.text)

    @cached_property
    def prose(self) -> str:
        """The running text: the string values of a JSON answer, else the text itself."""
        value = self.json_value
        if isinstance(value, (dict, list)):
            return "\n".join(_json_strings(value))
        return self.text


_FENCE = re.compile(r"```(?:json)?\s*\n(.*?)\n\s*```", re.DOTALL | re.IGNORECASE)


def parse_json_answer(text: str) -> Any:
    """The JSON value of ``text`` (whole, or its only fenced block); ``None`` if there is none."""
    candidates = [text.strip()]
    fenced = _FENCE.findall(text)
    if len(fenced) == 1:
        candidates.append(fenced[0].strip())
    for candidate in candidates:
        if candidate[:1] in "{[":
            try:
                return json.loads(candidate)
            except (ValueError, RecursionError):
                continue
    return None


@dataclass(frozen=True)
class Check:
    """What one checker found: a score in [0, 1] and a one-line reason."""

    score: float
    detail: str

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"a check score must lie in [0, 1], got {self.score}")


def bounded(value: int, low: int | None, high: int | None, unit: str) -> Check:
    """1 inside ``[low, high]``; outside, falls linearly to 0 at half the bound away."""
    if low is not None and value < low:
        slack = max(low / 2, 1)
        return Check(max(0.0, 1 - (low - value) / slack), f"{value} {unit}, fewer than {low}")
    if high is not None and value > high:
        slack = max(high / 2, 1)
        return Check(max(0.0, 1 - (value - high) / slack), f"{value} {unit}, more than {high}")
    return Check(1.0, f"{value} {unit}")


def range_words(low: int | None, high: int | None, unit: str) -> str:
    """``between 3 and 5 items`` / ``exactly 3 items`` / ``at least 3 items`` / ``at most``."""
    if low is not None and high is not None:
        return f"exactly {low} {unit}" if low == high else f"between {low} and {high} {unit}"
    if low is not None:
        return f"at least {low} {unit}"
    return f"at most {high} {unit}"


def check_range(low: int | None, high: int | None, what: str) -> None:
    """Validate a ``[low, high]`` bound pair (``None`` = open)."""
    if low is None and high is None:
        raise ValueError(f"{what}: give min, max or both")
    for bound in (low, high):
        if bound is not None and (not isinstance(bound, int) or bound < 0):
            raise ValueError(f"{what}: bounds must be ints >= 0, got {bound!r}")
    if low is not None and high is not None and low > high:
        raise ValueError(f"{what}: min {low} is above max {high}")


def quoted(phrases: tuple[str, ...], joiner: str = "and") -> str:
    """``"a", "b" and "c"``."""
    marks = [f'"{phrase}"' for phrase in phrases]
    if len(marks) == 1:
        return marks[0]
    return ", ".join(marks[:-1]) + f" {joiner} " + marks[-1]


def text_tuple(value: Any, what: str) -> tuple[str, ...]:
    """A non-empty tuple of non-empty strings, or a ValueError naming ``what``."""
    if isinstance(value, str):
        value = (value,)
    items = tuple(value) if isinstance(value, (list, tuple)) else ()
    if not items or not all(isinstance(item, str) and item.strip() for item in items):
        raise ValueError(f"{what} must be a non-empty list of non-empty strings, got {value!r}")
    return items


class Checker(ABC):
    """Scores an :class:`Answer` for one criterion. Subclasses are frozen dataclasses."""

    kind: ClassVar[str]
    """The ``type`` of the checker in a rubric file."""
    judged: ClassVar[bool] = False
    """True for checkers that call a judge (a model), not a program: nondeterministic."""

    @abstractmethod
    def __call__(self, answer: Answer) -> Check:
        """Score the answer; never raises on any text."""

    @abstractmethod
    def describe(self) -> str:
        """The instruction a task shows for this check, in one English sentence."""

    def to_spec(self) -> dict[str, Any]:
        """``{"type": kind, **fields}``, plain JSON types only."""
        spec: dict[str, Any] = {"type": self.kind}
        for item in dataclasses.fields(self):  # type: ignore[arg-type]
            spec[item.name] = _plain(getattr(self, item.name))
        return spec

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Checker:
        """Build the checker from the fields of its spec (``type`` already removed)."""
        names = {item.name for item in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(spec) - names)
        if unknown:
            raise ValueError(
                f"check {cls.kind!r} has no field(s) {unknown}; fields: {sorted(names)}"
            )
        values = {key: tuple(v) if isinstance(v, list) else v for key, v in spec.items()}
        return cls(**values)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {item.name: _plain(getattr(value, item.name)) for item in dataclasses.fields(value)}
    return value


@dataclass(frozen=True)
class CountChecker(Checker):
    """A checker of a count that must lie in ``[min, max]`` (either bound optional)."""

    min: int | None = None
    max: int | None = None

    def __post_init__(self) -> None:
        check_range(self.min, self.max, self.kind)
