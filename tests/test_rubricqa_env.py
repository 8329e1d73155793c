"""rlvr/RubricQA-v0: generated tasks, scripted solver, adversarial probes, datasets, revisions."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from statistics import mean
from typing import Any, cast

import gymnasium as gym
import pytest

import rlvr
from rlvr.agents.scripted.rubricqa import GIVE_UP, RubricQASolver, solve
from rlvr.envs import check_env, play
from rlvr.envs.rubricqa import RubricQAEnv
from rlvr.envs.rubricqa.cheats import STRATEGIES, enormous
from rlvr.envs.rubricqa.generators import level_size, word_width
from rlvr.rewards.rubric import WordCount

gym.register_envs(rlvr)
ENV_ID = "rlvr/RubricQA-v0"

CHEAT_BOUNDS = {
    # strategy: (bound on the mean reward, bound on any single episode)
    "empty": (0.0, 0.0),
    "keyword_stuffing": (0.1, 0.1),
    "sentence_stuffing": (0.1, 0.1),
    "filler": (0.1, 0.1),
    "lorem_filler": (0.1, 0.1),
    "prompt_echo": (0.1, 0.1),
    "prompt_echo_x3": (0.1, 0.1),
    "facts_echo": (0.1, 0.1),
    "json_dump": (0.1, 0.1),
    "off_topic": (0.0, 0.0),
}


@pytest.fixture(scope="module")
def episodes():
    """(observation, env state) for 120 seeded tasks at levels 0-3, with their references."""
    env = RubricQAEnv(difficulty=(0, 3))
    out = []
    for seed in range(120):
        observation, _ = env.reset(seed=seed)
        out.append((observation, env.task, env.rubric, env.oracle_action()))
    return out


def unwrapped(env: gym.Env) -> RubricQAEnv:
    return cast(RubricQAEnv, env.unwrapped)


# ---------------------------------------------------------------- solving


def test_scripted_solver_strict_completion_at_levels_0_to_3():
    env = gym.make(ENV_ID)
    solver = RubricQASolver()
    results = [play(env, solver, seed=seed) for seed in range(200)]
    rate = mean(t.success for t in results)
    assert rate >= 0.99, rate
    assert mean(t.total_reward for t in results) >= 0.99


@pytest.mark.parametrize("level", [4, 6])
def test_levels_above_3_still_generate_and_solve(level):
    env = gym.make(ENV_ID, difficulty=level)
    results = [play(env, RubricQASolver(), seed=seed) for seed in range(20)]
    assert mean(t.success for t in results) >= 0.9


def test_difficulty_adds_criteria_and_narrows_the_word_range():
    env = RubricQAEnv()
    sizes = {}
    for level in range(5):
        counts, widths = [], []
        for seed in range(30):
            env.reset(seed=seed, options={"difficulty": level})
            counts.append(len(env.rubric.criteria))
            for c in env.rubric.criteria:
                if isinstance(c.check, WordCount):
                    widths.append(c.check.max - c.check.min)
        sizes[level] = mean(counts)
        if widths:
            assert max(widths) == word_width(level)
    assert sizes[0] < sizes[1] < sizes[2] < sizes[3] < sizes[4]
    assert [level_size(n)[0] for n in range(6)] == [2, 3, 4, 5, 6, 7]


def test_observation_states_every_criterion_and_info_carries_the_rubric():
    env = gym.make(ENV_ID, difficulty=3)
    observation, info = env.reset(seed=5)
    rubric = unwrapped(env).rubric
    for index, criterion in enumerate(rubric.criteria, start=1):
        assert f"{index}. {criterion.description}" in observation
    assert list(info["rubric"]) == list(rubric.names)
    assert info["rubric"]["integrity/prose"] == {
        "weight": 0.0,
        "category": "integrity",
        "required": True,
        "gate": True,
        "judged": False,
    }


def test_reward_components_are_per_criterion_and_reward_is_their_weighted_mean():
    env = gym.make(ENV_ID, difficulty=2)
    _, info = env.reset(seed=3)
    answer = unwrapped(env).oracle_action().replace(".", ",", 2)
    _, reward, terminated, _, end = env.step(answer)
    weights = {name: meta["weight"] for name, meta in info["rubric"].items()}
    components = end["reward_components"]
    assert terminated and list(components) == list(weights)
    expected = sum(weights[n] * components[n] for n in weights) / sum(weights.values())
    assert reward == pytest.approx(expected)
    required = [n for n, meta in info["rubric"].items() if meta["required"]]
    assert end["success"] == all(components[n] == 1.0 for n in required)


def test_partial_answers_get_graded_not_zero(episodes):
    for observation, task, rubric, reference in episodes[:40]:
        values = [value for _, value in task.data["facts"]]
        if len(set(values)) < 2:
            continue  # removing the only fact makes the answer off-topic: scored 0, rightly
        fact = values[0]
        changed = re.sub(re.escape(fact), "something", reference, flags=re.IGNORECASE)
        result = rubric.score(changed, prompt=observation)
        assert "facts" in result.failed and not result.success
        assert 0.3 < result.reward < 1.0


def test_stale_values_are_penalised(episodes):
    hit = 0
    for observation, _, rubric, reference in episodes:
        if "no_outdated" not in rubric.names:
            continue
        stale = rubric["no_outdated"].check.phrases[0]
        result = rubric.score(reference + f"\n\nEarlier it was {stale}.", prompt=observation)
        assert result.scores["no_outdated"] < 1.0 and not result.success
        hit += 1
    assert hit >= 20


# ---------------------------------------------------------------- adversarial probes


@pytest.mark.parametrize("strategy", sorted(CHEAT_BOUNDS))
def test_cheating_strategies_stay_under_their_bounds(episodes, strategy):
    mean_bound, max_bound = CHEAT_BOUNDS[strategy]
    rewards = [
        rubric.score(STRATEGIES[strategy](observation), prompt=observation).reward
        for observation, _, rubric, _ in episodes
    ]
    assert mean(rewards) <= mean_bound and max(rewards) <= max_bound, (mean(rewards), max(rewards))


def test_enormous_answers_score_nothing(episodes):
    for observation, _, rubric, reference in episodes[:30]:
        padded = enormous(reference)
        assert rubric.score(padded, prompt=observation).reward <= 0.1
    env = gym.make(ENV_ID)
    env.reset(seed=0)
    observation, reward, terminated, _, info = env.step("a" * 500_000)
    assert terminated and reward == 0.0 and "limit" in observation and not info["success"]


def test_padding_a_good_answer_with_filler_is_not_rewarded(episodes):
    for observation, _, rubric, reference in episodes[:30]:
        padded = reference + " " + "This sentence is only here to add words. " * 30
        assert rubric.score(padded, prompt=observation).reward == 0.0


def test_bad_actions_never_raise():
    env = gym.make(ENV_ID, max_turns=3)
    env.reset(seed=1)
    for action in (None, 42, b"bytes", "\ud800\x00", "{" * 10_000):
        observation, reward, terminated, truncated, _ = env.step(action)
        assert isinstance(observation, str) and reward == 0.0 and not truncated
        if terminated:
            env.reset(seed=1)


# ---------------------------------------------------------------- multi-turn


def test_revision_turn_names_the_failed_criteria():
    env = gym.make(ENV_ID, difficulty=2, max_turns=2)
    env.reset(seed=4)
    reference = unwrapped(env).oracle_action()
    first = reference.rsplit("\n\n", 1)[0]  # drop the last block: a required rule breaks
    observation, reward, terminated, _, info = env.step(first)
    assert not terminated and reward == 0.0 and "success" not in info
    failed = unwrapped(env).rubric.score(first, prompt=unwrapped(env).task.prompt).failed
    assert failed and all(name in observation for name in failed)
    assert "1 attempt left" in observation
    _, reward, terminated, _, info = env.step(reference)
    assert terminated and reward == 1.0 and info["success"]


def test_check_env_with_revisions_and_one_family():
    env = gym.make(ENV_ID, max_turns=2, families=["itinerary"], difficulty=(2, 4))
    assert check_env(env, solver=RubricQASolver(), seeds=(3, 4)).ok
    _, info = env.reset(seed=9)
    assert info["family"] == "itinerary"


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match="max_turns"):
        RubricQAEnv(max_turns=0)
    with pytest.raises(ValueError, match="families"):
        RubricQAEnv(families=["poetry"])
    with pytest.raises(ValueError, match="judge"):
        RubricQAEnv(judge="gpt")


# ---------------------------------------------------------------- determinism


def test_seeded_episodes_replay_in_a_fresh_process():
    code = (
        "from rlvr.envs.rubricqa import RubricQAEnv\n"
        "env = RubricQAEnv(difficulty=(0, 5))\n"
        "for seed in range(8):\n"
        "    obs, _ = env.reset(seed=seed)\n"
        "    print(repr((obs, env.oracle_action())))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "777"},
    )
    env = RubricQAEnv(difficulty=(0, 5))
    here = []
    for seed in range(8):
        observation, _ = env.reset(seed=seed)
        here.append(repr((observation, env.oracle_action())))
    assert out.stdout.splitlines() == here


def test_task_ids_reproduce_the_task():
    env = RubricQAEnv()
    observation, info = env.reset(seed=11)
    again, _ = RubricQAEnv().reset(options={"task_id": info["task_id"]})
    assert again == observation


# ---------------------------------------------------------------- datasets


RECORD: dict[str, Any] = {
    "id": "welcome-1",
    "prompt": "Write a short welcome note for new members of the Oak Street chess club.",
    "difficulty": 1,
    "rubric": [
        {
            "name": "club",
            "weight": 2,
            "category": "facts",
            "check": {"type": "contains", "phrases": ["Oak Street"]},
        },
        {
            "name": "length",
            "category": "length",
            "check": {"type": "word_count", "min": 30, "max": 90},
        },
        {
            "name": "sign_off",
            "category": "format",
            "required": False,
            "check": {"type": "ends_with", "text": "See you at the board!"},
        },
    ],
}


def test_jsonl_and_yaml_datasets(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(RECORD) + "\n")
    env = gym.make(ENV_ID, dataset=str(path))
    observation, info = env.reset(seed=0, options={"task_id": "welcome-1"})
    assert "Requirements:" in observation and 'Mention "Oak Street".' in observation
    assert info["difficulty"] == 1 and info["family"] == "dataset"
    answer = solve(observation)
    _, reward, terminated, _, end = env.step(answer)
    assert terminated and end["success"] and reward == 1.0
    assert set(end["reward_components"]) == {
        "club",
        "length",
        "sign_off",
        "integrity/prose",
        "integrity/no_echo",
    }
    yaml_path = tmp_path / "tasks.yaml"
    import yaml

    yaml_path.write_text(yaml.safe_dump([RECORD]))
    again, _ = gym.make(ENV_ID, dataset=str(yaml_path)).reset(seed=0)
    assert again == observation


def test_dataset_errors_name_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    broken = dict(RECORD, rubric=[{"name": "x", "check": {"type": "word_count"}}])
    path.write_text(json.dumps(RECORD) + "\n" + json.dumps(broken) + "\n")
    with pytest.raises(ValueError, match="line 2: word_count"):
        RubricQAEnv(dataset=path)


def test_judged_datasets_need_a_judge(tmp_path):
    warm = {
        "name": "warm",
        "category": "style",
        "check": {"type": "judge", "question": "Is the note warm and welcoming?"},
    }
    record = dict(RECORD, rubric=[*RECORD["rubric"], warm])
    path = tmp_path / "judged.jsonl"
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(ValueError, match="judge"):
        RubricQAEnv(dataset=path)
    env = RubricQAEnv(dataset=path, judge=lambda question, answer, prompt: 1.0)
    observation, _ = env.reset(seed=0)
    assert "Is the note warm and welcoming?" in observation
    _, reward, _, _, info = env.step(solve(observation))
    assert info["reward_components"]["warm"] == 1.0 and reward == 1.0


def test_solver_gives_up_honestly_on_unreadable_tasks():
    assert solve("") == GIVE_UP
    assert solve("What is the capital of France?") == GIVE_UP
