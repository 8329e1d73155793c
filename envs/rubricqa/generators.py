"""RubricQA tasks from a seed: facts to use, figures to compute, rules to obey, by difficulty.

A task is a pure function of ``(rng, level, fake)``. Its rubric grows with the level:

====  =====================================================================================
0     2 facts to mention, a word range 80 wide, 1 structural rule
1     3 facts, 1 computed figure, a range 60 wide, 2 rules
2     4 facts, 1 figure, 1 out-of-date fact (an update overrides it), a range 50 wide, 3 rules
3     5 facts, 2 figures, 2 updates and a distractor note, a range 40 wide, 4 rules
      (products may instead ask for JSON matching a schema)
4+    one more fact, rule and update per level, the range 5 narrower per level (down to 20)
====  =====================================================================================

Structural rules (chosen among those that suit the family): opening and closing phrases,
a title line, markdown headings, a bulleted list, a paragraph range, square-bracket
placeholders, a casing rule, a sentence range, banned words, and an order of mention.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from faker import Faker

from rlvr.envs.rubricqa.families import FAMILIES, Fact, Figure, Material
from rlvr.rewards.rubric import (
    BulletList,
    Casing,
    Contains,
    Criterion,
    EndsWith,
    Excludes,
    Headings,
    InOrder,
    JsonSchema,
    NumericFact,
    ParagraphCount,
    Placeholders,
    Rubric,
    SentenceCount,
    StartsWith,
    TitleLine,
    WordCount,
)
from rlvr.rewards.rubric_checks import CasingMode

BANNED = ("very", "really", "basically", "amazing", "awesome", "literally", "stuff", "super")
OTHER_EVENTS = ("marketing offsite", "winter fair", "supplier audit", "charity run")


@dataclass(frozen=True)
class RubricTask:
    """A generated task: what the writer sees, and the rubric that scores the answer."""

    family: str
    instruction: str
    topic: str
    facts: tuple[Fact, ...]
    """The facts as first listed (some values may be out of date)."""
    updates: tuple[Fact, ...]
    """Corrections in order; the last one for a label wins."""
    notes: tuple[Fact, ...]
    """Facts about something else, not to be used."""
    rubric: Rubric
    """Content and structure criteria (the env adds the integrity gates)."""

    @property
    def current(self) -> tuple[Fact, ...]:
        """The facts with every update applied, in the listed order."""
        latest = {fact.label: fact.value for fact in self.updates}
        return tuple(Fact(f.label, latest.get(f.label, f.value)) for f in self.facts)


def level_size(level: int) -> tuple[int, int, int, int]:
    """``(facts, figures, updates, rules)`` at ``level``."""
    if level < 4:
        return ((2, 0, 0, 1), (3, 1, 0, 2), (4, 1, 1, 3), (5, 2, 2, 4))[level]
    extra = level - 3
    return 5 + extra, 2, 2 + extra, 4 + extra


def word_width(level: int) -> int:
    return {0: 80, 1: 60, 2: 50, 3: 40}.get(level, max(20, 40 - 5 * (level - 3)))


def generate(rng: random.Random, level: int, fake: Faker, family: str | None = None) -> RubricTask:
    """One task at ``level``; the family is drawn uniformly unless given."""
    if level < 0:
        raise ValueError(f"level must be >= 0, got {level}")
    name = family if family is not None else rng.choice(sorted(FAMILIES))
    if name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; known: {sorted(FAMILIES)}")
    material = FAMILIES[name](rng, fake)
    n_facts, n_figures, n_updates, n_rules = level_size(level)
    json_mode = level >= 3 and "json" in material.layouts and rng.random() < 0.5
    rules = pick_rules(rng, material, n_rules, json_mode=json_mode)
    if "json" in rules:
        shown = list(material.facts)
    else:
        shown = pick_facts(rng, material, n_facts, force_order="order" in rules)
        shown = ensure_movable(rng, material, shown) if n_updates else shown
    facts, updates, notes = distract(rng, material, shown, n_updates, with_notes=level >= 3)
    figures = material.figures[: 1 if "json" in rules else n_figures]
    criteria = content_criteria(facts, updates, notes, figures, json_mode="json" in rules)
    criteria += rule_criteria(rng, material, rules, level, facts, figures)
    rubric = Rubric(tuple(criteria))
    return RubricTask(name, material.instruction, material.topic, facts, updates, notes, rubric)


def pick_rules(rng: random.Random, material: Material, count: int, *, json_mode: bool) -> list[str]:
    """Structural rules for the task, without conflicting pairs."""
    if json_mode:
        return ["json", "banned"] if count > 4 else ["json"]
    pool = [rule for rule in material.layouts if rule != "json"]
    chosen = rng.sample(pool, min(count, len(pool)))
    if "opening" in chosen and "title" in chosen:
        chosen.remove("title")
    return chosen


def pick_facts(
    rng: random.Random, material: Material, count: int, *, force_order: bool
) -> list[Fact]:
    """``count`` facts in listed order (every ordered one too when the order rule is on)."""
    facts = list(material.facts)
    forced = [f for f in facts if force_order and f.label in material.ordered]
    others = [f for f in facts if f not in forced]
    extra = rng.sample(others, max(0, min(len(others), count - len(forced))))
    return [f for f in facts if f in forced or f in extra]


def ensure_movable(rng: random.Random, material: Material, shown: list[Fact]) -> list[Fact]:
    """``shown`` with at least one fact that an update can make out of date (swapped in for
    a fact outside the order rule, so the count stays)."""
    if any(material.alternates.get(f.label) for f in shown):
        return shown
    movable = [f for f in material.facts if material.alternates.get(f.label)]
    if not movable:
        return shown
    chosen = rng.choice(movable)
    free = [f for f in shown if f.label not in material.ordered]
    dropped = rng.choice(free) if free else None
    return [f for f in material.facts if (f in shown and f != dropped) or f == chosen]


def distract(
    rng: random.Random, material: Material, shown: list[Fact], n_updates: int, *, with_notes: bool
) -> tuple[tuple[Fact, ...], tuple[Fact, ...], tuple[Fact, ...]]:
    """Listed facts (with out-of-date values), updates, and distractor notes."""
    movable = [f for f in shown if material.alternates.get(f.label)]
    listed, updates, notes = list(shown), [], []
    for fact in movable:
        if n_updates <= 0:
            notes.append(fact)
            continue
        olds = material.alternates[fact.label][: min(n_updates, 2)]
        n_updates -= len(olds)
        listed[listed.index(fact)] = Fact(fact.label, olds[0])
        updates += [Fact(fact.label, value) for value in (*olds[1:], fact.value)]
    if not with_notes or not notes:
        return tuple(listed), tuple(updates), ()
    event = rng.choice(OTHER_EVENTS)
    spare = [Fact(f"{f.label} of the {event}", material.alternates[f.label][0]) for f in notes]
    return tuple(listed), tuple(updates), tuple(spare[:2])


def content_criteria(
    facts: Sequence[Fact],
    updates: Sequence[Fact],
    notes: Sequence[Fact],
    figures: Sequence[Figure],
    *,
    json_mode: bool,
) -> list[Criterion]:
    """Mention the current facts, state the figures, avoid stale values and notes."""
    latest = {fact.label: fact.value for fact in updates}
    current = [Fact(f.label, latest.get(f.label, f.value)) for f in facts]
    if json_mode:
        current = [f for f in current if f.label not in ("price", "discount", "warranty")]
    labels = ", ".join(f"the {f.label}" for f in current)
    mention = Contains(tuple(dict.fromkeys(f.value for f in current)))
    out = [
        Criterion(
            "facts", mention, weight=3, category="facts", description=f"Use these facts: {labels}."
        )
    ]
    for fig in figures:
        check = NumericFact(fig.value, fig.cue, tolerance="0.01")
        text = (
            f'Give the {fig.cue}, computed as {fig.expression}, right after the words "{fig.cue}".'
        )
        out.append(
            Criterion(f"figure/{fig.cue}", check, weight=2, category="facts", description=text)
        )
    stale = [u.value for u in updates if u.value not in latest.values()]
    stale += [f.value for f in facts if f.label in latest and f.value != latest[f.label]]
    stale += [note.value for note in notes]
    if stale:
        text = "Do not mention out-of-date values or anything from the other notes."
        check = Excludes(tuple(dict.fromkeys(stale)))
        out.append(Criterion("no_outdated", check, weight=2, category="facts", description=text))
    return out


def rule_criteria(
    rng: random.Random,
    material: Material,
    rules: Sequence[str],
    level: int,
    facts: Sequence[Fact],
    figures: Sequence[Figure],
) -> list[Criterion]:
    """One criterion per structural rule, plus the word (and sentence) range."""
    if "json" in rules:
        out = [json_criterion(rng, material)]
        if "banned" in rules:
            out.append(banned(rng))
        return out
    low, high = word_range(rng, material, rules, level, facts, figures)
    out = [Criterion("length", WordCount(low, high), category="length")]
    ctx = RuleContext(tuple(rules), low, high, tuple(facts))
    return out + [RULES[rule](rng, material, ctx) for rule in rules]


def word_range(
    rng: random.Random,
    material: Material,
    rules: Sequence[str],
    level: int,
    facts: Sequence[Fact],
    figures: Sequence[Figure],
) -> tuple[int, int]:
    """A range that leaves room above a generous estimate of the required content."""
    need = sum(len(f.value.split()) + 7 for f in facts) + 9 * len(figures) + 16
    need += 12 * ("title" in rules) + 8 * ("headings" in rules) + 10 * ("placeholders" in rules)
    need += len(material.opening.split()) + len(material.closing.split())
    low = need + rng.randint(10, 25)
    return low, low + word_width(level)


def banned(rng: random.Random) -> Criterion:
    words = tuple(rng.sample(BANNED, 2))
    return Criterion("banned_words", Excludes(words), category="style", required=False)


def json_criterion(rng: random.Random, material: Material) -> Criterion:
    length = rng.randint(160, 240)
    schema = {
        "type": "object",
        "required": ["product_name", "price", "discounted_price", "features", "description"],
        "additionalProperties": False,
        "properties": {
            "product_name": {"type": "string"},
            "price": {"type": "number"},
            "discounted_price": {"type": "number"},
            "features": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 3,
                "maxItems": 3,
            },
            "description": {"type": "string", "minLength": length, "maxLength": length + 400},
        },
    }
    check = JsonSchema(schema)
    note = (
        " Fill each key from the fact or figure of the same name (spaces written as "
        'underscores); "description" is prose that uses the facts.'
    )
    return Criterion(
        "json", check, weight=2, category="format", description=check.describe() + note
    )


@dataclass(frozen=True)
class RuleContext:
    """What a rule builder may look at besides the rng and the family material."""

    rules: tuple[str, ...]
    low: int
    high: int
    facts: tuple[Fact, ...]


def _opening(rng: random.Random, material: Material, ctx: RuleContext) -> Criterion:
    return Criterion("opening", StartsWith(material.opening), category="format")


def _closing(rng: random.Random, material: Material, ctx: RuleContext) -> Criterion:
    return Criterion("closing", EndsWith(material.closing), category="format")


def _title(rng: random.Random, material: Material, ctx: RuleContext) -> Criterion:
    return Criterion("title", TitleLine(material.title_prefix, 12), category="format")


def _headings(rng: random.Random, material: Material, ctx: RuleContext) -> Criterion:
    return Criterion("headings", Headings(material.headings), category="format")


def _bullets(rng: random.Random, material: Material, ctx: RuleContext) -> Criterion:
    count = min(3, len(ctx.facts))
    top = count if rng.random() < 0.5 else count + 2
    return Criterion("bullets", BulletList(count, top), category="format")


def _paragraphs(rng: random.Random, material: Material, ctx: RuleContext) -> Criterion:
    fixed = sum(rule in ctx.rules for rule in ("opening", "closing", "title", "bullets"))
    first = fixed + 1 + rng.randint(0, 1)
    check = ParagraphCount(first, first + rng.choice([0, 1, 2]))
    return Criterion("paragraphs", check, category="format")


def _placeholders(rng: random.Random, material: Material, ctx: RuleContext) -> Criterion:
    return Criterion("placeholders", Placeholders(material.placeholders), category="style")


def _casing(rng: random.Random, material: Material, ctx: RuleContext) -> Criterion:
    modes: list[CasingMode] = ["lower", "upper", "sentence"]
    mode = "sentence" if "placeholders" in ctx.rules else rng.choice(modes)
    return Criterion("casing", Casing(mode), category="style", required=False)


def _sentences(rng: random.Random, material: Material, ctx: RuleContext) -> Criterion:
    check = SentenceCount(max(2, ctx.low // 20), ctx.high // 5 + 6)
    return Criterion("sentences", check, category="length")


def _banned(rng: random.Random, material: Material, ctx: RuleContext) -> Criterion:
    return banned(rng)


def _order(rng: random.Random, material: Material, ctx: RuleContext) -> Criterion:
    values = tuple(f.value for f in ctx.facts if f.label in material.ordered)
    return Criterion("order", InOrder(values), weight=2, category="facts")


RULES: dict[str, Callable[[random.Random, Material, RuleContext], Criterion]] = {
    "opening": _opening,
    "closing": _closing,
    "title": _title,
    "headings": _headings,
    "bullets": _bullets,
    "paragraphs": _paragraphs,
    "placeholders": _placeholders,
    "casing": _casing,
    "sentences": _sentences,
    "banned": _banned,
    "order": _order,
}
"""Structural rule name -> criterion builder."""
