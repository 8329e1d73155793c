"""A small BM25 index over the passages of one episode (the ``search`` tool of search mode).

Tokens are :func:`~rlvr.envs.multihop.graph.normalize`\\ d words; title words count twice.
Ties break by document order, so results are deterministic.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from rlvr.envs.multihop.documents import Passage
from rlvr.envs.multihop.graph import normalize

K1 = 1.2
B = 0.75


@dataclass(frozen=True)
class Hit:
    """One search result."""

    doc_id: str
    title: str
    snippet: str
    score: float


class SearchIndex:
    """BM25 over ``passages``; :meth:`search` returns the best ``k`` hits."""

    def __init__(self, passages: Sequence[Passage], snippet_chars: int = 60):
        self.passages = tuple(passages)
        self.snippet_chars = snippet_chars
        self._postings: dict[str, list[tuple[int, int]]] = {}
        self._lengths: list[int] = []
        for index, passage in enumerate(self.passages):
            tokens = normalize(passage.title).split() * 2 + normalize(passage.text).split()
            self._lengths.append(len(tokens))
            for token, count in Counter(tokens).items():
                self._postings.setdefault(token, []).append((index, count))
        self._mean_length = sum(self._lengths) / max(1, len(self._lengths))

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """The ``k`` passages that score highest for ``query`` (none when nothing matches)."""
        scores: dict[int, float] = {}
        n_docs = len(self.passages)
        for token in dict.fromkeys(normalize(query).split()):
            postings = self._postings.get(token, [])
            if not postings:
                continue
            idf = math.log(1 + (n_docs - len(postings) + 0.5) / (len(postings) + 0.5))
            for index, count in postings:
                norm = K1 * (1 - B + B * self._lengths[index] / self._mean_length)
                scores[index] = scores.get(index, 0.0) + idf * count * (K1 + 1) / (count + norm)
        best = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k]
        return [self._hit(index, score) for index, score in best]

    def _hit(self, index: int, score: float) -> Hit:
        passage = self.passages[index]
        text = passage.text
        snippet = text if len(text) <= self.snippet_chars else text[: self.snippet_chars] + "..."
        return Hit(passage.doc_id, passage.title, snippet, round(score, 4))


def trace_tiers(
    opened: Sequence[str], retrieved: Sequence[str], cited: Sequence[str]
) -> dict[str, str]:
    """LongTraceRL's tiers from one search trace (``doc_id -> tier``): the cited documents are
    ``gold``; opened but not cited, ``tier1``; shown in results but never opened, ``tier2``.

    ``opened`` and ``retrieved`` are the ``doc_id`` lists of a search-mode episode's
    ``info["opened"]`` / ``info["retrieved"]``; ``cited`` is what the answer relied on.
    """
    tiers: dict[str, str] = {}
    for doc_id in retrieved:
        tiers[doc_id] = "tier2"
    for doc_id in opened:
        tiers[doc_id] = "tier1"
    for doc_id in cited:
        tiers[doc_id] = "gold"
    return tiers
