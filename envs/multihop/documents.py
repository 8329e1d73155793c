"""Passages, questions and tiered distractors for ``rlvr/MultiHop-v0``.

One passage states one fact: its title is the fact's subject, its first sentence the fact
(from one of several templates per relation), and an optional second sentence is neutral
colour about the subject (a job, a motto) that states no relation.

The context holds the gold passages (one per hop) plus two tiers of distractors, shuffled:

* **tier 1** (high confusability): facts about the entities of the gold path through other
  relations (they answer one-hop-off questions), facts about look-alike "twin" entities (same
  surname, same company stem...) through the same relations, and facts that point at the path
  entities;
* **tier 2** (low confusability): random facts of the rest of the graph.

Tier 1 may use up to ``TIER1_SHARE`` of the space the gold passages leave; tier 2 fills the
rest up to the target length.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from faker import Faker

from rlvr.envs.multihop.graph import Entity, Fact, Graph, Path, give_facts, new_entity

Tier = Literal["gold", "tier1", "tier2"]

TIER1_SHARE = 0.4
"""At most this share of the non-gold space goes to tier-1 distractors."""

TEMPLATES: dict[str, tuple[str, ...]] = {
    "born_in": (
        "{s} was born in the city of {o}.",
        "{s} is a native of the city of {o}.",
        "The birthplace of {s} is {o}.",
    ),
    "works_at": (
        "{s} works at {o}.",
        "{s} is employed by {o}.",
        "The employer of {s} is {o}.",
    ),
    "birth_year": (
        "{s} was born in the year {o}.",
        "The birth year of {s} is {o}.",
    ),
    "founded_by": (
        "{s} was founded by {o}.",
        "The founder of {s} is {o}.",
        "{o} founded the company {s}.",
    ),
    "headquartered_in": (
        "{s} is headquartered in {o}.",
        "The headquarters of {s} are in {o}.",
        "{s} has its head office in {o}.",
    ),
    "ceo": (
        "The chief executive of {s} is {o}.",
        "{o} serves as chief executive of {s}.",
        "{s} is run by its chief executive {o}.",
    ),
    "founded_year": (
        "{s} was founded in the year {o}.",
        "The founding year of {s} is {o}.",
    ),
    "acquired_by": (
        "{s} was acquired by {o}.",
        "{o} acquired {s} in a widely reported deal.",
        "The company that acquired {s} is {o}.",
    ),
    "made_by": (
        "{s} is made by {o}.",
        "{o} makes the product {s}.",
        "The maker of {s} is {o}.",
    ),
    "launch_year": (
        "{s} was launched in the year {o}.",
        "The launch year of {s} is {o}.",
    ),
    "located_in": (
        "{s} is a city in the country of {o}.",
        "{s} lies in {o}.",
        "The country of {s} is {o}.",
    ),
    "mayor": (
        "The mayor of {s} is {o}.",
        "{o} is the current mayor of {s}.",
        "{s} elected {o} as its mayor.",
    ),
}
"""Passage templates per relation; ``{s}`` is the subject (the title), ``{o}`` the object.
With the subject fixed, no template matches another template's sentence (tested)."""

KEYWORDS: dict[str, str] = {
    "born_in": "born birthplace native city",
    "works_at": "works employed employer",
    "birth_year": "born birth year",
    "founded_by": "founded founder",
    "headquartered_in": "headquartered headquarters head office",
    "ceo": "chief executive",
    "founded_year": "founded founding year",
    "acquired_by": "acquired",
    "made_by": "made maker makes",
    "launch_year": "launched launch year",
    "located_in": "city country lies",
    "mayor": "mayor",
}
"""Words that the templates of a relation use, for search queries."""

PHRASES: dict[str, str] = {
    "born_in": "the city where {x} was born",
    "works_at": "the company that employs {x}",
    "founded_by": "the founder of {x}",
    "headquartered_in": "the city where {x} is headquartered",
    "ceo": "the chief executive of {x}",
    "acquired_by": "the company that acquired {x}",
    "made_by": "the company that makes {x}",
    "located_in": "the country where {x} lies",
    "mayor": "the mayor of {x}",
}
"""Noun phrases for inner hops (relations that end in an entity)."""

QUESTIONS: dict[str, str] = {
    "born_in": "In which city was {x} born?",
    "works_at": "Which company does {x} work for?",
    "birth_year": "In what year was {x} born?",
    "founded_by": "Who founded {x}?",
    "headquartered_in": "In which city is {x} headquartered?",
    "ceo": "Who is the chief executive of {x}?",
    "founded_year": "In what year was {x} founded?",
    "acquired_by": "Which company acquired {x}?",
    "made_by": "Which company makes {x}?",
    "launch_year": "In what year was {x} launched?",
    "located_in": "In which country does {x} lie?",
    "mayor": "Who is the mayor of {x}?",
}
"""Question forms for the last hop."""

_COLOUR: dict[str, tuple[str, ...]] = {
    "person": (
        "The profession listed for {s} is {job}.",
        "Friends describe {s} as a keen {hobby}.",
    ),
    "company": ("{s} describes its work as {phrase}.", "{s} is known for {phrase}."),
    "city": ("{s} is known for its {sight}.", "Visitors to {s} often mention its {sight}."),
    "product": ("{s} is marketed as {phrase}.", "Reviewers praised {s} for its {feature}."),
    "country": ("",),
}
_HOBBIES = ("gardener", "chess player", "cyclist", "painter", "hiker", "baker", "sailor")
_SIGHTS = ("old harbour", "covered market", "botanical garden", "stone bridge", "river walk")
_FEATURES = ("battery life", "quiet design", "sturdy frame", "clear display", "low price")


@dataclass(frozen=True)
class Passage:
    """One document of the context; ``tier`` is hidden from the agent."""

    doc_id: str
    title: str
    text: str
    tier: Tier


def question_for(path: Path) -> str:
    """The natural-language question of a path, innermost hop first."""
    phrase = path.anchor
    for relation in path.relations[:-1]:
        phrase = PHRASES[relation].format(x=phrase)
    text = QUESTIONS[path.relations[-1]].format(x=phrase)
    return text[0].upper() + text[1:]


def render_fact(fact: Fact, kind: str, rng: random.Random, fake: Faker) -> str:
    """The text of the passage stating ``fact`` (fact sentence, then neutral colour)."""
    sentence = rng.choice(TEMPLATES[fact.relation]).format(s=fact.subject, o=fact.object)
    colour = rng.choice(_COLOUR.get(kind, ("",)))
    if not colour or rng.random() < 0.3:
        return sentence
    extra = colour.format(
        s=fact.subject,
        job=fake.job().split(",")[0].lower(),
        hobby=rng.choice(_HOBBIES),
        phrase=fake.catch_phrase().lower(),
        sight=rng.choice(_SIGHTS),
        feature=rng.choice(_FEATURES),
    )
    return f"{sentence} {extra}"


# ---------------------------------------------------------------- distractors


def add_twins(
    graph: Graph, path: Path, rng: random.Random, fake: Faker, copies: int = 1
) -> list[str]:
    """Give each path entity ``copies`` look-alikes; a look-alike subject's same-relation fact
    points at a look-alike of the gold object (a wrong path that reads like the right one)."""
    made: list[str] = []
    for _ in range(copies):
        made += _twin_path(graph, path, rng, fake)
    return made


def _twin_path(graph: Graph, path: Path, rng: random.Random, fake: Faker) -> list[str]:
    subjects = (path.anchor, *path.entities[:-1])
    twins: dict[str, str] = {}
    for name in (*subjects, path.answer):
        entity = graph.entities.get(name)
        if entity is None or entity.kind == "country":
            continue
        twin = new_entity(graph, entity.kind, rng, fake, like=entity)
        if twin is not None:
            twins[name] = twin.name
    for subject, relation, obj in zip(subjects, path.relations, path.entities, strict=True):
        twin = twins.get(subject)
        entity = graph.entities.get(obj)
        target = twins.get(obj) or (obj if entity is None or entity.kind == "country" else None)
        if twin is not None and target is not None and target != twin:
            graph.add_fact(Fact(twin, relation, target))
    for twin in twins.values():
        give_facts(graph, twin, rng)
    return list(twins.values())


def tier1_candidates(graph: Graph, path: Path, twins: Sequence[str]) -> list[Fact]:
    """Confusable facts, most confusable first, without duplicates or gold facts."""
    incoming = 6 * max(1, len(twins) // max(1, path.hops + 1))
    gold = set(path.facts())
    on_path = (path.anchor, *path.entities)
    ordered: list[Fact] = []
    for name in on_path:  # one-hop-off: the path entities through other relations
        ordered += graph.facts_of(name)
    for twin in twins:  # look-alikes through the same relations
        ordered += graph.facts_of(twin)
    for name in on_path:  # facts that point at the path entities
        ordered += graph.incoming.get(name, [])[:incoming]
    seen: set[Fact] = set()
    unique = []
    for fact in ordered:
        if fact not in gold and fact not in seen:
            seen.add(fact)
            unique.append(fact)
    return unique


class Renderer:
    """Renders each fact's passage text once (seeded), and measures its size in the context."""

    def __init__(self, graph: Graph, rng: random.Random, fake: Faker, id_width: int = 4):
        self.graph, self.rng, self.fake = graph, rng, fake
        self.texts: dict[Fact, str] = {}
        self.id_width = id_width

    def text(self, fact: Fact) -> str:
        if fact not in self.texts:
            entity: Entity | None = self.graph.entities.get(fact.subject)
            kind = entity.kind if entity is not None else "country"
            self.texts[fact] = render_fact(fact, kind, self.rng, self.fake)
        return self.texts[fact]

    def size(self, fact: Fact) -> int:
        """Characters the passage adds: ``[D0001] title``, newline, text, blank line."""
        return self.id_width + 4 + len(fact.subject) + 1 + len(self.text(fact)) + 2


def select_facts(
    path: Path, twins: Sequence[str], budget: int, renderer: Renderer
) -> list[tuple[Fact, Tier]]:
    """Gold facts, then tier-1 and tier-2 facts until the context reaches ``budget`` chars."""
    graph, rng = renderer.graph, renderer.rng
    chosen: list[tuple[Fact, Tier]] = [(fact, "gold") for fact in path.facts()]
    used = sum(renderer.size(f) for f in path.facts())
    tier1 = tier1_candidates(graph, path, twins)
    cap = used + TIER1_SHARE * max(0, budget - used)
    for fact in tier1:
        cost = renderer.size(fact)
        if used + cost > cap:
            break
        chosen.append((fact, "tier1"))
        used += cost
    taken = {fact for fact, _ in chosen} | set(tier1)
    touched = set(path.entities) | {path.anchor} | set(twins)
    pool = [
        f
        for f in graph.facts
        if f not in taken and f.subject not in touched and f.object not in touched
    ]
    rng.shuffle(pool)
    for fact in pool:
        cost = renderer.size(fact)
        if used + cost > budget:
            break
        chosen.append((fact, "tier2"))
        used += cost
    return chosen


def make_passages(chosen: Sequence[tuple[Fact, Tier]], renderer: Renderer) -> tuple[Passage, ...]:
    """Shuffle the chosen facts; doc ids follow the shuffled order."""
    order = list(chosen)
    renderer.rng.shuffle(order)
    width = max(3, len(str(len(order))))
    return tuple(
        Passage(f"D{index:0{width}d}", fact.subject, renderer.text(fact), tier)
        for index, (fact, tier) in enumerate(order, start=1)
    )


def render_documents(passages: Sequence[Passage]) -> str:
    """The documents block of the context: ``[doc_id] title`` header, then the text."""
    return "\n\n".join(f"[{p.doc_id}] {p.title}\n{p.text}" for p in passages)
