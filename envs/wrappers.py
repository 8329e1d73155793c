"""Wrappers that add behaviour to any rlvr env: a turn limit, transcript recording, episodes.

Each wrapper does one thing, as Gymnasium's do. The RLVE curriculum lives in
:mod:`rlvr.envs.curriculum`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym

from rlvr.envs.core import dialogue_from, extend_dialogue
from rlvr.envs.types import Message, Outcome, Transcript, Turn

Policy = Callable[[Sequence[Message]], str]
"""Anything that maps a dialogue (system prompt first) to the agent's next reply."""


class TurnLimit(gym.Wrapper[str, str, str, str]):
    """Truncate the episode after ``max_turns`` agent replies that did not decide the task.

    ``truncated`` is set only when the budget runs out on a step that did not terminate, so the
    two signals never mix. ``gym.make(id, max_episode_steps=n)`` gives the same behaviour
    through Gymnasium's ``TimeLimit`` and the :class:`EndFlags` wrapper that every rlvr id is
    registered with.
    """

    def __init__(self, env: gym.Env[str, str], max_turns: int):
        if max_turns < 1:
            raise ValueError(f"max_turns must be >= 1, got {max_turns}")
        super().__init__(env)
        self.max_turns = max_turns
        self._turns = 0

    def reset(self, **kwargs: Any) -> tuple[str, dict[str, Any]]:
        self._turns = 0
        return self.env.reset(**kwargs)

    def step(self, action: str) -> tuple[str, Any, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        self._turns += 1
        if self._turns >= self.max_turns and not terminated:
            truncated = True
        return observation, reward, terminated, truncated, info


class EndFlags(gym.Wrapper[str, str, str, str], gym.utils.RecordConstructorArgs):
    """Keep ``terminated`` and ``truncated`` apart: a step that decides the task is not truncated.

    Gymnasium's ``TimeLimit`` sets ``truncated=True`` on the last allowed step even when that
    step also terminated the episode. Every ``rlvr/...`` id is registered with this wrapper,
    which ``gym.make`` applies outside ``TimeLimit``, so an answer given on the last allowed
    turn counts as an answer.
    """

    def __init__(self, env: gym.Env[str, str]):
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)

    def step(self, action: str) -> tuple[str, Any, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        return observation, reward, terminated, truncated and not terminated, info


class RecordTranscript(gym.Wrapper[str, str, str, str]):
    """Keep the dialogue of the current episode as a :class:`Transcript`."""

    def __init__(self, env: gym.Env[str, str]):
        super().__init__(env)
        self._seed: int | None = None
        self._reset_info: dict[str, Any] = {}
        self._first_observation = ""
        self._turns: list[Turn] = []
        self._outcome: Outcome | None = None

    def reset(self, **kwargs: Any) -> tuple[str, dict[str, Any]]:
        observation, info = self.env.reset(**kwargs)
        self._seed = kwargs.get("seed")
        self._reset_info = dict(info)
        self._first_observation = observation
        self._turns = []
        self._outcome = None
        return observation, info

    def step(self, action: str) -> tuple[str, Any, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        text = action if isinstance(action, str) else repr(action)
        self._turns.append(
            Turn(text, observation, float(reward), terminated, truncated, info.get("role", "user"))
        )
        if terminated:
            self._outcome = outcome_from_info(info, float(reward))
        return observation, reward, terminated, truncated, info

    @property
    def transcript(self) -> Transcript:
        """The episode so far (complete once it terminated or was truncated)."""
        spec = self.env.spec
        return Transcript(
            env_id=spec.id if spec is not None else type(self.env.unwrapped).__name__,
            task_id=str(self._reset_info.get("task_id", "")),
            seed=self._seed,
            difficulty=int(self._reset_info.get("difficulty", 0)),
            system_prompt=str(self._reset_info.get("system_prompt", "")),
            first_observation=self._first_observation,
            turns=tuple(self._turns),
            outcome=self._outcome,
        )


def outcome_from_info(info: dict[str, Any], reward: float) -> Outcome:
    """Rebuild the terminal :class:`Outcome` from a terminal ``info`` dict."""
    return Outcome(
        success=bool(info.get("success", False)),
        reward=min(max(reward, 0.0), 1.0),
        reward_components=dict(info.get("reward_components", {})),
        verification=str(info.get("verification", "")),
        feedback=str(info.get("feedback", "")),
        reference=info.get("reference"),
    )


def play(
    env: gym.Env[str, str],
    policy: Policy,
    *,
    seed: int | None = None,
    options: dict[str, Any] | None = None,
    max_turns: int = 64,
) -> Transcript:
    """Run one episode of ``policy`` on ``env`` and return its transcript.

    ``max_turns`` is a safety budget: an episode still open after it is truncated.
    """
    recorder = RecordTranscript(TurnLimit(env, max_turns))
    observation, info = recorder.reset(seed=seed, options=options)
    dialogue = dialogue_from(observation, info)
    while True:
        action = policy(dialogue)
        observation, _, terminated, truncated, info = recorder.step(action)
        if terminated or truncated:
            return recorder.transcript
        dialogue = extend_dialogue(dialogue, action, observation, info)
