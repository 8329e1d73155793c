"""``rlvr/MultiHop-v0``: multi-hop questions over a generated knowledge graph, with tiered
distractors, answered from a long context or through search tools."""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from faker import Faker

from rlvr.envs.core import DifficultySpec, TextEnv
from rlvr.envs.multihop.documents import Passage, render_documents
from rlvr.envs.multihop.episode import context_chars_for, generate_episode, hops_for
from rlvr.envs.multihop.search import SearchIndex
from rlvr.envs.tool_calls import (
    FORMAT_HINT,
    ToolCall,
    ToolCallError,
    ToolParam,
    check_arguments,
    format_tool_call,
    parse_tool_call,
    tool_definition,
)
from rlvr.envs.types import Outcome, Reply, Task
from rlvr.rewards.multihop import DEFAULT_ETA, MultiHopScore, score_response

Mode = Literal["context", "search"]

CONTEXT_PROMPT = (
    "You answer multi-hop questions from a collection of documents. Many documents are "
    "distractors about similar-looking entities. Reason step by step and name the entity you "
    "find at each hop; then give exactly one final answer on the last line, as "
    "'Answer: <answer>'. Several answers, or alternatives, count as wrong."
)
SEARCH_PROMPT = (
    "You answer multi-hop questions by searching a collection of documents with tools: "
    "search(query) lists matching documents with a snippet, open(doc_id) shows a document, "
    "answer(text, reasoning) gives your final answer and ends the episode. Call exactly one "
    "tool per turn. Many documents are distractors about similar-looking entities. In the "
    "reasoning of your answer, name the entity you found at each hop."
)

TOOLS = (
    tool_definition(
        "search",
        "Search the collection; returns up to 5 documents (id, title, snippet), best first.",
        {"query": ToolParam("string", "Words to look for, e.g. an entity name and a relation.")},
    ),
    tool_definition(
        "open",
        "Show the full text of one document.",
        {"doc_id": ToolParam("string", "A document id from the search results, e.g. D012.")},
    ),
    tool_definition(
        "answer",
        "Give the final answer; this ends the episode.",
        {
            "text": ToolParam("string", "The answer alone, e.g. a name or a year."),
            "reasoning": ToolParam("string", "The entity found at each hop.", required=False),
        },
    ),
)
"""The search-mode tools, as JSON schema (``info["tools"]``)."""


class MultiHopEnv(TextEnv):
    """Multi-hop question answering over a long context of tiered distractors.

    **Tasks.** A seeded knowledge graph (Faker people, generated companies, cities, products,
    a list of countries, years) with functional typed relations (``born_in``, ``works_at``,
    ``founded_by``, ``headquartered_in``, ``ceo``, ``acquired_by``, ``made_by``, ``located_in``,
    ``mayor`` and the years ``birth_year``, ``founded_year``, ``launch_year``). A random walk of
    ``hops`` hops gives the question ("In which city was the founder of the company that makes
    Nimbus X2 born?"), its unique answer and the gold entity of each hop. The context holds
    one passage per gold fact, tier-1 distractors (other facts of the path entities, the same
    relations for look-alike entities, facts pointing at the path) and tier-2 distractors
    (random facts), shuffled, up to a target length. Difficulty sets both: 2 hops and about
    1k characters at level 0, 3k / 10k / 30k / 100k / 200k / 400k / 800k at levels 1-7, one
    hop more every two levels (up to ``max_hops``). Or read from JSONL records ``{"id",
    "question", "answer", "documents": [{"title", "text", "tier"?}], "entities"?: [hop
    entities], "aliases"?: [...], "difficulty"?}``.

    **Observation.** ``mode="context"``: the documents (``[D012] title`` then the text) and the
    question, in the first message. ``mode="search"``: the question and the tool instructions;
    then each tool result (``info["role"] == "tool"``).

    **Action.** Context mode: free reasoning ending with one line ``Answer: <answer>``. Search
    mode: one tool call per turn, ``{"name": ..., "arguments": {...}}`` (also in a json code
    fence or ``<tool_call>`` tags; see :mod:`rlvr.envs.tool_calls`).

    **Reward.** Positive-only (LongTraceRL): ``outcome`` is 1 when the answer equals the gold
    answer after normalisation; ``rubric`` is the fraction of the hop entities named in the
    final reply (context mode) or in the ``answer`` call's text and reasoning (search mode;
    the searches do not count), scaled down when it names many other entities of the
    context; the reward
    is 0 when the outcome is 0, else ``(1 - rubric_weight) * outcome + rubric_weight * rubric``.
    ``reward_components``: ``outcome`` and ``rubric``. Hedged (several ``Answer:`` lines),
    empty or missing answers score 0. ``info["answer"]``: the extracted final answer (absent
    when there was none or it hedged).

    **Episode end.** Context mode: terminated after the first reply (single shot; an
    unreadable reply counts as a wrong answer). Search mode: terminated by the ``answer`` call;
    malformed calls, unknown tools or doc ids and empty answers get an explanatory tool
    message with reward 0 and the episode goes on. The env never truncates by itself: add a
    turn limit with ``gym.make(..., max_episode_steps=n)``.

    **Info.** At reset: ``mode``, ``context_chars`` (characters of the documents block),
    ``hops``, ``documents``, ``gold_passages``, ``tier1_passages``, ``tier2_passages``. In search
    mode every step also carries ``opened`` and ``retrieved``: the doc ids opened / shown in
    search results so far, each as ``{"doc_id", "tier"}``.

    Args:
        difficulty: level or ``(low, high)`` range drawn per episode (default ``(0, 3)``).
        dataset: JSONL path; the episodes then come from it.
        mode: ``"context"`` (long context, one answer) or ``"search"`` (tools).
        context_chars: target context length in characters, overriding the difficulty's.
        max_hops: the most hops a question has at high levels.
        rubric_weight: ``eta`` of the positive-only combination (0 = outcome only).

    **Version History.**

    * v0: first version.
    """

    task_prefix = "multihop"

    def __init__(
        self,
        *,
        difficulty: DifficultySpec = (0, 3),
        dataset: str | Path | None = None,
        mode: Mode = "context",
        context_chars: int | None = None,
        max_hops: int = 8,
        rubric_weight: float = DEFAULT_ETA,
        render_mode: str | None = None,
    ):
        if mode not in ("context", "search"):
            raise ValueError(f"mode must be 'context' or 'search', got {mode!r}")
        if context_chars is not None and not 200 <= context_chars <= 900_000:
            raise ValueError(f"context_chars must lie in [200, 900000], got {context_chars}")
        if not 2 <= max_hops <= 12:
            raise ValueError(f"max_hops must lie in [2, 12], got {max_hops}")
        if not 0.0 <= rubric_weight <= 1.0:
            raise ValueError(f"rubric_weight must lie in [0, 1], got {rubric_weight}")
        self.mode: Mode = mode
        self.context_chars = context_chars
        self.max_hops = max_hops
        self.rubric_weight = rubric_weight
        self._fake = Faker()
        self._index: SearchIndex | None = None
        self._by_id: dict[str, Passage] = {}
        self._opened: list[str] = []
        self._retrieved: list[str] = []
        super().__init__(difficulty=difficulty, dataset=dataset, render_mode=render_mode)

    # ------------------------------------------------------------------ tasks

    def generate_task(self, task_id: str, difficulty: int, rng: random.Random) -> Task:
        self._fake.seed_instance(rng.getrandbits(64))
        budget = self.context_chars or context_chars_for(difficulty)
        hops = hops_for(difficulty, self.max_hops)
        episode = generate_episode(rng, self._fake, hops, budget)
        path = episode.path
        return Task(
            task_id=task_id,
            prompt=episode.question,
            answer=path.answer,
            difficulty=difficulty,
            family=f"{path.hops}-hop",
            data={
                "passages": episode.passages,
                "anchor": path.anchor,
                "relations": path.relations,
                "entities": path.entities,
                "context_entities": episode.context_entities,
                "aliases": (),
            },
        )

    def task_from_record(self, record: Mapping[str, Any], line: int) -> Task:
        for key in ("id", "question", "answer"):
            if not isinstance(record.get(key), str) or not record[key].strip():
                raise ValueError(f"line {line}: field {key!r} must be a non-empty string")
        passages = _passages_from(record.get("documents"), line)
        entities = _strings(record.get("entities", [record["answer"]]), "entities", line)
        aliases = _strings(record.get("aliases", []), "aliases", line)
        difficulty = record.get("difficulty", 0)
        if not isinstance(difficulty, int) or isinstance(difficulty, bool) or difficulty < 0:
            raise ValueError(f"line {line}: 'difficulty' must be an int >= 0")
        return Task(
            task_id=record["id"],
            prompt=record["question"],
            answer=record["answer"],
            difficulty=difficulty,
            family="dataset",
            data={
                "passages": passages,
                "anchor": "",
                "relations": (),
                "entities": tuple(entities) or (record["answer"],),
                "context_entities": tuple(dict.fromkeys(p.title for p in passages)),
                "aliases": tuple(aliases),
            },
        )

    def system_prompt(self) -> str:
        return CONTEXT_PROMPT if self.mode == "context" else SEARCH_PROMPT

    def tools(self) -> list[dict[str, Any]]:
        return copy.deepcopy(list(TOOLS)) if self.mode == "search" else []

    # ------------------------------------------------------------------ episode

    def begin(self, task: Task) -> str:
        passages: tuple[Passage, ...] = task.data["passages"]
        self._by_id = {p.doc_id: p for p in passages}
        self._opened, self._retrieved = [], []
        if self.mode == "context":
            self._index = None
            return (
                f"Documents:\n\n{render_documents(passages)}\n\nQuestion: {task.prompt}\n\n"
                "Reason step by step, naming the entity you find at each hop; end with the "
                "line 'Answer: <answer>'."
            )
        self._index = SearchIndex(passages)
        return (
            f"Question: {task.prompt}\n\nThe collection holds {len(passages)} documents. "
            "Use search(query), open(doc_id) and answer(text, reasoning). " + FORMAT_HINT
        )

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        observation, info = super().reset(seed=seed, options=options)
        info.update(self._episode_info())
        return observation, info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = super().step(action)
        if self.mode == "search":
            info.update(self._search_record())
        return observation, reward, terminated, truncated, info

    def respond(self, action: str) -> Reply:
        if self.mode == "context":
            return self._decide(action, answer=None)
        call = parse_tool_call(action)
        if isinstance(call, ToolCallError):
            return Reply(observation=call.message, role="tool")
        problem = check_arguments(call, TOOLS)
        if problem is not None:
            return Reply(observation=f"{problem} {FORMAT_HINT}", role="tool")
        return self._run_tool(call)

    def reject(self, reason: str) -> Reply:
        if self.mode == "context":
            return self._decide("", answer=None, note=reason)
        return Reply(observation=reason, role="tool")

    # ------------------------------------------------------------------ tools

    def _run_tool(self, call: ToolCall) -> Reply:
        assert self._index is not None
        if call.name == "search":
            return Reply(observation=self._search(str(call.arguments["query"])), role="tool")
        if call.name == "open":
            return Reply(observation=self._open(str(call.arguments["doc_id"])), role="tool")
        text = str(call.arguments["text"])
        if not text.strip():
            return Reply(observation="The answer text is empty; give the answer.", role="tool")
        reasoning = str(call.arguments.get("reasoning", ""))
        return self._decide(f"{reasoning}\n{text}", answer=text)

    def _search(self, query: str) -> str:
        assert self._index is not None
        if not query.strip():
            return "The query is empty; search for some words, e.g. an entity name."
        hits = self._index.search(query[:500])
        if not hits:
            return f"No document matches {query[:200]!r}."
        for hit in hits:
            if hit.doc_id not in self._retrieved:
                self._retrieved.append(hit.doc_id)
        lines = [f"[{h.doc_id}] {h.title}: {h.snippet}" for h in hits]
        return f"Results for {query[:200]!r}:\n" + "\n".join(lines)

    def _open(self, doc_id: str) -> str:
        passage = self._by_id.get(_canonical_id(doc_id, len(self._by_id)))
        if passage is None:
            return (
                f"There is no document {doc_id[:40]!r}. Ids look like "
                f"{next(iter(self._by_id), 'D001')} and come from search results."
            )
        if passage.doc_id not in self._opened:
            self._opened.append(passage.doc_id)
        return f"[{passage.doc_id}] {passage.title}\n{passage.text}"

    def _search_record(self) -> dict[str, Any]:
        def tiers(ids: Sequence[str]) -> list[dict[str, str]]:
            return [{"doc_id": i, "tier": self._by_id[i].tier} for i in ids]

        return {"opened": tiers(self._opened), "retrieved": tiers(self._retrieved)}

    def _episode_info(self) -> dict[str, Any]:
        assert self.task is not None
        passages: tuple[Passage, ...] = self.task.data["passages"]
        counts = {
            tier: sum(p.tier == tier for p in passages) for tier in ("gold", "tier1", "tier2")
        }
        info: dict[str, Any] = {
            "mode": self.mode,
            "context_chars": len(render_documents(passages)),
            "hops": len(self.task.data["relations"]) or len(self.task.data["entities"]),
            "documents": len(passages),
            "gold_passages": counts["gold"],
            "tier1_passages": counts["tier1"],
            "tier2_passages": counts["tier2"],
        }
        if self.mode == "search":
            info.update(self._search_record())
        return info

    # ------------------------------------------------------------------ verdict

    def _decide(self, response: str, *, answer: str | None, note: str = "") -> Reply:
        assert self.task is not None and self.task.answer is not None
        data = self.task.data
        gold = (self.task.answer, *data["aliases"])
        others = [e for e in data["context_entities"] if e != data["anchor"]]
        score = score_response(
            response,
            gold,
            list(data["entities"]),
            answer=answer,
            context_entities=others,
            eta=self.rubric_weight,
        )
        outcome = Outcome(
            success=score.outcome == 1.0,
            reward=score.reward,
            reward_components={"outcome": score.outcome, "rubric": score.rubric},
            verification=self._verification(score, note),
            feedback=self._feedback(score),
            reference=self.reference_solution(),
            answer=score.extracted.answer if score.extracted.status == "ok" else None,
        )
        closing = (
            "Correct." if outcome.success else f"Not correct. The answer was {self.task.answer}."
        )
        return Reply(
            closing, reward=outcome.reward, terminated=True, role=self._role(), outcome=outcome
        )

    def _role(self) -> Literal["user", "tool"]:
        return "tool" if self.mode == "search" else "user"

    def _verification(self, score: MultiHopScore, note: str) -> str:
        assert self.task is not None
        extracted = score.extracted
        given = ", ".join(repr(c) for c in extracted.candidates[:5]) or "none"
        named = len(score.named)
        total = len(self.task.data["entities"])
        head = f"{note} " if note else ""
        return (
            f"{head}answer status {extracted.status} (given: {given}); exact match with "
            f"{self.task.answer!r}: {score.outcome == 1.0}; hop entities named {named}/{total}; "
            f"rubric {score.rubric:.3f}"
        )

    def _feedback(self, score: MultiHopScore) -> str:
        assert self.task is not None
        data = self.task.data
        gold_docs = [p.doc_id for p in data["passages"] if p.tier == "gold"]
        missing = [e for e in data["entities"] if e not in score.named]
        parts = [f"The expected answer is {self.task.answer}."]
        if data["relations"]:
            chain = " -> ".join((data["anchor"], *data["entities"]))
            parts.append(f"The chain is {chain} (gold documents {', '.join(gold_docs)}).")
        if score.extracted.status == "hedged":
            parts.append("Several different answers were given; give exactly one.")
        if missing:
            parts.append(f"Hop entities not named: {', '.join(missing)}.")
        return " ".join(parts)

    # ------------------------------------------------------------------ checks

    def reference_solution(self) -> str:
        """The gold reasoning (the chain of hop entities) and answer, as a context-mode reply."""
        assert self.task is not None
        data = self.task.data
        chain = " -> ".join(e for e in (data["anchor"], *data["entities"]) if e)
        return f"Chain: {chain}.\nAnswer: {self.task.answer}"

    def oracle_action(self) -> str | None:
        if self.task is None or self.task.answer is None:
            return None
        if self.mode == "context":
            return self.reference_solution()
        chain = self.reference_solution().split("\n")[0]
        return format_tool_call("answer", {"text": self.task.answer, "reasoning": chain})

    def cheat_actions(self) -> list[str]:
        probes = super().cheat_actions()
        if self.task is None or self.task.answer is None:
            return probes
        data = self.task.data
        gold = self.task.answer
        everyone = [e for e in data["context_entities"] if e != gold][:400]
        decoy = everyone[0] if everyone else "Nobody"
        chain = self.reference_solution().split("\n")[0]
        texts = [
            "Answer: " + ", ".join([*everyone, gold]),
            "\n".join(f"Answer: {e}" for e in [*everyone[:20], decoy, gold]),
            f"Answer: {gold} or {decoy}",
            f"Answer: {gold}\nAnswer: {decoy}",
            f"{chain}\nAnswer: {decoy}",
            "Answer:",
        ]
        if len(data["entities"]) > 1:
            texts.append(f"Answer: {' '.join(data['entities'])}")
        if self.mode == "context":
            return probes + texts
        calls = [
            format_tool_call("answer", {"text": t[len("Answer: ") :], "reasoning": chain})
            for t in texts[:3]
        ]
        return (
            probes
            + calls
            + [
                format_tool_call("answer", {"text": decoy, "reasoning": " ".join(everyone)}),
                format_tool_call("answer", {"text": gold})
                + format_tool_call("answer", {"text": decoy}),
                '{"name": "answer", "arguments": {"text": ',
                format_tool_call("open", {"doc_id": "D99999"}),
                format_tool_call("answer", {"text": "   "}),
                f"<tool_call>{format_tool_call('answer', {'text': [gold, decoy]})}</tool_call>",
            ]
        )


def _canonical_id(doc_id: str, count: int) -> str:
    """``d12``, ``[D012]`` or ``12`` -> ``D012`` (the padded form the passages use)."""
    match = re.fullmatch(r"\s*\[?\s*[Dd]?\s*(\d{1,7})\s*\]?\s*", doc_id)
    if match is None:
        return doc_id.strip()
    width = max(3, len(str(count)))
    return f"D{int(match.group(1)):0{width}d}"


def _passages_from(documents: Any, line: int) -> tuple[Passage, ...]:
    if not isinstance(documents, list) or not documents:
        raise ValueError(f"line {line}: 'documents' must be a non-empty list")
    width = max(3, len(str(len(documents))))
    passages = []
    for index, doc in enumerate(documents, start=1):
        if not isinstance(doc, dict) or not isinstance(doc.get("text"), str):
            raise ValueError(f"line {line}: document {index} needs a string 'text'")
        tier = doc.get("tier", "tier2")
        if tier not in ("gold", "tier1", "tier2"):
            raise ValueError(f"line {line}: document {index} has tier {tier!r}")
        title = str(doc.get("title", f"Document {index}"))
        passages.append(Passage(f"D{index:0{width}d}", title, doc["text"], tier))
    return tuple(passages)


def _strings(value: Any, key: str, line: int) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"line {line}: {key!r} must be a list of non-empty strings")
    return value
