"""Write an answer that meets a rubric: the env's reference answer and the scripted solver's.

:func:`write` lays out a :class:`Brief` (the facts, the figures and the rubric to satisfy)
as prose: a title or an opening line, a bulleted list, paragraphs under headings, a
closing line, with neutral sentences from :data:`FILLERS` to reach the length range, and
a casing rule applied last. It tries layouts (paragraph counts, filler counts) and keeps the
first one that its own rubric scores as a strict completion, so it never guesses at the
counting rules: it uses the checkers themselves. JSON tasks get a JSON object filled from
the schema. Pure and deterministic.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from rlvr.rewards.rubric import (
    BulletList,
    Casing,
    Checker,
    Contains,
    EndsWith,
    Excludes,
    Headings,
    JsonSchema,
    Placeholders,
    Rubric,
    StartsWith,
    TitleLine,
    WordCount,
)
from rlvr.rewards.rubric_base import phrase_pattern

C = TypeVar("C", bound=Checker)

FILLERS = (
    "We have tried to keep every detail in this message accurate and easy to follow.",
    "Please let us know if anything here needs to change.",
    "Everything else will stay as it was planned before.",
    "It is worth reading the whole text once before you make any decision.",
    "We are happy to answer any further questions you may have.",
    "This should give you a clear picture of what to expect.",
    "Feel free to share these details with anyone who might find them useful.",
    "We will send a short reminder a little while before the day.",
    "Nothing else is needed from you at this point.",
    "The plan was put together with care, and it can still be adjusted if you wish.",
    "If you have feedback, we would be glad to hear it.",
    "Your time is valuable, so this note has been kept short.",
    "All of the points above have been checked twice.",
    "We hope that this is helpful and that it answers the main questions.",
    "There is no need to reply unless something is unclear.",
    "A short summary of the same points can be sent on request.",
    "We would like to thank you for your patience while this was prepared.",
    "Any change will be announced as soon as it is confirmed.",
    "It was a pleasure to put these notes together for you.",
    "Most people find that this arrangement works well for them.",
    "The details are listed in the order in which they matter.",
    "We can also talk it over on a call if that is easier for you.",
    "You are welcome to keep this message for later reference.",
    "Our team will be available to help you throughout the process.",
    "We have done our best to make it simple to use.",
    "It has been designed with everyday use in mind.",
    "Small questions are welcome as well as big ones.",
    "This is the latest version of the information we have.",
    "Older messages on the same subject can now be ignored.",
    "We look forward to hearing from you soon.",
    "Should anything come up, we will let you know at once.",
    "These points were agreed on after a careful look at all the options.",
)
"""Neutral sentences that pad a text to a length range (no digits, no brackets)."""

FACT_TEMPLATES = (
    "The {label} is {value}.",
    "Please note that the {label} is {value}.",
    "As for the {label}, it is {value}.",
    "For the {label}, we have {value}.",
)


@dataclass(frozen=True)
class Brief:
    """What a writer needs: the subject, the facts and figures to use, the rubric to meet."""

    topic: str
    """A few words for titles."""
    facts: tuple[tuple[str, str], ...]
    """``(label, value)`` pairs to mention, current values only."""
    figures: tuple[tuple[str, str], ...]
    """``(cue, value)``: numbers to state right after their cue."""
    rubric: Rubric
    """The criteria to meet (integrity gates included)."""
    prompt: str = ""
    """The task text, for the rubric's echo gate."""


def find(rubric: Rubric, kind: type[C]) -> C | None:
    """The first checker of ``kind`` in ``rubric``."""
    return next((c.check for c in rubric.criteria if isinstance(c.check, kind)), None)


def find_all(rubric: Rubric, kind: type[C]) -> list[C]:
    return [c.check for c in rubric.criteria if isinstance(c.check, kind)]


def write(brief: Brief) -> str:
    """The first candidate answer that meets the whole rubric (else the best-scoring one)."""
    best: tuple[float, str] | None = None
    for text in candidates(brief):
        result = brief.rubric.score(text, prompt=brief.prompt)
        if result.success and result.gate == 1.0:
            return text
        if best is None or result.reward > best[0]:
            best = (result.reward, text)
    return best[1] if best else ""


def candidates(brief: Brief) -> Iterator[str]:
    schema = find(brief.rubric, JsonSchema)
    if schema is not None:
        for extra in range(0, 12):
            yield write_json(brief, schema.schema, extra)
        return
    fillers = usable_fillers(brief)
    for paragraphs in (1, 2, 3, 4, 5, 6):
        base = layout(brief, paragraphs, ())
        for count in filler_counts(brief, base, fillers):
            yield layout(brief, paragraphs, fillers[:count])


def usable_fillers(brief: Brief) -> tuple[str, ...]:
    """The filler bank without banned phrases, rotated by a stable function of the topic."""
    banned = [p for check in find_all(brief.rubric, Excludes) for p in check.phrases]
    kept = [s for s in FILLERS if not any(phrase_pattern(p).search(s) for p in banned)]
    start = sum(map(ord, brief.topic)) % max(len(kept), 1)
    return tuple(kept[start:] + kept[:start])


def filler_counts(brief: Brief, base: str, fillers: Sequence[str]) -> list[int]:
    """Filler counts to try, nearest to the middle of the word range first."""
    words = find(brief.rubric, WordCount)
    if words is None:
        return [0, 1, 2]
    low = words.min if words.min is not None else 0
    high = words.max if words.max is not None else low + 60
    need = (low + high) / 2 - len(base.split())
    guess = 0
    total = 0
    for sentence in fillers:
        if total + len(sentence.split()) / 2 > need:
            break
        total += len(sentence.split())
        guess += 1
    order = [guess, guess - 1, guess + 1, guess - 2, guess + 2, guess + 3, guess - 3]
    return [n for n in order if 0 <= n <= len(fillers)]


def content(brief: Brief) -> list[str]:
    """The sentences that carry the facts, figures, extra phrases and placeholders."""
    out = [
        FACT_TEMPLATES[i % len(FACT_TEMPLATES)].format(label=label, value=value)
        for i, (label, value) in enumerate(brief.facts)
    ]
    out += [f"The {cue} is {value}." for cue, value in brief.figures]
    text = " ".join(out)
    for check in find_all(brief.rubric, Contains):
        for phrase in check.phrases:
            if not phrase_pattern(phrase).search(text):
                out.append(f"Please also keep in mind {phrase}.")
                text += " " + phrase
    for check in find_all(brief.rubric, Placeholders):
        for index, token in enumerate(check.required):
            out.append(
                ("You can add {} here if needed.", "Please fill in {} below.")[index % 2].format(
                    token
                )
            )
    return out


def layout(brief: Brief, paragraphs: int, fillers: Sequence[str]) -> str:
    """The answer text with ``paragraphs`` body paragraphs and the given filler sentences."""
    rubric = brief.rubric
    body = content(brief)
    bullets = find(rubric, BulletList)
    n_bullets = min(bullets.min or 1, len(body)) if bullets else 0
    listed, prose = body[:n_bullets], body[n_bullets:] + list(fillers)
    blocks = []
    title = find(rubric, TitleLine)
    if title is not None:
        room = title.max_words - len(title.prefix.split())
        blocks.append(f"{title.prefix} {cap_words(brief.topic, room)}".strip())
    opening = find(rubric, StartsWith)
    if opening is not None:
        blocks.append(opening.text)
    groups = split(prose, max(paragraphs, 1))
    if listed:
        groups.insert(0, ["\n".join(f"- {line}" for line in listed)])
    headings = find(rubric, Headings)
    if headings is not None:
        sections = split(groups, len(headings.titles))
        for title, section in zip(headings.titles, sections, strict=True):
            blocks.append(f"## {title}")
            blocks += [" ".join(group) for group in section]
    else:
        blocks += [" ".join(group) for group in groups]
    closing = find(rubric, EndsWith)
    if closing is not None:
        blocks.append(closing.text)
    return cased(rubric, "\n\n".join(block for block in blocks if block))


T = TypeVar("T")


def split(items: Sequence[T], parts: int) -> list[list[T]]:
    """``items`` in ``parts`` contiguous, nearly equal groups (some empty if too few)."""
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for index in range(parts):
        end = start + size + (index < extra)
        out.append(list(items[start:end]))
        start = end
    return out


def cap_words(text: str, count: int) -> str:
    return " ".join(text.split()[: max(count, 1)])


def cased(rubric: Rubric, text: str) -> str:
    rule = find(rubric, Casing)
    if rule is None or rule.mode == "sentence":
        return text
    return text.lower() if rule.mode == "lower" else text.upper()


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def as_number(text: str) -> int | float | None:
    found = _NUMBER.search(text.replace(",", ""))
    if found is None:
        return None
    value = Decimal(found.group())
    return int(value) if value == value.to_integral_value() else float(value)


def write_json(brief: Brief, schema: dict[str, Any], extra: int) -> str:
    """A JSON object for ``schema``: keys filled from same-named facts and figures; free
    strings get prose about the facts, with ``extra`` filler sentences."""
    facts = {label.replace(" ", "_"): value for label, value in brief.facts}
    figures = {cue.replace(" ", "_"): value for cue, value in brief.figures}
    out: dict[str, Any] = {}
    for key, sub in dict(schema.get("properties", {})).items():
        kind = sub.get("type")
        source = facts.get(key, figures.get(key))
        if kind in ("number", "integer") and source is not None:
            out[key] = as_number(source)
        elif kind == "array":
            stem = key.rstrip("s") + "_"
            out[key] = [value for label, value in facts.items() if label.startswith(stem)]
        elif source is not None:
            out[key] = source
        else:
            sentences = content(brief) + list(usable_fillers(brief)[:extra])
            out[key] = " ".join(sentences)
    return json.dumps(out, indent=2, ensure_ascii=False)
