"""Scripted solver of ``rlvr/MultiHop-v0``, in both modes, from the observations alone.

It knows the env's public templates (:mod:`rlvr.envs.multihop.documents`): it reads every
passage back into ``(title, relation) -> object`` facts, parses the question into an anchor
and a chain of relations, and follows the chain. In search mode it rebuilds what it knows from
the dialogue at every turn (the solver keeps no state): the passages it opened, the results
of its searches; then it opens the next candidate document for the first unresolved hop,
searches for it, or answers.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from rlvr.agents.base import Agent
from rlvr.envs.multihop.documents import KEYWORDS, PHRASES, QUESTIONS, TEMPLATES
from rlvr.envs.tool_calls import ToolCall, format_tool_call, parse_tool_call
from rlvr.envs.types import Message
from rlvr.rewards.multihop import normalize_answer

UNKNOWN = "I could not find the answer.\nAnswer: unknown"
"""The context-mode reply when the question or the documents cannot be read."""

_HOLE = "\x00"
_FACT_PATTERNS = tuple(
    (relation, re.compile(re.escape(t).replace(r"\{s\}", _HOLE).replace(r"\{o\}", "(?P<o>.+)")))
    for relation, templates in TEMPLATES.items()
    for t in templates
)
_PHRASE_PATTERNS = tuple(
    (relation, re.compile(re.escape(p).replace(r"\{x\}", "(?P<x>.+)"), re.IGNORECASE))
    for relation, p in PHRASES.items()
)
_QUESTION_PATTERNS = tuple(
    (relation, re.compile(re.escape(q).replace(r"\{x\}", "(?P<x>.+)"), re.IGNORECASE))
    for relation, q in QUESTIONS.items()
)
_DOC = re.compile(r"^\[(D\d+)\] ([^\n]+)\n([^\n]*)", re.MULTILINE)
_RESULT = re.compile(r"^\[(D\d+)\] (.+?): ", re.MULTILINE)


def facts_of(title: str, text: str) -> list[tuple[str, str]]:
    """The ``(relation, object)`` pairs the first sentence of a passage states about ``title``."""
    sentence = text.split(". ", 1)[0].rstrip(".") + "."
    if title not in sentence:
        return []
    holed = sentence.replace(title, _HOLE)
    return [(rel, m.group("o")) for rel, p in _FACT_PATTERNS if (m := p.fullmatch(holed))]


def read_facts(text: str) -> dict[tuple[str, str], str]:
    """Every fact stated by the ``[Dxxx] title`` passages of ``text``, keyed by
    ``(normalised title, relation)``."""
    table: dict[tuple[str, str], str] = {}
    for match in _DOC.finditer(text):
        title = match.group(2).strip()
        for relation, obj in facts_of(title, match.group(3)):
            table.setdefault((normalize_answer(title), relation), obj)
    return table


def parse_question(question: str) -> tuple[str, list[str]] | None:
    """``(anchor, relations)`` of a question (innermost relation first), or ``None``."""
    text = question.strip()
    for relation, pattern in _QUESTION_PATTERNS:
        match = pattern.fullmatch(text)
        if match is not None:
            inner = _parse_phrase(match.group("x"))
            if inner is not None:
                return inner[0], [*inner[1], relation]
    return None


def _parse_phrase(phrase: str, depth: int = 0) -> tuple[str, list[str]] | None:
    if depth > 20:
        return None
    for relation, pattern in _PHRASE_PATTERNS:
        match = pattern.fullmatch(phrase)
        if match is not None:
            inner = _parse_phrase(match.group("x"), depth + 1)
            if inner is not None:
                return inner[0], [*inner[1], relation]
    return phrase, []


def follow(anchor: str, relations: Sequence[str], facts: dict[tuple[str, str], str]) -> list[str]:
    """The entities reached hop by hop (stops at the first unknown hop)."""
    reached = []
    current = anchor
    for relation in relations:
        nxt = facts.get((normalize_answer(current), relation))
        if nxt is None:
            break
        reached.append(nxt)
        current = nxt
    return reached


def question_in(text: str) -> str:
    """The question of a first observation (the text after ``Question:`` on its line)."""
    match = re.search(r"^Question: (.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else ""


def context_reply(observation: str) -> str:
    """The context-mode reply: the chain of hop entities, then ``Answer: ...``."""
    parsed = parse_question(question_in(observation))
    if parsed is None:
        return UNKNOWN
    anchor, relations = parsed
    reached = follow(anchor, relations, read_facts(observation))
    if len(reached) < len(relations):
        return UNKNOWN
    return f"Chain: {' -> '.join([anchor, *reached])}.\nAnswer: {reached[-1]}"


# ---------------------------------------------------------------- search mode


@dataclass
class SearchState:
    """What the dialogue so far tells: facts read, queries issued and their results."""

    facts: dict[tuple[str, str], str] = field(default_factory=dict)
    opened: set[str] = field(default_factory=set)
    results: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    """``query -> [(doc_id, title), ...]`` in result order."""


def search_state(dialogue: Sequence[Message]) -> SearchState:
    """Rebuild the state from the agent's calls and the tool results that followed them."""
    state = SearchState()
    for message, reply in itertools.pairwise(dialogue):
        if message.role != "assistant":
            continue
        call = parse_tool_call(message.content)
        if not isinstance(call, ToolCall):
            continue
        if call.name == "search":
            hits = [(m.group(1), m.group(2)) for m in _RESULT.finditer(reply.content)]
            state.results[str(call.arguments.get("query", ""))] = hits
        elif call.name == "open":
            for match in _DOC.finditer(reply.content):
                state.opened.add(match.group(1))
            state.facts.update(read_facts(reply.content))
    return state


def queries_for(entity: str, relation: str) -> list[str]:
    """The searches tried for one hop, most specific first."""
    keywords = KEYWORDS[relation].split()
    queries = [f"{entity} {' '.join(keywords)}", *(f"{entity} {k}" for k in keywords), entity]
    return list(dict.fromkeys(queries))


def next_search_action(question: str, state: SearchState) -> str:
    """The next tool call: open a candidate, search, or answer."""
    parsed = parse_question(question)
    if parsed is None:
        return format_tool_call("answer", {"text": "unknown"})
    anchor, relations = parsed
    reached = follow(anchor, relations, state.facts)
    chain = " -> ".join([anchor, *reached])
    if len(reached) == len(relations):
        return format_tool_call("answer", {"text": reached[-1], "reasoning": f"Chain: {chain}."})
    entity = reached[-1] if reached else anchor
    relation = relations[len(reached)]
    for query in queries_for(entity, relation):
        if query not in state.results:
            return format_tool_call("search", {"query": query})
        for doc_id, title in state.results[query]:
            if doc_id not in state.opened and normalize_answer(title) == normalize_answer(entity):
                return format_tool_call("open", {"doc_id": doc_id})
    return format_tool_call("answer", {"text": "unknown", "reasoning": f"Chain: {chain}."})


class MultiHopSolver(Agent):
    """Answers ``rlvr/MultiHop-v0`` questions in context mode (one reply) or search mode
    (tool calls), reading only the dialogue."""

    name = "scripted"

    def act(self, dialogue: Sequence[Message]) -> str:
        """The next reply; the mode is read from the first observation."""
        first = next((m.content for m in dialogue if m.role == "user"), "")
        try:
            if first.startswith("Documents:"):
                return context_reply(first)
            return next_search_action(question_in(first), search_state(dialogue))
        except Exception:  # never raise on odd input
            return UNKNOWN
