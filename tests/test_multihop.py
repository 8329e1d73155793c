"""rlvr/MultiHop-v0: graph, passages, tiers, rewards, both modes, bad input, the solver."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys

import gymnasium as gym
import pytest
from faker import Faker

import rlvr
from rlvr.agents.scripted.multihop import MultiHopSolver, facts_of, parse_question
from rlvr.envs import Message, play
from rlvr.envs.multihop.documents import KEYWORDS, TEMPLATES, question_for
from rlvr.envs.multihop.episode import generate_episode
from rlvr.envs.multihop.graph import (
    RELATIONS,
    Fact,
    build_graph,
    check_unique,
    follow,
    random_walk,
)
from rlvr.envs.multihop.search import SearchIndex, trace_tiers
from rlvr.envs.tool_calls import format_tool_call
from rlvr.rewards.multihop import (
    entity_rubric,
    exact_match,
    extract_answer,
    multihop_reward,
    normalize_answer,
    normalize_group_rubrics,
    positive_only,
    positive_only_group,
    score_response,
)

gym.register_envs(rlvr)
ENV_ID = "rlvr/MultiHop-v0"


def make(**kwargs):
    return gym.make(ENV_ID, **kwargs)


def seeded_faker(seed: int) -> Faker:
    fake = Faker()
    fake.seed_instance(seed)
    return fake


# ---------------------------------------------------------------- graph and passages


def test_graph_relations_are_functional_and_names_distinct():
    graph = build_graph(300, random.Random(1), seeded_faker(1))
    pairs = [(f.subject, f.relation) for f in graph.facts]
    assert len(pairs) == len(set(pairs)), "a subject has two objects for one relation"
    for fact in graph.facts:
        relation = RELATIONS[fact.relation]
        assert graph.entities[fact.subject].kind == relation.subject
        if relation.object == "year":
            assert fact.object.isdigit()
        else:
            assert graph.entities[fact.object].kind == relation.object
    names = [" " + normalize_answer(n) + " " for n in graph.entities]
    assert len(set(names)) == len(names)
    for a in names[:120]:
        assert sum(a in b for b in names) == 1, f"{a!r} is contained in another name"


@pytest.mark.parametrize("hops", [2, 3, 5, 8])
def test_walks_are_simple_paths_with_a_unique_answer(hops):
    rng = random.Random(hops)
    graph = build_graph(200, rng, seeded_faker(hops))
    path = random_walk(graph, hops, rng)
    assert path.hops == hops and len(path.entities) == hops
    assert len({path.anchor, *path.entities}) == hops + 1
    assert follow(path.anchor, path.relations, graph.facts)[-1] == {path.answer}
    check_unique(path, graph.facts)
    for fact in (path.facts()[0], path.facts()[-1]):
        conflicting = [*graph.facts, Fact(fact.subject, fact.relation, "Somewhere Else")]
        with pytest.raises(ValueError, match="not unique"):
            check_unique(path, conflicting)


def test_every_template_reads_back_as_its_own_fact_only():
    subject, obj = "Mario Lopez Dynamics", "Harlow Pharma"
    for relation, templates in TEMPLATES.items():
        for template in templates:
            text = template.format(s=subject, o=obj) + " Visitors mention its old harbour."
            assert facts_of(subject, text) == [(relation, obj)], template


def test_questions_parse_back_into_their_chain():
    rng = random.Random(5)
    for seed in range(40):
        graph = build_graph(120, rng, seeded_faker(seed))
        path = random_walk(graph, 2 + seed % 7, rng)
        assert parse_question(question_for(path)) == (path.anchor, list(path.relations))


def test_generated_passages_hold_gold_and_both_tiers_and_parse_back():
    rng = random.Random(11)
    episode = generate_episode(rng, seeded_faker(11), hops=3, budget=10_000)
    tiers = [p.tier for p in episode.passages]
    assert tiers.count("gold") == 3 and tiers.count("tier1") > 0 and tiers.count("tier2") > 0
    assert [p.doc_id for p in episode.passages] == [f"D{i:03d}" for i in range(1, len(tiers) + 1)]
    facts = {
        (p.title, rel, obj) for p in episode.passages for rel, obj in facts_of(p.title, p.text)
    }
    assert len(facts) == len(episode.passages), "every passage states exactly one fact"
    for gold in episode.path.facts():
        assert (gold.subject, gold.relation, gold.object) in facts
    assert 8_000 <= len(episode.documents) <= 10_500


def test_search_index_ranks_the_entity_and_relation_first():
    episode = generate_episode(random.Random(3), seeded_faker(3), hops=2, budget=30_000)
    gold = [p for p in episode.passages if p.tier == "gold"]
    index = SearchIndex(episode.passages)
    first_relation = episode.path.relations[0]
    hits = index.search(f"{episode.path.anchor} {KEYWORDS[first_relation]}")
    assert gold[0].doc_id in [h.doc_id for h in hits] or gold[1].doc_id in [h.doc_id for h in hits]
    assert hits == index.search(f"{episode.path.anchor} {KEYWORDS[first_relation]}")
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert index.search("zzzz qqqq") == [] and len(index.search("the", k=3)) <= 3


# ---------------------------------------------------------------- rewards


def test_answer_normalisation_and_exact_match():
    assert normalize_answer("  José  O'Neil-Smith! ") == "jose o neil smith"
    assert exact_match("the answer: 1987.", "1987") is False
    assert exact_match("LAKE  Jenniferton.", "Lake Jenniferton")
    assert exact_match("Lakeport", ["Lake Port", "Lakeport"])
    assert not exact_match("", "x") and not exact_match("...", "...")


@pytest.mark.parametrize(
    "reply,status,answer",
    [
        ("Reasoning.\nAnswer: Lakeport", "ok", "Lakeport"),
        ("**Final answer:** Lakeport", "ok", "Lakeport"),
        ("Answer: Lakeport\nanswer: lakeport.", "ok", "lakeport."),
        ("Lakeport", "ok", "Lakeport"),
        ("Answer: Lakeport\nAnswer: Springfield", "hedged", "Springfield"),
        ("Answer:", "empty", None),
        ("", "empty", None),
        ("line one\nline two", "no_answer", None),
    ],
)
def test_extract_answer(reply, status, answer):
    extracted = extract_answer(reply)
    assert (extracted.status, extracted.answer) == (status, answer)


def test_reward_table_is_positive_only():
    gold, hops = "Lakeport", ["Harlow Dynamics", "Mario Lopez", "Lakeport"]
    context = [*hops, "Nimbus X2", "Maria Lopez", "Harlow Systems", "Springfield", "Peru"]

    def reward(text: str) -> float:
        return score_response(text, gold, hops, context_entities=context).reward

    wrong_with_everything = "Chain: " + ", ".join(context) + "\nAnswer: Springfield"
    assert reward(wrong_with_everything) == 0.0
    assert reward("Answer: Lakeport or Springfield") == 0.0
    assert reward("Answer: Lakeport\nAnswer: Springfield") == 0.0
    bare = reward("Answer: Lakeport")
    one = reward("Harlow Dynamics.\nAnswer: Lakeport")
    full = reward("Harlow Dynamics -> Mario Lopez -> Lakeport.\nAnswer: Lakeport")
    assert bare == pytest.approx(0.7 + 0.3 / 3)
    assert bare < one < full == pytest.approx(1.0)
    stuffed = reward("Chain: " + ", ".join(context) + "\nAnswer: Lakeport")
    assert 0.7 <= stuffed < full, "naming every entity must not earn the full rubric"


def test_rubric_and_group_transforms_by_hand():
    assert entity_rubric("a b", ["A", "B", "C", "D"]) == 0.5
    many = [f"Entity{i}" for i in range(8)]
    # 2 of 2 gold named, 8 others named with 2 allowed -> 1.0 * 2 / 8
    assert entity_rubric("A B " + " ".join(many), ["A", "B"], many) == 0.25
    assert positive_only(0.0, 1.0) == 0.0
    assert positive_only(1.0, 0.5, eta=0.3) == pytest.approx(0.85)
    assert normalize_group_rubrics([0.2, 0.4, 0.0]) == [0.5, 1.0, 0.0]
    assert normalize_group_rubrics([0.0, 0.0]) == [0.0, 0.0]
    assert positive_only_group([1, 0, 1], [0.2, 0.4, 0.1]) == pytest.approx([0.85, 0.0, 0.775])
    with pytest.raises(ValueError, match="rubric"):
        positive_only(1.0, 1.5)
    with pytest.raises(ValueError, match="gold entity"):
        entity_rubric("x", [])
    rewards = multihop_reward(
        ["A -> B\nAnswer: B", [{"role": "assistant", "content": "Answer: C"}]],
        answer=["B", "B"],
        entities=[["A", "B"], ["A", "B"]],
    )
    assert rewards == [1.0, 0.0]


# ---------------------------------------------------------------- the env


def test_reset_info_is_measurable_and_scales_with_difficulty():
    rows = []
    for level in range(5):
        _, info = make(difficulty=level).reset(seed=4)
        assert info["gold_passages"] == info["hops"]
        assert info["documents"] == sum(info[f"{t}_passages"] for t in ("gold", "tier1", "tier2"))
        rows.append(info)
    chars = [r["context_chars"] for r in rows]
    assert chars == sorted(chars) and chars[0] < 1_300 and chars[4] > 90_000
    assert [r["hops"] for r in rows] == [2, 2, 3, 3, 4]
    assert rows[4]["tier1_passages"] > rows[0]["tier1_passages"]
    assert rows[4]["tier2_passages"] > 10 * rows[0]["tier2_passages"]
    _, info = make(context_chars=5_000, difficulty=0).reset(seed=1)
    assert 4_000 <= info["context_chars"] <= 5_300


def episode_digest(mode: str, seeds: range) -> str:
    env = make(mode=mode, difficulty=(0, 4))
    digest = hashlib.sha256()
    for seed in seeds:
        observation, info = env.reset(seed=seed)
        action = env.unwrapped.oracle_action()
        step = env.step(action)
        digest.update(json.dumps([observation, info, step], sort_keys=True).encode())
    return digest.hexdigest()


def test_same_seed_same_episode_in_other_processes():
    code = (
        "import rlvr, sys; sys.path.insert(0, 'tests'); from test_multihop import episode_digest;"
        "print(episode_digest('context', range(6)), episode_digest('search', range(3)))"
    )
    here = f"{episode_digest('context', range(6))} {episode_digest('search', range(3))}"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for hash_seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == here


@pytest.mark.parametrize("mode", ["context", "search"])
def test_scripted_solver_solves_99_percent_at_levels_0_to_3(mode):
    env, solver = make(mode=mode, difficulty=(0, 3)), MultiHopSolver()
    results = [play(env, solver, seed=seed) for seed in range(100)]
    assert sum(t.success for t in results) >= 99
    assert sum(t.outcome is not None and t.outcome.reward == 1.0 for t in results) >= 99


def test_context_mode_bad_answers_end_with_zero_and_say_why():
    env = make(difficulty=1)
    for reply, words in [
        ("", "answer status empty"),
        ("Answer: A\nAnswer: B", "answer status hedged"),
        ("I think it is in the documents\nsomewhere", "answer status no_answer"),
        (12345, "must be text"),
        ("x" * 200_000, "limit"),
    ]:
        env.reset(seed=2)
        observation, reward, terminated, truncated, info = env.step(reply)
        assert (reward, terminated, truncated, info["success"]) == (0.0, True, False, False)
        assert observation.startswith("Not correct. The answer was")
        assert words in info["verification"]
        assert "The expected answer is" in info["feedback"]
        assert info["reward_components"]["outcome"] == 0.0


def test_listing_every_entity_of_the_context_earns_nothing():
    env = make(difficulty=2)
    env.reset(seed=8)
    task = env.unwrapped.task
    everything = ", ".join(task.data["context_entities"])
    _, reward, *_ = env.step(f"It is one of: {everything}\nAnswer: {everything}")
    assert reward == 0.0
    env.reset(seed=8)
    _, reward, _, _, info = env.step(f"Candidates: {everything}\nAnswer: {task.answer}")
    assert info["success"] and reward < 1.0 and info["reward_components"]["rubric"] < 1.0


def test_search_mode_tools_bad_calls_and_the_opened_record():
    env = make(mode="search", difficulty=1)
    observation, info = env.reset(seed=3)
    assert [t["function"]["name"] for t in info["tools"]] == ["search", "open", "answer"]
    assert info["opened"] == [] and "Question:" in observation
    bad = [
        ("not a call", "No tool call found"),
        ('{"name": "search", "arguments": {"query": ', "not valid JSON"),
        (format_tool_call("search", {"query": "a"}) * 2, "several tool calls"),
        (format_tool_call("fly", {}), "Unknown tool"),
        (format_tool_call("open", {"doc_id": "D9999"}), "There is no document"),
        (format_tool_call("open", {}), "needs the argument(s) doc_id"),
        (format_tool_call("answer", {"text": "  "}), "answer text is empty"),
        (format_tool_call("search", {"query": " "}), "query is empty"),
        (None, "must be text"),
    ]
    for action, words in bad:
        observation, reward, terminated, truncated, info = env.step(action)
        assert (reward, terminated, truncated) == (0.0, False, False)
        assert words in observation and info["role"] == "tool"
    solver = MultiHopSolver()
    dialogue = [Message("system", ""), Message("user", env.unwrapped.begin(env.unwrapped.task))]
    env.reset(seed=3)
    for _ in range(30):
        action = solver(dialogue)
        observation, reward, terminated, _, info = env.step(action)
        if terminated:
            break
        dialogue += [Message("assistant", action), Message("tool", observation)]
    assert terminated and info["success"] and reward == 1.0
    opened = info["opened"]
    assert opened and {o["tier"] for o in opened} <= {"gold", "tier1", "tier2"}
    assert sum(o["tier"] == "gold" for o in opened) == 2
    assert {o["doc_id"] for o in opened} <= {r["doc_id"] for r in info["retrieved"]}
    gold_ids = [o["doc_id"] for o in opened if o["tier"] == "gold"]
    tiers = trace_tiers(
        [o["doc_id"] for o in opened], [r["doc_id"] for r in info["retrieved"]], gold_ids
    )
    assert sorted(i for i, t in tiers.items() if t == "gold") == sorted(gold_ids)
    assert all(tiers[o["doc_id"]] in ("gold", "tier1") for o in opened)
    assert all(t == "tier2" for i, t in tiers.items() if i not in {o["doc_id"] for o in opened})


def test_search_mode_answer_decides_and_hedging_fails():
    env = make(mode="search", difficulty=0)
    env.reset(seed=5)
    gold = env.unwrapped.task.answer
    _, reward, terminated, _, info = env.step(
        format_tool_call("answer", {"text": f"{gold} or somebody else"})
    )
    assert terminated and reward == 0.0 and not info["success"] and "opened" in info
    env.reset(seed=5)
    everyone = " ".join(env.unwrapped.task.data["context_entities"])
    env.step(format_tool_call("search", {"query": everyone}))  # exploring costs nothing
    _, reward, terminated, _, info = env.step(format_tool_call("answer", {"text": gold}))
    hops = len(env.unwrapped.task.data["entities"])
    assert terminated and info["success"] and reward == pytest.approx(0.7 + 0.3 / hops)


def test_dataset_records(tmp_path):
    record = {
        "id": "q1",
        "question": "Who founded Acme Labs?",
        "answer": "Ada Stone",
        "documents": [
            {"title": "Acme Labs", "text": "Acme Labs was founded by Ada Stone.", "tier": "gold"},
            {"title": "Acme Works", "text": "Acme Works was founded by Bo Stone."},
        ],
        "entities": ["Ada Stone"],
    }
    path = tmp_path / "mh.jsonl"
    path.write_text(json.dumps(record) + "\n")
    env = make(dataset=str(path))
    observation, info = env.reset(seed=0)
    assert "[D001] Acme Labs" in observation and info["gold_passages"] == 1
    assert info["tier2_passages"] == 1 and info["hops"] == 1
    _, reward, terminated, _, result = env.step("Acme Labs -> Ada Stone\nAnswer: ada stone")
    assert terminated and reward == 1.0 and result["success"]
    path.write_text(json.dumps({**record, "documents": []}) + "\n")
    with pytest.raises(ValueError, match="line 1: 'documents'"):
        make(dataset=str(path))


@pytest.mark.parametrize(
    "kwargs,words",
    [
        ({"mode": "chat"}, "mode"),
        ({"context_chars": 10}, "context_chars"),
        ({"max_hops": 1}, "max_hops"),
        ({"rubric_weight": 1.5}, "rubric_weight"),
    ],
)
def test_bad_config_raises_value_error(kwargs, words):
    with pytest.raises(ValueError, match=words):
        make(**kwargs)


def test_outcome_only_reward_when_rubric_weight_is_zero():
    env = make(rubric_weight=0.0, difficulty=0)
    env.reset(seed=1)
    _, reward, _, _, info = env.step(f"Answer: {env.unwrapped.task.answer}")
    assert reward == 1.0 and info["reward_components"]["rubric"] < 1.0
