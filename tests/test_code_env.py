"""rlvr/Code-v0: generated tasks, HumanEval data, multi-turn feedback, reward modes, agents."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import gymnasium as gym
import pytest

import rlvr
from rlvr.agents.scripted.code import GIVE_UP, CodeSolver, ReferenceAgent, solve_statement
from rlvr.envs import play
from rlvr.envs.code.env import CodeEnv
from rlvr.envs.code.families import FAMILIES

gym.register_envs(rlvr)


@pytest.fixture(scope="module")
def humaneval():
    return CodeEnv(dataset="humaneval", max_turns=1, timeout=5.0)


def test_every_family_is_drawn_and_solved_at_its_level():
    env = CodeEnv(max_turns=1)
    seen = set()
    for seed in range(120):
        env.reset(seed=seed, options={"difficulty": seed % 5})
        task = env.task
        seen.add(task.family)
        assert solve_statement(task.prompt) is not None, task.prompt
    assert seen == {family.name for family in FAMILIES}


def test_same_seed_same_episode_in_another_process_and_hash_seed():
    script = (
        "import json, gymnasium as gym, rlvr\n"
        "gym.register_envs(rlvr)\n"
        "env = gym.make('rlvr/Code-v0', difficulty=(0, 5))\n"
        "out = []\n"
        "for seed in range(6):\n"
        "    obs, info = env.reset(seed=seed)\n"
        "    t = env.unwrapped.task\n"
        "    name = t.data['suite'].entry_point\n"
        "    wrong = f'```python\\ndef {name}(*a):\\n    print(a, object())\\n    return 7\\n```'\n"
        "    feedback = env.step(wrong)[0]\n"
        "    out.append([obs, info['task_id'], repr(t.data['suite']), feedback])\n"
        "print(json.dumps(out))\n"
    )
    runs = []
    for hash_seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, env=env)
        assert done.returncode == 0, done.stderr.decode()
        runs.append(json.loads(done.stdout))
    assert runs[0] == runs[1]


def test_feedback_names_the_failing_input_and_allows_revision():
    env = gym.make("rlvr/Code-v0", max_turns=2, reward_mode="fraction")
    obs, info = env.reset(seed=3, options={"difficulty": 0})
    name = env.unwrapped.suite.entry_point
    wrong = f"```python\ndef {name}(*args):\n    print('debug line')\n    return 12345\n```"
    obs, reward, terminated, truncated, info = env.step(wrong)
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert "Passed 0 of" in obs and "call:" in obs and "got: 12345" in obs
    assert "expected:" not in obs  # the answers stay hidden until the episode ends
    assert "debug line" in obs and "1 attempt left" in obs
    obs, reward, terminated, truncated, info = env.step(env.unwrapped.oracle_action())
    assert terminated and reward == 1.0 and info["success"]
    assert set(info["reward_components"]) == {
        f"test_{i + 1}" for i in range(len(env.unwrapped.suite.cases))
    }


def test_fraction_mode_pays_the_share_of_tests_passed():
    env = gym.make("rlvr/Code-v0", max_turns=1, reward_mode="fraction")
    env.reset(seed=0, options={"difficulty": 0})
    suite = env.unwrapped.suite
    first = suite.cases[0]
    program = f"def {suite.entry_point}(*args):\n    return {first.expected!r}\n"
    _, reward, terminated, _, info = env.step(f"```python\n{program}```")
    values = list(info["reward_components"].values())
    assert terminated and 0 < reward < 1 and reward == pytest.approx(sum(values) / len(values))
    assert info["reward_components"]["test_1"] == 1.0 and not info["success"]
    assert info["reference"] and "Passed" in info["feedback"]


def test_unreadable_and_broken_replies_never_raise():
    env = gym.make("rlvr/Code-v0", max_turns=1)
    for action in (None, "x" * 200_000, "```python\ndef f(:\n```", "", "\ud800"):
        env.reset(seed=1)
        _, reward, terminated, _, info = env.step(action)
        assert terminated and reward == 0.0 and not info["success"]
        assert all(v == 0.0 for v in info["reward_components"].values())
    env.reset(seed=1)
    _, _, _, _, info = env.step("```python\ndef f(:\n```")
    assert info["feedback"].startswith("Your program does not parse")


def test_timeout_is_the_constructor_argument():
    env = gym.make("rlvr/Code-v0", timeout=1.5, max_turns=1)
    assert env.unwrapped.timeout == 1.5
    with pytest.raises(ValueError):
        gym.make("rlvr/Code-v0", reward_mode="partial")
    with pytest.raises(ValueError):
        gym.make("rlvr/Code-v0", max_turns=0)


def test_every_humaneval_canonical_solution_passes_and_broken_ones_fail(humaneval):
    """All 164 problems, run in parallel through the sandbox (a few seconds on 2 cores)."""
    assert len(humaneval.tasks) == 164
    agent = ReferenceAgent("humaneval")
    local = threading.local()

    def env_of_this_thread():
        if not hasattr(local, "env"):
            local.env = copy.copy(humaneval)  # shares the loaded tasks, not the episode state
        return local.env

    def canonical(task):
        env = env_of_this_thread()
        transcript = play(env, agent, options={"task_id": task.task_id})
        return task.task_id, transcript.outcome.success, transcript.outcome.verification

    def broken(task):
        env = env_of_this_thread()
        env.reset(options={"task_id": task.task_id})
        suite = task.data["suite"]
        program = suite.setup + "    return None\n"
        _, reward, _, _, info = env.step(f"```python\n{program}```")
        return task.task_id, reward, info["success"]

    with ThreadPoolExecutor(4) as pool:
        good = list(pool.map(canonical, humaneval.tasks))
        bad = list(pool.map(broken, humaneval.tasks))
    assert [t for t, ok, _ in good if not ok] == []
    assert [t for t, reward, ok in bad if ok or reward] == []


def test_a_jsonl_dataset_in_the_humaneval_schema(tmp_path):
    record = {
        "task_id": "mine/0",
        "prompt": 'def double(x):\n    """Twice x."""\n',
        "canonical_solution": "    return 2 * x\n",
        "test": "def check(candidate):\n    assert candidate(2) == 4\n"
        "    assert candidate(0) == 0\n",
        "entry_point": "double",
    }
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(record) + "\n")
    env = gym.make("rlvr/Code-v0", dataset=str(path), max_turns=1)
    transcript = play(env, ReferenceAgent(path), seed=0)
    assert transcript.success and transcript.outcome.reference.endswith("return 2 * x\n")
    assert set(transcript.outcome.reward_components) == {"test_1", "test_2"}
    path.write_text(json.dumps({**record, "test": "x = 1"}) + "\n")
    with pytest.raises(ValueError, match="line 1"):
        CodeEnv(dataset=str(path))


def test_solver_gives_up_on_unknown_statements():
    from rlvr.envs.types import Message

    dialogue = [Message("system", ""), Message("user", "Write a haiku.")]
    assert CodeSolver().act(dialogue) == GIVE_UP
    assert ReferenceAgent("humaneval").act(dialogue) == GIVE_UP


def test_high_difficulty_has_more_tests():
    env = CodeEnv()
    env.reset(seed=5, options={"difficulty": 0})
    low = len(env.suite.cases)
    env.reset(seed=5, options={"difficulty": 8})
    assert len(env.suite.cases) > low


def test_feedback_between_attempts_never_reveals_expected_values():
    """A policy that memorizes expected values shown in feedback must not be able to win."""
    env = gym.make("rlvr/Code-v0", dataset="humaneval", max_turns=3)
    env.reset(options={"task_id": "HumanEval/77"})  # iscube: asserts show the answers
    entry = env.unwrapped.suite.entry_point
    obs, reward, terminated, _, _ = env.step(f"```python\ndef {entry}(a):\n    return 0\n```")
    assert not terminated and reward == 0.0
    assert "call: iscube(1)" in obs and "got: 0" in obs
    assert "expected" not in obs and "== True" not in obs and "assert" not in obs
    _, _, _, _, info = env.step(f"```python\ndef {entry}(a):\n    return 1\n```")
    _, _, terminated, _, info = env.step(f"```python\ndef {entry}(a):\n    return 2\n```")
    assert terminated and "== True" in info["feedback"]  # after the end, for training


def test_constant_functions_do_not_pass_generated_tasks():
    env = gym.make("rlvr/Code-v0", max_turns=1)
    constants = ["0", "1", "''", "[]", "None", "True", "False", "-1", "{}"]
    for seed in range(40):
        env.reset(seed=seed)
        entry = env.unwrapped.suite.entry_point
        for constant in constants:
            env.reset(seed=seed)
            reply = f"```python\ndef {entry}(*a, **k):\n    return {constant}\n```"
            assert env.step(reply)[1] == 0.0, (seed, constant)
