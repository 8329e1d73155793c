"""Text checkers: phrases, patterns, counts, openings and endings, casing, numbers, placeholders.

Each is a frozen dataclass (see :mod:`rlvr.rewards.rubric_base`); phrase matching is whole-word,
whitespace-insensitive and case-insensitive unless ``case_sensitive``.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import ClassVar, Literal

from rlvr.rewards.rubric_base import (
    TOKEN,
    Answer,
    Check,
    Checker,
    CountChecker,
    bounded,
    normalize,
    phrase_pattern,
    quoted,
    range_words,
    text_tuple,
)


@dataclass(frozen=True)
class Contains(Checker):
    """The answer mentions the phrases: ``all`` of them (score = share found) or ``any``."""

    kind: ClassVar[str] = "contains"
    phrases: tuple[str, ...]
    match: Literal["all", "any"] = "all"
    case_sensitive: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "phrases", text_tuple(self.phrases, "contains.phrases"))
        if self.match not in ("all", "any"):
            raise ValueError(f"contains.match must be 'all' or 'any', got {self.match!r}")

    def __call__(self, answer: Answer) -> Check:
        found = [p for p in self.phrases if self._pattern(p).search(answer.text)]
        missing = [p for p in self.phrases if p not in found]
        if self.match == "any":
            return Check(float(bool(found)), f"found {found}" if found else "none found")
        detail = f"missing {missing}" if missing else "all found"
        return Check(len(found) / len(self.phrases), detail)

    def _pattern(self, phrase: str) -> re.Pattern[str]:
        return phrase_pattern(phrase, case_sensitive=self.case_sensitive)

    def describe(self) -> str:
        if self.match == "any":
            return f"Mention at least one of {quoted(self.phrases, 'or')}."
        return f"Mention {quoted(self.phrases)}."


@dataclass(frozen=True)
class Excludes(Checker):
    """The answer mentions none of the phrases; score = share of the phrases absent."""

    kind: ClassVar[str] = "excludes"
    phrases: tuple[str, ...]
    case_sensitive: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "phrases", text_tuple(self.phrases, "excludes.phrases"))

    def __call__(self, answer: Answer) -> Check:
        present = [p for p in self.phrases if self._pattern(p).search(answer.text)]
        detail = f"mentions {present}" if present else "none mentioned"
        return Check(1 - len(present) / len(self.phrases), detail)

    def _pattern(self, phrase: str) -> re.Pattern[str]:
        return phrase_pattern(phrase, case_sensitive=self.case_sensitive)

    def describe(self) -> str:
        return f"Do not mention {quoted(self.phrases, 'or')}."


@dataclass(frozen=True)
class Regex(Checker):
    """``pattern`` matches somewhere (``must_match``) or nowhere in the answer."""

    kind: ClassVar[str] = "regex"
    pattern: str
    must_match: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        try:
            re.compile(self.pattern)
        except re.error as error:
            raise ValueError(f"regex.pattern {self.pattern!r} does not compile: {error}") from None

    def __call__(self, answer: Answer) -> Check:
        found = re.search(self.pattern, answer.text, re.MULTILINE) is not None
        ok = found == self.must_match
        return Check(float(ok), ("matches" if found else "no match") + f" /{self.pattern}/")

    def describe(self) -> str:
        if self.description:
            return self.description
        verb = "Match" if self.must_match else "Never match"
        return f"{verb} the regular expression /{self.pattern}/."


@dataclass(frozen=True)
class WordCount(CountChecker):
    """Word count within ``[min, max]``; the score falls off linearly outside."""

    kind: ClassVar[str] = "word_count"

    def __call__(self, answer: Answer) -> Check:
        return bounded(len(answer.words), self.min, self.max, "words")

    def describe(self) -> str:
        return f"Write {range_words(self.min, self.max, 'words')}."


@dataclass(frozen=True)
class SentenceCount(CountChecker):
    """Sentence count within ``[min, max]``."""

    kind: ClassVar[str] = "sentence_count"

    def __call__(self, answer: Answer) -> Check:
        return bounded(len(answer.sentences), self.min, self.max, "sentences")

    def describe(self) -> str:
        return f"Use {range_words(self.min, self.max, 'sentences')}."


@dataclass(frozen=True)
class ParagraphCount(CountChecker):
    """Paragraph count (blocks between blank lines) within ``[min, max]``."""

    kind: ClassVar[str] = "paragraph_count"

    def __call__(self, answer: Answer) -> Check:
        return bounded(len(answer.paragraphs), self.min, self.max, "paragraphs")

    def describe(self) -> str:
        count = range_words(self.min, self.max, "paragraphs")
        return f"Use {count}, separated by blank lines."


@dataclass(frozen=True)
class StartsWith(Checker):
    """The answer (leading whitespace ignored) starts with ``text``."""

    kind: ClassVar[str] = "starts_with"
    text: str
    case_sensitive: bool = False

    def __post_init__(self) -> None:
        text_tuple(self.text, "starts_with.text")

    def __call__(self, answer: Answer) -> Check:
        head = normalize(answer.text[: len(self.text) * 4 + 64], case_sensitive=self.case_sensitive)
        ok = head.startswith(normalize(self.text, case_sensitive=self.case_sensitive))
        return Check(float(ok), "starts as asked" if ok else f"does not start with {self.text!r}")

    def describe(self) -> str:
        return f'Begin the answer with "{self.text}".'


@dataclass(frozen=True)
class EndsWith(Checker):
    """The answer (trailing whitespace ignored) ends with ``text``."""

    kind: ClassVar[str] = "ends_with"
    text: str
    case_sensitive: bool = False

    def __post_init__(self) -> None:
        text_tuple(self.text, "ends_with.text")

    def __call__(self, answer: Answer) -> Check:
        tail = normalize(
            answer.text[-(len(self.text) * 4 + 64) :], case_sensitive=self.case_sensitive
        )
        ok = tail.endswith(normalize(self.text, case_sensitive=self.case_sensitive))
        return Check(float(ok), "ends as asked" if ok else f"does not end with {self.text!r}")

    def describe(self) -> str:
        return f'End the answer with "{self.text}".'


CasingMode = Literal["lower", "upper", "sentence"]


@dataclass(frozen=True)
class Casing(Checker):
    """A casing rule that holds in any script with case (Unicode ``isupper``/``islower``).

    ``lower``: no uppercase letter; ``upper``: no lowercase letter; ``sentence``: every
    sentence's first cased letter is uppercase. Score = share of letters (sentences) that obey.
    """

    kind: ClassVar[str] = "casing"
    mode: CasingMode = "sentence"

    def __post_init__(self) -> None:
        if self.mode not in ("lower", "upper", "sentence"):
            raise ValueError(f"casing.mode must be lower, upper or sentence, got {self.mode!r}")

    def __call__(self, answer: Answer) -> Check:
        if self.mode == "sentence":
            firsts = [
                next((c for c in s if c.isupper() or c.islower()), "") for s in answer.sentences
            ]
            cased = [c for c in firsts if c]
            bad = sum(c.islower() for c in cased)
            total, unit = len(cased), "sentences start in lowercase"
        else:
            letters = [c for c in answer.text if c.isupper() or c.islower()]
            wrong = str.isupper if self.mode == "lower" else str.islower
            bad = sum(wrong(c) for c in letters)
            total, unit = len(letters), "letters break the rule"
        if total == 0:
            return Check(0.0, "no cased letters")
        return Check(1 - bad / total, f"{bad} of {total} {unit}")

    def describe(self) -> str:
        return {
            "lower": "Write the whole answer in lowercase letters, with no capital letters.",
            "upper": "Write the whole answer in capital letters, with no lowercase letters.",
            "sentence": "Start every sentence with a capital letter.",
        }[self.mode]


@dataclass(frozen=True)
class InOrder(Checker):
    """The phrases all appear, and their first mentions come in the given order."""

    kind: ClassVar[str] = "in_order"
    phrases: tuple[str, ...]

    def __post_init__(self) -> None:
        phrases = text_tuple(self.phrases, "in_order.phrases")
        if len(phrases) < 2:
            raise ValueError("in_order needs at least two phrases")
        object.__setattr__(self, "phrases", phrases)

    def __call__(self, answer: Answer) -> Check:
        spots = [phrase_pattern(p).search(answer.text) for p in self.phrases]
        if any(spot is None for spot in spots):
            missing = [p for p, s in zip(self.phrases, spots, strict=True) if s is None]
            return Check(0.0, f"missing {missing}")
        starts = [spot.start() for spot in spots if spot is not None]
        pairs = sum(a < b for a, b in itertools.pairwise(starts))
        score = pairs / (len(starts) - 1)
        return Check(score, "in order" if score == 1 else f"{pairs} of {len(starts) - 1} in order")

    def describe(self) -> str:
        return f"Mention {quoted(self.phrases)} in this order."


def as_decimal(text: str) -> Decimal | None:
    """``"1,234.50"`` -> ``Decimal("1234.50")``; ``None`` for anything that is not a number."""
    try:
        return Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None


@dataclass(frozen=True)
class NumericFact(Checker):
    """A number that must appear and be right: the first number within ``window`` tokens after
    the cue phrase equals ``value`` (within ``tolerance``) for at least one mention of the cue.

    Tokens are number and letter runs, so ``"total_cost": 12.5`` and ``the total cost is
    12.50`` both tie ``12.5`` to the cue ``total cost``.
    """

    kind: ClassVar[str] = "numeric_fact"
    value: str
    cue: str
    window: int = 6
    tolerance: str = "0"

    def __post_init__(self) -> None:
        if as_decimal(str(self.value)) is None:
            raise ValueError(f"numeric_fact.value must be a number, got {self.value!r}")
        if as_decimal(str(self.tolerance)) is None or Decimal(str(self.tolerance)) < 0:
            raise ValueError(
                f"numeric_fact.tolerance must be a number >= 0, got {self.tolerance!r}"
            )
        object.__setattr__(self, "value", str(self.value))
        object.__setattr__(self, "tolerance", str(self.tolerance))
        if not [t.casefold() for t in TOKEN.findall(self.cue) if not t[-1].isdigit()]:
            raise ValueError(f"numeric_fact.cue needs at least one word, got {self.cue!r}")
        if self.window < 1:
            raise ValueError(f"numeric_fact.window must be >= 1, got {self.window}")

    def __call__(self, answer: Answer) -> Check:
        cue = tuple(t.casefold() for t in TOKEN.findall(self.cue))
        target, slack = Decimal(self.value), Decimal(self.tolerance)
        tokens, seen = answer.tokens, []
        for start in range(len(tokens) - len(cue) + 1):
            if tokens[start : start + len(cue)] != cue:
                continue
            after = tokens[start + len(cue) : start + len(cue) + self.window]
            number = next((as_decimal(t) for t in after if t[-1].isdigit()), None)
            if number is not None and abs(number - target) <= slack:
                return Check(1.0, f"{self.cue!r} -> {number}")
            seen.append(str(number))
        detail = f"after {self.cue!r}: {seen[:5]}" if seen else f"{self.cue!r} not mentioned"
        return Check(0.0, f"{detail}; expected {self.value}")

    def describe(self) -> str:
        return f'Give the number {self.value} right after the words "{self.cue}".'


PLACEHOLDER = re.compile(r"\[[^\[\]\n]{1,40}\]")


@dataclass(frozen=True)
class Placeholders(Checker):
    """The ``required`` square-bracket placeholders are present, verbatim; unless
    ``allow_others``, any other ``[...]`` halves the score."""

    kind: ClassVar[str] = "placeholders"
    required: tuple[str, ...] = ()
    min_count: int = 0
    allow_others: bool = False

    def __post_init__(self) -> None:
        required = tuple(self.required)
        if not all(isinstance(p, str) and PLACEHOLDER.fullmatch(p) for p in required):
            raise ValueError(f"placeholders.required must look like [NAME], got {required!r}")
        if not required and self.min_count < 1:
            raise ValueError("placeholders needs required placeholders or min_count >= 1")
        object.__setattr__(self, "required", required)

    def __call__(self, answer: Answer) -> Check:
        found = PLACEHOLDER.findall(answer.text)
        present = [p for p in self.required if p in found]
        others = sorted({p for p in found if p not in self.required})
        score = len(present) / len(self.required) if self.required else 1.0
        if len(found) < self.min_count:
            score *= len(found) / self.min_count
        if others and not self.allow_others:
            score *= 0.5
        detail = f"{len(present)}/{len(self.required)} required, {len(found)} in all"
        return Check(score, detail + (f", unexpected {others[:5]}" if others else ""))

    def describe(self) -> str:
        parts = []
        if self.required:
            parts.append(f"Keep the placeholders {' and '.join(self.required)} exactly as written")
        if self.min_count:
            parts.append(f"Use at least {self.min_count} placeholders in square brackets")
        rule = "" if self.allow_others else ", and no other text in square brackets"
        return "; ".join(parts) + rule + "."
