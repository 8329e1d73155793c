"""Programmatic rubrics: criteria with human weights, categories and a required flag.

A :class:`Rubric` is a tuple of :class:`Criterion`; each pairs a checker (a program, or a
judge marked as such) with the metadata that reward shaping needs: ``weight`` (the human
importance h_k), ``category`` (for category-balanced reweighting such as POW3R), ``required``
(strict completion) and ``gate``.

Scoring (:meth:`Rubric.score`):

1. every **gate** criterion is scored first; the gate factor ``g`` is their minimum (1 when
   there is none);
2. every criterion (gates included) scores ``g * check(answer)``, so an answer that fails a
   gate (a keyword list, filler, a copy of the prompt) gets 0 on every criterion, and any
   reweighting of the per-criterion scores keeps it at 0;
3. ``reward = sum(w_k * s_k) / sum(w_k)`` (the static weighted mean);
4. ``success`` (strict completion) = every required criterion scores 1.

Rubrics are written in Python (``Rubric.of(Criterion(...), ...)``) or loaded from dicts,
JSONL (one rubric per line, or records with a ``"rubric"`` key) and YAML:

.. code-block:: yaml

    criteria:
      - {name: mentions_venue, weight: 2, category: facts,
         check: {type: contains, phrases: [Room 4B]}}
      - {name: length, category: form, required: false,
         check: {type: word_count, min: 80, max: 120}}
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from rlvr.rewards.rubric_base import Answer, Check, Checker
from rlvr.rewards.rubric_checks import (
    Casing,
    Contains,
    EndsWith,
    Excludes,
    InOrder,
    NumericFact,
    ParagraphCount,
    Placeholders,
    Regex,
    SentenceCount,
    StartsWith,
    WordCount,
)
from rlvr.rewards.rubric_format import BulletList, Headings, JsonSchema, TitleLine
from rlvr.rewards.rubric_guards import (
    JudgeCheck,
    JudgeFn,
    LLMJudge,
    NoEcho,
    Prose,
    UnscorableError,
)

CHECKERS: dict[str, type[Checker]] = {
    cls.kind: cls
    for cls in (
        Contains,
        Excludes,
        Regex,
        WordCount,
        SentenceCount,
        ParagraphCount,
        StartsWith,
        EndsWith,
        Casing,
        InOrder,
        NumericFact,
        Placeholders,
        JsonSchema,
        BulletList,
        Headings,
        TitleLine,
        Prose,
        NoEcho,
        JudgeCheck,
    )
}
"""Every checker by its ``type`` name in rubric files."""

_CRITERION_KEYS = frozenset(
    {"name", "check", "weight", "category", "required", "gate", "description"}
)


def checker_from_spec(spec: Mapping[str, Any]) -> Checker:
    """Build a checker from ``{"type": kind, **fields}``."""
    if not isinstance(spec, Mapping) or "type" not in spec:
        raise ValueError(f"a check must be a mapping with a 'type', got {spec!r}")
    kind = spec["type"]
    if kind not in CHECKERS:
        raise ValueError(f"unknown check type {kind!r}; known: {', '.join(sorted(CHECKERS))}")
    fields = {key: value for key, value in spec.items() if key != "type"}
    try:
        return CHECKERS[kind].from_spec(fields)
    except TypeError as error:  # a missing field: say which check it was
        raise ValueError(f"check {kind!r}: {error}") from None


@dataclass(frozen=True)
class Criterion:
    """One rubric criterion: a named, weighted, categorised check."""

    name: str
    """Unique within the rubric; the key of ``reward_components``."""
    check: Checker
    """The program (or judge) that scores the answer in [0, 1]."""
    weight: float = 1.0
    """Human importance h_k >= 0; weight 0 makes a logged-only metric."""
    category: str = "general"
    """Group for category-balanced reweighting (``facts``, ``format``, ``style``...)."""
    required: bool = True
    """Strict completion needs a score of 1 on every required criterion."""
    gate: bool = False
    """A gate's score caps every criterion's score (integrity guards)."""
    description: str = ""
    """The instruction shown to the writer; defaults to ``check.describe()``."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"a criterion needs a non-empty name, got {self.name!r}")
        if not isinstance(self.check, Checker):
            raise ValueError(f"criterion {self.name!r}: check must be a Checker")
        weight = float(self.weight)
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"criterion {self.name!r}: weight must be finite and >= 0")
        if not isinstance(self.category, str) or not self.category.strip():
            raise ValueError(f"criterion {self.name!r}: category must be a non-empty string")
        object.__setattr__(self, "weight", weight)
        if not self.description:
            object.__setattr__(self, "description", self.check.describe())

    @property
    def judged(self) -> bool:
        """True when a judge, not a program, scores this criterion."""
        return self.check.judged

    def to_dict(self) -> dict[str, Any]:
        """The plain-dict form that :meth:`from_dict` reads back."""
        return {
            "name": self.name,
            "weight": self.weight,
            "category": self.category,
            "required": self.required,
            "gate": self.gate,
            "description": self.description,
            "check": self.check.to_spec(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Criterion:
        """Read ``{"name", "check", "weight"?, "category"?, "required"?, "gate"?, ...}``."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a criterion must be a mapping, got {data!r}")
        unknown = sorted(set(data) - _CRITERION_KEYS)
        if unknown:
            raise ValueError(f"criterion {data.get('name')!r}: unknown keys {unknown}")
        if "name" not in data or "check" not in data:
            raise ValueError(f"a criterion needs 'name' and 'check', got keys {sorted(data)}")
        extra = {
            k: data[k]
            for k in ("weight", "category", "required", "gate", "description")
            if k in data
        }
        for flag in ("required", "gate"):
            if flag in extra and not isinstance(extra[flag], bool):
                raise ValueError(f"criterion {data['name']!r}: {flag} must be true or false")
        return cls(name=data["name"], check=checker_from_spec(data["check"]), **extra)


@dataclass(frozen=True)
class RubricScore:
    """The per-criterion result of scoring one answer."""

    scores: Mapping[str, float]
    """Criterion name -> score in [0, 1] (after the gate): the reward components."""
    details: Mapping[str, str]
    """Criterion name -> what its checker found."""
    reward: float
    """The weighted mean of ``scores`` with the human weights."""
    success: bool
    """Strict completion: every required criterion scored 1."""
    gate: float
    """The gate factor (1 when every gate passed)."""
    failed: tuple[str, ...]
    """Criteria scoring below 1, in rubric order."""


@dataclass(frozen=True)
class Rubric:
    """An ordered tuple of criteria with unique names and a positive total weight."""

    criteria: tuple[Criterion, ...]

    def __post_init__(self) -> None:
        criteria = tuple(self.criteria)
        if not criteria:
            raise ValueError("a rubric needs at least one criterion")
        names = [c.name for c in criteria]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate criterion names {duplicates}")
        if sum(c.weight for c in criteria) <= 0:
            raise ValueError("a rubric needs a positive total weight")
        object.__setattr__(self, "criteria", criteria)

    @classmethod
    def of(cls, *criteria: Criterion) -> Rubric:
        """``Rubric.of(Criterion(...), Criterion(...))``."""
        return cls(tuple(criteria))

    def __getitem__(self, name: str) -> Criterion:
        for criterion in self.criteria:
            if criterion.name == name:
                return criterion
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.criteria)

    @property
    def judged(self) -> bool:
        """True when some criterion needs a judge (scoring is then nondeterministic)."""
        return any(c.judged for c in self.criteria)

    def weights(self) -> dict[str, float]:
        """Criterion name -> human weight h_k."""
        return {c.name: c.weight for c in self.criteria}

    def categories(self) -> dict[str, str]:
        """Criterion name -> category."""
        return {c.name: c.category for c in self.criteria}

    def with_guards(self, topic: Sequence[str] = ()) -> Rubric:
        """This rubric plus :func:`standard_guards` (unless it already has gates)."""
        if any(c.gate for c in self.criteria):
            return self
        return Rubric(self.criteria + standard_guards(topic))

    def with_judge(self, judge: JudgeFn) -> Rubric:
        """A copy whose judged criteria call ``judge``."""
        bound = [
            replace(c, check=replace(c.check, judge=judge))
            if isinstance(c.check, JudgeCheck)
            else c
            for c in self.criteria
        ]
        return Rubric(tuple(bound))

    def score(self, text: str, *, prompt: str = "", judge: JudgeFn | None = None) -> RubricScore:
        """Score ``text`` criterion by criterion (module docstring).

        Raises :class:`UnscorableError` when a judged criterion has no judge or gets no verdict
        (never a silent 0). Judges are not called on answers that fail a gate.
        """
        rubric = self.with_judge(judge) if judge is not None else self
        answer = Answer(text, prompt)
        checks: dict[str, Check] = {}
        for criterion in rubric.criteria:
            if criterion.gate:
                checks[criterion.name] = criterion.check(answer)
        gate = min((check.score for check in checks.values()), default=1.0)
        for criterion in rubric.criteria:
            if criterion.gate:
                continue
            if gate == 0.0 and criterion.judged:
                checks[criterion.name] = Check(0.0, "not judged: a gate failed")
            else:
                checks[criterion.name] = criterion.check(answer)
        scores = {c.name: checks[c.name].score * gate for c in self.criteria}
        total = sum(c.weight for c in self.criteria)
        reward = sum(c.weight * scores[c.name] for c in self.criteria) / total
        success = all(scores[c.name] >= 1.0 for c in self.criteria if c.required)
        return RubricScore(
            scores=scores,
            details={name: check.detail for name, check in checks.items()},
            reward=min(max(reward, 0.0), 1.0),
            success=success,
            gate=gate,
            failed=tuple(c.name for c in self.criteria if scores[c.name] < 1.0),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"criteria": [c.to_dict() for c in self.criteria]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | Sequence[Any]) -> Rubric:
        """Read ``{"criteria": [...]}`` or a bare list of criteria."""
        items = data.get("criteria") if isinstance(data, Mapping) else data
        if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
            raise ValueError("a rubric is a list of criteria or a mapping with 'criteria'")
        return cls(tuple(Criterion.from_dict(item) for item in items))


def standard_guards(topic: Sequence[str] = ()) -> tuple[Criterion, ...]:
    """The integrity gates: prose, no copy of the prompt and, given ``topic`` phrases, an
    on-topic gate (the answer mentions at least one of them).

    Their weight is 0: a gate adds nothing to an honest answer's reward (so an off-topic
    sentence cannot collect it), it only zeroes the reward of an answer that fails it. Their
    scores still appear among the components, for logging.
    """
    gates = [
        Criterion("integrity/prose", Prose(), weight=0.0, category="integrity", gate=True),
        Criterion("integrity/no_echo", NoEcho(), weight=0.0, category="integrity", gate=True),
    ]
    if topic:
        on_topic = Contains(tuple(topic), match="any")
        text = "Stay on the task: use its facts."
        gates.append(
            Criterion("integrity/on_topic", on_topic, 0.0, "integrity", gate=True, description=text)
        )
    return tuple(gates)


def load_rubrics(path: str | Path) -> list[Rubric]:
    """Read rubrics from JSONL (a rubric per line, or records with a ``"rubric"`` key) or
    YAML/JSON (one rubric, or a list of them). Errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"rubric file {str(path)!r} does not exist")
    if path.suffix == ".jsonl":
        return list(_jsonl_rubrics(path))
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if isinstance(data, list) and data and all(_looks_like_rubric(item) for item in data):
        return [Rubric.from_dict(item) for item in data]
    return [Rubric.from_dict(data)]


def _looks_like_rubric(item: Any) -> bool:
    return (isinstance(item, Mapping) and "criteria" in item) or isinstance(item, list)


def _jsonl_rubrics(path: Path) -> Iterable[Rubric]:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            yield Rubric.from_dict(
                record["rubric"] if isinstance(record, dict) and "rubric" in record else record
            )
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}:{number}: {error}") from None


__all__ = [
    "CHECKERS",
    "Answer",
    "BulletList",
    "Casing",
    "Check",
    "Checker",
    "Contains",
    "Criterion",
    "EndsWith",
    "Excludes",
    "Headings",
    "InOrder",
    "JsonSchema",
    "JudgeCheck",
    "JudgeFn",
    "LLMJudge",
    "NoEcho",
    "NumericFact",
    "ParagraphCount",
    "Placeholders",
    "Prose",
    "Regex",
    "Rubric",
    "RubricScore",
    "SentenceCount",
    "StartsWith",
    "TitleLine",
    "UnscorableError",
    "WordCount",
    "checker_from_spec",
    "load_rubrics",
    "standard_guards",
]
