"""A seeded knowledge graph of people, companies, cities, products and countries.

Every relation is *functional*: a subject has at most one object for it (one founder, one
birthplace, one employer...). A question is a chain of relations applied to an anchor entity,
so its answer is unique by construction; :func:`follow` re-derives it from any set of facts,
and the generator checks that the facts put into a context give exactly the gold answer.

Names are unique after normalisation, and no name is contained (on word boundaries) in
another, so that a name found in a text means one entity. "Twins" are deliberately similar
names (same surname, same company stem...) used by the tier-1 distractors.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from faker import Faker

from rlvr.rewards.multihop import normalize_answer as normalize

Kind = Literal["person", "company", "city", "product", "country", "year"]


@dataclass(frozen=True)
class Relation:
    """A typed, functional relation ``subject -> object``."""

    name: str
    subject: Kind
    object: Kind
    coverage: float = 1.0
    """Fraction of the subjects that have the relation (``acquired_by`` is partial)."""


RELATIONS: dict[str, Relation] = {
    r.name: r
    for r in (
        Relation("born_in", "person", "city"),
        Relation("works_at", "person", "company"),
        Relation("birth_year", "person", "year"),
        Relation("founded_by", "company", "person"),
        Relation("headquartered_in", "company", "city"),
        Relation("ceo", "company", "person"),
        Relation("founded_year", "company", "year"),
        Relation("acquired_by", "company", "company", coverage=0.4),
        Relation("made_by", "product", "company"),
        Relation("launch_year", "product", "year"),
        Relation("located_in", "city", "country"),
        Relation("mayor", "city", "person"),
    )
}
"""Every relation of the graph, by name (in a fixed order)."""

COUNTRIES = (
    "Argentina", "Australia", "Austria", "Belgium", "Brazil", "Canada", "Chile", "Colombia",
    "Croatia", "Denmark", "Egypt", "Estonia", "Finland", "France", "Germany", "Ghana",
    "Greece", "Hungary", "Iceland", "India", "Indonesia", "Ireland", "Italy", "Japan",
    "Kenya", "Latvia", "Lithuania", "Malaysia", "Mexico", "Morocco", "Nepal", "Nigeria",
    "Norway", "Peru", "Poland", "Portugal", "Romania", "Senegal", "Singapore", "Slovenia",
    "Spain", "Sweden", "Switzerland", "Thailand", "Tunisia", "Turkey", "Uruguay", "Vietnam",
)  # fmt: skip
COMPANY_SUFFIXES = (
    "Dynamics", "Systems", "Labs", "Holdings", "Industries", "Logistics", "Analytics",
    "Robotics", "Foods", "Media", "Partners", "Works", "Energy", "Textiles", "Motors",
    "Pharma", "Capital", "Networks", "Studios", "Foundry",
)  # fmt: skip
CITY_SUFFIXES = ("ton", "ville", "burg", "field", "ford", "port", "haven", "mouth", "stead")
PRODUCT_STEMS = (
    "Nimbus", "Orbit", "Falcon", "Quartz", "Ember", "Vertex", "Cobalt", "Zephyr", "Lumen",
    "Atlas", "Pulse", "Summit", "Nova", "Cipher", "Harbor", "Juniper", "Meridian", "Onyx",
    "Prism", "Sable", "Tundra", "Vega", "Willow", "Xenon", "Aurora", "Beacon", "Canyon",
    "Delta", "Echo", "Fjord", "Glacier", "Helix", "Ion", "Kestrel", "Lotus", "Mistral",
)  # fmt: skip
PRODUCT_MODELS = ("One", "Pro", "Mini", "Max", "Air", "Plus", "Lite", "Prime", "Neo", "Go")


@dataclass(frozen=True)
class Entity:
    """One named entity; ``stem`` is the part its twins share."""

    name: str
    kind: Kind
    stem: str


@dataclass(frozen=True)
class Fact:
    """One edge ``subject --relation--> object`` (objects are names, or years as text)."""

    subject: str
    relation: str
    object: str


class NameRegistry:
    """Hands out names that are unique and never contained in one another (word-wise)."""

    def __init__(self) -> None:
        self._names: set[str] = set()
        self._spans: set[str] = set()

    def claim(self, name: str) -> bool:
        """Reserve ``name``; ``False`` (nothing reserved) when it would clash."""
        tokens = normalize(name).split()
        if not tokens:
            return False
        spans = {
            " ".join(tokens[i:j]) for i in range(len(tokens)) for j in range(i + 1, len(tokens) + 1)
        }
        if " ".join(tokens) in self._spans or spans & self._names:
            return False
        self._names.add(" ".join(tokens))
        self._spans |= spans
        return True


class Graph:
    """Entities and functional facts, built incrementally by :func:`build_graph`."""

    def __init__(self) -> None:
        self.entities: dict[str, Entity] = {}
        self.by_kind: dict[Kind, list[str]] = {}
        self.position: dict[str, int] = {}
        """Index of each entity in its ``by_kind`` list."""
        self.out: dict[str, dict[str, str]] = {}
        self.incoming: dict[str, list[Fact]] = {}
        self.facts: list[Fact] = []
        self.names = NameRegistry()

    def add_entity(self, entity: Entity) -> None:
        self.entities[entity.name] = entity
        same_kind = self.by_kind.setdefault(entity.kind, [])
        self.position[entity.name] = len(same_kind)
        same_kind.append(entity.name)
        self.out[entity.name] = {}

    def add_fact(self, fact: Fact) -> None:
        if fact.relation in self.out[fact.subject]:
            raise ValueError(f"{fact.subject!r} already has {fact.relation!r}: not functional")
        self.out[fact.subject][fact.relation] = fact.object
        self.incoming.setdefault(fact.object, []).append(fact)
        self.facts.append(fact)

    def facts_of(self, name: str) -> list[Fact]:
        """The facts whose subject is ``name``, in relation order."""
        return [Fact(name, rel, obj) for rel, obj in self.out.get(name, {}).items()]


# ---------------------------------------------------------------- names


def _person(rng: random.Random, fake: Faker, like: Entity | None) -> tuple[str, str]:
    if like is not None and rng.random() < 0.5:
        return f"{fake.first_name()} {like.stem}", like.stem  # same surname
    if like is not None:
        first = like.name.split()[0]
        last = fake.last_name()
        return f"{first} {last}", last
    last = fake.last_name()
    return f"{fake.first_name()} {last}", last


def _company(rng: random.Random, fake: Faker, like: Entity | None) -> tuple[str, str]:
    stem = like.stem if like is not None else fake.last_name()
    return f"{stem} {rng.choice(COMPANY_SUFFIXES)}", stem


def _city(rng: random.Random, fake: Faker, like: Entity | None) -> tuple[str, str]:
    stem = like.stem if like is not None else fake.first_name()
    name = f"{stem}{rng.choice(CITY_SUFFIXES)}"
    if rng.random() < 0.3:
        name = f"{rng.choice(('North', 'South', 'East', 'West', 'New', 'Lake'))} {name}"
    return name, stem


def _product(rng: random.Random, fake: Faker, like: Entity | None) -> tuple[str, str]:
    stem = like.stem if like is not None else rng.choice(PRODUCT_STEMS)
    model = rng.choice(PRODUCT_MODELS) if rng.random() < 0.5 else str(rng.randint(2, 99))
    return f"{stem} {model}", stem


_NAMERS = {"person": _person, "company": _company, "city": _city, "product": _product}


def new_entity(
    graph: Graph, kind: Kind, rng: random.Random, fake: Faker, like: Entity | None = None
) -> Entity | None:
    """A fresh entity of ``kind`` (similar to ``like`` when given), or ``None`` after retries."""
    namer = _NAMERS[kind]
    for _ in range(40):
        name, stem = namer(rng, fake, like)
        if graph.names.claim(name):
            entity = Entity(name, kind, stem)
            graph.add_entity(entity)
            return entity
    return None


# ---------------------------------------------------------------- graph


def give_facts(graph: Graph, name: str, rng: random.Random) -> None:
    """Draw every relation of entity ``name`` that it does not have yet."""
    entity = graph.entities[name]
    for relation in RELATIONS.values():
        if relation.subject != entity.kind or relation.name in graph.out[name]:
            continue
        if relation.coverage < 1.0 and rng.random() >= relation.coverage:
            continue
        obj = _draw_object(graph, relation, name, rng)
        if obj is not None:
            graph.add_fact(Fact(name, relation.name, obj))


def _draw_object(graph: Graph, relation: Relation, subject: str, rng: random.Random) -> str | None:
    if relation.object == "year":
        low, high = {"person": (1935, 2004), "company": (1850, 2019)}.get(
            relation.subject, (1975, 2024)
        )
        return str(rng.randint(low, high))
    pool = graph.by_kind.get(relation.object, [])
    limit = len(pool)
    if relation.name == "acquired_by":  # acquirers come earlier: no acquisition cycles
        limit = graph.position[subject]
    if limit == 0 or (limit == 1 and pool[0] == subject):
        return None
    while True:  # rejection sampling: O(1) per draw instead of filtering the pool
        choice = pool[rng.randrange(limit)]
        if choice != subject:
            return choice


def build_graph(n_entities: int, rng: random.Random, fake: Faker) -> Graph:
    """A graph of about ``n_entities`` entities (40% people, 25% companies, ...)."""
    if n_entities < 20:
        raise ValueError(f"a graph needs at least 20 entities, got {n_entities}")
    graph = Graph()
    countries = rng.sample(COUNTRIES, min(len(COUNTRIES), max(4, n_entities // 20)))
    for country in countries:
        graph.names.claim(country)
        graph.add_entity(Entity(country, "country", country))
    shares: tuple[tuple[Kind, float], ...] = (
        ("person", 0.40),
        ("company", 0.25),
        ("city", 0.17),
        ("product", 0.18),
    )
    for kind, share in shares:
        for _ in range(max(3, round(n_entities * share))):
            new_entity(graph, kind, rng, fake)
    for kind, _ in shares:
        for name in list(graph.by_kind.get(kind, [])):
            give_facts(graph, name, rng)
    return graph


# ---------------------------------------------------------------- walks


@dataclass(frozen=True)
class Path:
    """A question's chain: ``anchor -r1-> e1 -r2-> ... -rk-> answer``."""

    anchor: str
    relations: tuple[str, ...]
    entities: tuple[str, ...]
    """The gold entity of every hop, ``e1 .. ek``; the last one is the answer."""

    @property
    def answer(self) -> str:
        return self.entities[-1]

    @property
    def hops(self) -> int:
        return len(self.relations)

    def facts(self) -> tuple[Fact, ...]:
        """The gold facts, one per hop."""
        subjects = (self.anchor, *self.entities[:-1])
        return tuple(
            Fact(s, r, o) for s, r, o in zip(subjects, self.relations, self.entities, strict=True)
        )


def random_walk(graph: Graph, hops: int, rng: random.Random, tries: int = 200) -> Path:
    """A simple path of exactly ``hops`` functional hops; only the last may end in a year."""
    starts = [n for n in graph.entities if graph.out[n]]
    for _ in range(tries):
        path = _try_walk(graph, rng.choice(starts), hops, rng)
        if path is not None:
            return path
    raise ValueError(f"no {hops}-hop walk found in a graph of {len(graph.entities)} entities")


def _try_walk(graph: Graph, start: str, hops: int, rng: random.Random) -> Path | None:
    visited = [start]
    relations: list[str] = []
    current = start
    for hop in range(hops):
        last = hop == hops - 1
        options = [
            (rel, obj)
            for rel, obj in graph.out[current].items()
            if obj not in visited
            and (last or (RELATIONS[rel].object != "year" and graph.out.get(obj)))
        ]
        if not options:
            return None
        rel, current = rng.choice(options)
        relations.append(rel)
        visited.append(current)
    return Path(start, tuple(relations), tuple(visited[1:]))


def follow(anchor: str, relations: Sequence[str], facts: Iterable[Fact]) -> list[set[str]]:
    """The entities reached at every hop of the chain over ``facts`` (sets, since a repeated
    fact would branch); the last set holds every answer the facts support."""
    table: dict[tuple[str, str], set[str]] = {}
    for fact in facts:
        table.setdefault((normalize(fact.subject), fact.relation), set()).add(fact.object)
    current, reached = {anchor}, []
    for relation in relations:
        current = {o for s in current for o in table.get((normalize(s), relation), set())}
        reached.append(current)
    return reached


def check_unique(path: Path, facts: Iterable[Fact]) -> None:
    """Raise ``ValueError`` unless every hop over ``facts`` reaches exactly the gold entity
    (so no other path, not even a dead end, starts from the question)."""
    reached = follow(path.anchor, path.relations, facts)
    if reached != [{entity} for entity in path.entities]:
        shown = [sorted(hop) for hop in reached]
        raise ValueError(f"question over {path} is not unique: hops reach {shown}")
