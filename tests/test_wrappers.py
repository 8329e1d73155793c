"""Wrappers: turn limit, transcript recording, play(), and the RLVE curriculum."""

from __future__ import annotations

import gymnasium as gym
import pytest
import sort_words

from rlvr.envs import (
    AdaptiveDifficulty,
    CurriculumState,
    RecordTranscript,
    Reply,
    Task,
    TextEnv,
    TurnLimit,
    play,
)
from rlvr.envs.types import Outcome


class CountdownEnv(TextEnv):
    """Say 'stop' to end the episode; anything else continues (a truly multi-turn toy)."""

    def generate_task(self, task_id, difficulty, rng):
        return Task(task_id, "say stop", "stop", difficulty)

    def system_prompt(self):
        return "toy"

    def begin(self, task):
        return "go"

    def respond(self, action):
        if action == "stop":
            outcome = Outcome(True, 1.0, {"stopped": 1.0}, "said stop", "", "stop")
            return Reply("bye", 1.0, True, outcome=outcome)
        return Reply(f"turn {self.turn}", role="tool")


def test_turn_limit_truncates_only_undecided_episodes():
    env = TurnLimit(CountdownEnv(), max_turns=2)
    env.reset(seed=0)
    assert env.step("a")[2:4] == (False, False)
    assert env.step("b")[2:4] == (False, True)
    env.reset(seed=0)
    env.step("a")
    _, _, terminated, truncated, _ = env.step("stop")
    assert terminated and not truncated
    with pytest.raises(ValueError):
        TurnLimit(CountdownEnv(), max_turns=0)


def test_record_transcript_and_messages():
    env = RecordTranscript(CountdownEnv())
    env.reset(seed=3)
    env.step("hello")
    env.step("stop")
    transcript = env.transcript
    assert [t.action for t in transcript.turns] == ["hello", "stop"]
    assert transcript.success and transcript.total_reward == 1.0 and not transcript.truncated
    roles = [m.role for m in transcript.messages()]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]


def test_play_returns_a_truncated_transcript_when_the_budget_runs_out():
    transcript = play(CountdownEnv(), lambda dialogue: "more", seed=0, max_turns=3)
    assert len(transcript.turns) == 3 and transcript.truncated and transcript.outcome is None
    solved = play(CountdownEnv(), lambda dialogue: "stop", seed=0)
    assert solved.success and len(solved.turns) == 1


def test_play_feeds_the_growing_dialogue_to_the_policy():
    seen = []

    def policy(dialogue):
        seen.append([m.content for m in dialogue])
        return "stop" if len(dialogue) > 3 else "x"

    play(CountdownEnv(), policy, seed=0)
    assert seen == [["toy", "go"], ["toy", "go", "x", "turn 1"]]


def _episode(env, success):
    env.reset()
    unwrapped = env.unwrapped
    env.step(unwrapped.oracle_action() if success else "wrong")


def test_adaptive_difficulty_follows_the_rlve_rule():
    env = AdaptiveDifficulty(
        gym.make(sort_words.ENV_ID), episodes_per_check=4, accuracy_threshold=0.75, window=3
    )
    env.reset(seed=0)
    assert env.state == CurriculumState(low=0, high=0, attempts=0, successes=0)
    # 3 of 4 successes at d == high = 0 -> high becomes 1
    for success in (True, True, False, True):
        _episode(env, success)
    assert env.state == CurriculumState(low=0, high=1, attempts=0, successes=0)
    # episodes below high do not count; 2 of 4 at high fails the check, counters reset
    env.record(0, True)
    for success in (True, False, False, True):
        env.record(1, success)
    assert env.state == CurriculumState(low=0, high=1, attempts=0, successes=0)
    # climb: the window keeps at most 3 levels
    for level in (1, 2, 3):
        for _ in range(4):
            env.record(level, True)
    assert env.state_dict()["high"] == 4 and env.state_dict()["low"] == 2


def test_adaptive_difficulty_samples_inside_the_window_and_round_trips_state():
    env = AdaptiveDifficulty(gym.make(sort_words.ENV_ID), start=3, window=2)
    env.load_state_dict({"low": 2, "high": 5, "attempts": 1, "successes": 1})
    levels = {env.reset(seed=s)[1]["difficulty"] for s in range(40)}
    assert levels == {2, 3, 4, 5}
    copy = AdaptiveDifficulty(gym.make(sort_words.ENV_ID))
    copy.load_state_dict(env.state_dict())
    assert copy.state == env.state
    # the RNG travels with the state: both draw the same levels from here on
    draws = [copy.sample_difficulty() for _ in range(20)]
    assert draws == [env.sample_difficulty() for _ in range(20)]
    with pytest.raises(ValueError, match="keys"):
        copy.load_state_dict({"low": 0})
    with pytest.raises(ValueError, match="inconsistent"):
        copy.load_state_dict({"low": 3, "high": 1, "attempts": 0, "successes": 0})
    with pytest.raises(ValueError, match="accuracy_threshold"):
        AdaptiveDifficulty(gym.make(sort_words.ENV_ID), accuracy_threshold=0)


def test_adaptive_difficulty_counts_truncation_as_failure():
    env = AdaptiveDifficulty(TurnLimit(CountdownEnv(), 1), episodes_per_check=2)
    for _ in range(2):
        env.reset(seed=0)
        env.step("never stops")
    assert env.state_dict()["high"] == 0
    for _ in range(2):
        env.reset(seed=0)
        env.step("stop")
    assert env.state_dict()["high"] == 1


def test_adaptive_difficulty_on_a_dataset_past_its_hardest_level(tmp_path):
    import json

    path = tmp_path / "math.jsonl"
    rows = [
        {"id": f"t{d}", "problem": "What is $1+1$?", "answer": "2", "difficulty": d} for d in (0, 1)
    ]
    path.write_text("\n".join(json.dumps(row) for row in rows))
    env = AdaptiveDifficulty(gym.make("rlvr/Math-v0", dataset=str(path)), episodes_per_check=2)
    levels = []
    for seed in range(12):
        _, info = env.reset(seed=seed)
        levels.append(info["difficulty"])
        env.step("\\boxed{2}")
    assert env.state.high == 2 and set(levels) == {0, 1}  # past the data: its top level served
