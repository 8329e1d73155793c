"""Multi-hop QA rewards: exact answer match, the entity rubric, the positive-only combination.

Follows LongTraceRL (reference/techniques.md, section 8):

* outcome ``r_o`` in {0, 1}: the extracted final answer equals the gold answer after
  :func:`normalize_answer` (a verifiable exact match instead of the paper's LLM judge);
* rubric ``r_r`` in [0, 1]: the fraction of the gold hop entities whose normalised name occurs
  (on word boundaries) in the normalised response;
* positive-only combination: ``r = 0`` if ``r_o = 0`` else ``(1 - eta) * r_o + eta * r_r``
  (``eta = 0.3`` in training, ``0`` in evaluation), so a wrong answer earns nothing whatever
  entities it lists.

The group-level variant of the paper (``r_r / max_group r_r`` before combining) is
:func:`normalize_group_rubrics` + :func:`positive_only_group`, for the trainer's reward
transforms. One guard goes beyond the paper: a response that names many more of the
context's entities than the gold path has (entity stuffing) gets its rubric scaled down by
:func:`stuffing_factor`.

Everything here is pure and torch-free; nothing returns 0 for "could not score".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

DEFAULT_ETA = 0.3
"""Rubric weight of the positive-only combination (LongTraceRL's training value)."""

AnswerStatus = Literal["ok", "no_answer", "empty", "hedged"]

_MARKER = re.compile(
    r"^[\s*_#>`]*(?:final\s+)?answer[\s*_`]*[:：][\s*_`]*(.*?)[\s*_`]*$", re.I | re.M
)
_FALLBACK_CHARS = 200


def normalize_answer(text: str) -> str:
    """Lowercase, accents stripped, only alphanumeric word tokens, joined by single spaces."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.findall(r"[^\W_]+", stripped.lower()))


def exact_match(prediction: str, gold: str | Iterable[str]) -> bool:
    """Whether ``prediction`` equals ``gold`` (or one of its aliases) after normalisation."""
    golds = [gold] if isinstance(gold, str) else list(gold)
    norm = normalize_answer(prediction)
    return bool(norm) and any(norm == normalize_answer(g) for g in golds)


@dataclass(frozen=True)
class ExtractedAnswer:
    """The final answer found in a reply."""

    status: AnswerStatus
    """``ok``; ``no_answer`` (no ``Answer:`` line); ``empty``; ``hedged`` (several answers)."""
    answer: str | None
    candidates: tuple[str, ...] = ()
    """Every distinct answer given, in order (more than one means hedging)."""


def extract_answer(reply: str) -> ExtractedAnswer:
    """The text after ``Answer:`` (the last such line). Several different ``Answer:`` lines are
    hedging; a reply without the marker counts as its answer only if it is one short line."""
    found = [m.group(1).strip() for m in _MARKER.finditer(reply)]
    if not found:
        line = reply.strip()
        if not line:
            return ExtractedAnswer("empty", None)
        if "\n" in line or len(line) > _FALLBACK_CHARS:
            return ExtractedAnswer("no_answer", None)
        found = [line]
    distinct = list(dict.fromkeys(normalize_answer(f) for f in found))
    if len(distinct) > 1:
        return ExtractedAnswer("hedged", found[-1], tuple(found))
    if not distinct[0]:
        return ExtractedAnswer("empty", None, tuple(found))
    return ExtractedAnswer("ok", found[-1], (found[-1],))


def named_entities(response: str, entities: Iterable[str]) -> list[str]:
    """The entities whose normalised name occurs on word boundaries in ``response``."""
    haystack = f" {normalize_answer(response)} "
    named = []
    for entity in dict.fromkeys(entities):
        needle = normalize_answer(entity)
        if needle and f" {needle} " in haystack:
            named.append(entity)
    return named


def stuffing_factor(n_named_others: int, n_gold: int) -> float:
    """1 while a response names at most ``n_gold`` non-gold context entities, then shrinking
    as ``n_gold / n_named_others``: listing every entity of the context earns no rubric."""
    allowed = max(1, n_gold)
    return 1.0 if n_named_others <= allowed else allowed / n_named_others


def entity_rubric(
    response: str, gold_entities: Sequence[str], context_entities: Iterable[str] = ()
) -> float:
    """Fraction of ``gold_entities`` named in ``response``, times the :func:`stuffing_factor`
    counted over ``context_entities`` that are not gold. In [0, 1]."""
    if not gold_entities:
        raise ValueError("entity_rubric needs at least one gold entity")
    gold = list(dict.fromkeys(gold_entities))
    recall = len(named_entities(response, gold)) / len(gold)
    gold_norm = {normalize_answer(g) for g in gold}
    others = [e for e in context_entities if normalize_answer(e) not in gold_norm]
    return recall * stuffing_factor(len(named_entities(response, others)), len(gold))


def positive_only(outcome: float, rubric: float, eta: float = DEFAULT_ETA) -> float:
    """``0`` when the outcome is 0, else ``(1 - eta) * outcome + eta * rubric``."""
    for name, value in (("outcome", outcome), ("rubric", rubric), ("eta", eta)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {value}")
    return 0.0 if outcome == 0 else (1 - eta) * outcome + eta * rubric


def normalize_group_rubrics(rubrics: Sequence[float]) -> list[float]:
    """LongTraceRL's group step: ``r_r / max_group r_r`` when the max is > 0, else unchanged."""
    top = max(rubrics, default=0.0)
    return [r / top if top > 0 else r for r in rubrics]


def positive_only_group(
    outcomes: Sequence[float], rubrics: Sequence[float], eta: float = DEFAULT_ETA
) -> list[float]:
    """The paper's group reward: normalise the rubrics over the group, then combine."""
    if len(outcomes) != len(rubrics):
        raise ValueError(f"{len(outcomes)} outcomes but {len(rubrics)} rubrics")
    scaled = normalize_group_rubrics(rubrics)
    return [positive_only(o, r, eta) for o, r in zip(outcomes, scaled, strict=True)]


@dataclass(frozen=True)
class MultiHopScore:
    """The verdict on one response."""

    outcome: float
    rubric: float
    reward: float
    extracted: ExtractedAnswer
    named: tuple[str, ...]
    """The gold entities the response names."""


def score_response(
    response: str,
    gold_answer: str | Sequence[str],
    gold_entities: Sequence[str],
    *,
    answer: str | None = None,
    context_entities: Iterable[str] = (),
    eta: float = DEFAULT_ETA,
) -> MultiHopScore:
    """Score a response: ``answer`` if given (a tool call's text), else its ``Answer:`` line."""
    extracted = extract_answer(response) if answer is None else _given(answer)
    correct = extracted.status == "ok" and exact_match(extracted.answer or "", gold_answer)
    outcome = float(correct)
    rubric = entity_rubric(response, gold_entities, context_entities)
    named = tuple(named_entities(response, gold_entities))
    return MultiHopScore(outcome, rubric, positive_only(outcome, rubric, eta), extracted, named)


def _given(answer: str) -> ExtractedAnswer:
    if not normalize_answer(answer):
        return ExtractedAnswer("empty", None)
    return ExtractedAnswer("ok", answer.strip(), (answer.strip(),))


def multihop_reward(
    completions: Sequence[Any], answer: Sequence[str], entities: Sequence[Sequence[str]], **_: Any
) -> list[float]:
    """A TRL-style reward function: one positive-only reward per completion (a string, or a
    list of chat messages whose last ``content`` is read)."""
    rewards = []
    for completion, gold, hop_entities in zip(completions, answer, entities, strict=True):
        text = completion if isinstance(completion, str) else str(completion[-1]["content"])
        rewards.append(score_response(text, gold, list(hop_entities)).reward)
    return rewards
