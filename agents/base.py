"""The agent protocol: a dialogue in, the next reply out, one at a time or in batches."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from rlvr.envs.types import Message


@dataclass(frozen=True)
class SamplingConfig:
    """Sampling settings shared by model-backed agents."""

    temperature: float = 1.0
    """0 means greedy decoding."""
    top_p: float = 1.0
    max_new_tokens: int = 512
    seed: int | None = None
    """Seed for the sampler, where the backend takes one."""

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must lie in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


class Agent(ABC):
    """Maps a dialogue (system prompt first, then alternating env and agent messages) to a reply.

    Subclasses implement :meth:`act`; model-backed agents override :meth:`act_batch` to
    generate for many dialogues at once. ``tokens_used`` counts generated tokens where the
    backend reports them (0 otherwise), for evaluation reports.
    """

    name: str = "agent"
    counts_tokens: bool = False
    """Whether ``tokens_used`` means anything (model-backed agents set it)."""

    def __init__(self) -> None:
        self.tokens_used = 0

    @abstractmethod
    def act(self, dialogue: Sequence[Message]) -> str:
        """The next reply for one dialogue."""

    def act_batch(self, dialogues: Sequence[Sequence[Message]]) -> list[str]:
        """The next reply for each dialogue; in order."""
        return [self.act(dialogue) for dialogue in dialogues]

    def __call__(self, dialogue: Sequence[Message]) -> str:
        return self.act(dialogue)

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release resources (servers, models); optional."""
