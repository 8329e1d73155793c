"""One multi-hop episode: the question, its gold path and the tiered passages of the context.

:func:`generate_episode` is a pure function of ``rng`` and the (seeded) ``fake``: it builds a
graph sized to the target context length, walks a path of ``hops`` hops, adds look-alike
twins, picks gold, tier-1 and tier-2 facts, renders and shuffles them, and checks that the
chosen facts give the gold answer and no other.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from faker import Faker

from rlvr.envs.multihop.documents import (
    Passage,
    Renderer,
    add_twins,
    make_passages,
    question_for,
    render_documents,
    select_facts,
)
from rlvr.envs.multihop.graph import Fact, Path, build_graph, check_unique, random_walk

CONTEXT_CHARS = (1_000, 3_000, 10_000, 30_000, 100_000, 200_000, 400_000, 800_000)
"""Target context length in characters at difficulty 0, 1, 2, ...; the last one repeats."""

CHARS_PER_ENTITY = 220
"""Graph size: one entity per this many characters of target context (plus a floor)."""


def context_chars_for(difficulty: int) -> int:
    """The target context length (characters) of a difficulty level."""
    return CONTEXT_CHARS[min(difficulty, len(CONTEXT_CHARS) - 1)]


def hops_for(difficulty: int, max_hops: int) -> int:
    """2 hops at levels 0-1, 3 at 2-3, 4 at 4-5, ... up to ``max_hops``."""
    return min(2 + difficulty // 2, max_hops)


def twins_for(budget: int) -> int:
    """Look-alikes per path entity: 1 below 25k characters, one more per 25k, at most 6."""
    return min(6, 1 + budget // 25_000)


@dataclass(frozen=True)
class Episode:
    """Everything one generated task needs; ``passages`` carry their hidden tier."""

    question: str
    path: Path
    passages: tuple[Passage, ...]
    context_entities: tuple[str, ...]
    """Every entity named by a passage (titles and entity objects), for the stuffing guard."""

    @property
    def documents(self) -> str:
        return render_documents(self.passages)


def generate_episode(rng: random.Random, fake: Faker, hops: int, budget: int) -> Episode:
    """A question of ``hops`` hops over a context of about ``budget`` characters."""
    if hops < 1:
        raise ValueError(f"hops must be >= 1, got {hops}")
    graph = build_graph(max(40, budget // CHARS_PER_ENTITY + 30 + 4 * hops), rng, fake)
    path = random_walk(graph, hops, rng)
    twins = add_twins(graph, path, rng, fake, copies=twins_for(budget))
    renderer = Renderer(graph, rng, fake, id_width=max(3, len(str(budget // 60))))
    chosen = select_facts(path, twins, budget, renderer)
    check_unique(path, [fact for fact, _ in chosen])
    passages = make_passages(chosen, renderer)
    return Episode(question_for(path), path, passages, _named(chosen, graph.entities))


def _named(chosen: list[tuple[Fact, str]], entities: dict[str, object]) -> tuple[str, ...]:
    names: dict[str, None] = {}
    for fact, _ in chosen:
        names[fact.subject] = None
        if fact.object in entities:
            names[fact.object] = None
    return tuple(names)
