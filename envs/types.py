"""Typed records that cross module lines: tasks, messages, outcomes and transcripts.

Everything here is a frozen dataclass so that a record handed from an env to an agent,
an evaluator or the trainer cannot be changed behind the producer's back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]


def _frozen_mapping(data: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(data or {}))


@dataclass(frozen=True)
class Message:
    """One chat message, as a chat template expects it."""

    role: Role
    """Who speaks: ``system``, ``user`` (the env), ``assistant`` (the agent) or ``tool``."""
    content: str
    """The text of the message."""

    def as_dict(self) -> dict[str, str]:
        """The ``{"role", "content"}`` dict that chat templates and HTTP APIs take."""
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Task:
    """One task instance: what the agent is asked, and what the verifier checks against.

    ``task_id`` is stable: passing it back through ``reset(options={"task_id": ...})``
    gives the same task again, whether it came from a dataset or from the generator.
    """

    task_id: str
    """Stable identifier; generator ids encode the difficulty and the seed."""
    prompt: str
    """The problem statement shown to the agent."""
    answer: str | None
    """The gold answer or solution, when there is one."""
    difficulty: int
    """Difficulty level, 0 = easiest."""
    family: str = ""
    """Sub-domain of the task (``linear_equation``, ``dataset``...), for per-family results."""
    data: Mapping[str, Any] = field(default_factory=dict)
    """Env-specific extras (hidden tests, rubric, world state seed...)."""

    def __post_init__(self) -> None:
        if self.difficulty < 0:
            raise ValueError(f"difficulty must be >= 0, got {self.difficulty}")
        object.__setattr__(self, "data", _frozen_mapping(self.data))


@dataclass(frozen=True)
class Outcome:
    """The verified result of an episode, written into the terminal ``info``.

    Every component lies in [0, 1]; ``reward`` is what the env pays for the episode.
    """

    success: bool
    """Whether the task was solved (the strict criterion of the env)."""
    reward: float
    """The episode reward in [0, 1]."""
    reward_components: Mapping[str, float]
    """One entry per criterion or component, each in [0, 1]."""
    verification: str
    """What was checked and what was found, in one or a few lines."""
    feedback: str
    """Rich feedback for feedback-based training: the expected answer, a correction, a trace."""
    reference: str | None = None
    """A gold solution, where one exists."""
    answer: str | None = None
    """The agent's final answer as the env's verifier extracted it (``info["answer"]``, only
    where the env has one answer to extract: label-free rewards cluster these)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.reward <= 1.0:
            raise ValueError(f"reward must lie in [0, 1], got {self.reward}")
        for name, value in self.reward_components.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"reward component {name!r} must lie in [0, 1], got {value}")
        object.__setattr__(self, "reward_components", _frozen_mapping(self.reward_components))

    def as_info(self) -> dict[str, Any]:
        """The keys the contract puts into the terminal ``info`` dict."""
        info: dict[str, Any] = {
            "success": self.success,
            "reward_components": dict(self.reward_components),
            "verification": self.verification,
            "feedback": self.feedback,
            "reference": self.reference,
        }
        if self.answer is not None:
            info["answer"] = self.answer
        return info


@dataclass(frozen=True)
class Reply:
    """What an env answers to one agent action (the env-side half of a turn)."""

    observation: str
    """The next message to the agent."""
    reward: float = 0.0
    """The reward for this step, in [0, 1]."""
    terminated: bool = False
    """The task was decided (solved or failed for good)."""
    role: Role = "user"
    """How to present ``observation`` in a chat: ``user`` or ``tool``."""
    outcome: Outcome | None = None
    """The verified result; required when ``terminated``."""

    def __post_init__(self) -> None:
        if self.terminated and self.outcome is None:
            raise ValueError("a terminating reply must carry an Outcome")


@dataclass(frozen=True)
class Turn:
    """One agent action and the env's answer to it."""

    action: str
    observation: str
    reward: float
    terminated: bool
    truncated: bool
    role: Role = "user"


@dataclass(frozen=True)
class Transcript:
    """A whole episode: how it started, every turn, and how it ended."""

    env_id: str
    task_id: str
    seed: int | None
    difficulty: int
    system_prompt: str
    first_observation: str
    turns: tuple[Turn, ...]
    outcome: Outcome | None
    """The terminal outcome; ``None`` when the episode was truncated before a decision."""

    @property
    def total_reward(self) -> float:
        return float(sum(turn.reward for turn in self.turns))

    @property
    def success(self) -> bool:
        return bool(self.outcome and self.outcome.success)

    @property
    def truncated(self) -> bool:
        return bool(self.turns and self.turns[-1].truncated)

    def messages(self) -> list[Message]:
        """The dialogue as chat messages, system prompt first."""
        out = [Message("system", self.system_prompt), Message("user", self.first_observation)]
        for turn in self.turns:
            out.append(Message("assistant", turn.action))
            if not (turn.terminated or turn.truncated):
                out.append(Message(turn.role, turn.observation))
        return out
