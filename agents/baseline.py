"""Baseline agents that need no model: a floor for ``rlvr eval`` and a stand-in for tests."""

from __future__ import annotations

import random
from collections.abc import Sequence

from rlvr.agents.base import Agent
from rlvr.envs.types import Message

_WORDS = (
    "the answer is",
    "let me think",
    "so",
    "therefore",
    "maybe",
    "we get",
    "x",
    "equals",
    "step",
    "check",
)


class RandomAgent(Agent):
    """Replies with a few random words, usually followed by a random integer in ``\\boxed{}``.

    Replies ignore the dialogue and follow one seeded stream: two agents with the same seed
    give the same replies in the same order, and repeated calls differ.

    Args:
        seed: Seed of the reply stream; ``None`` seeds from the OS.
        low: Smallest boxed integer.
        high: Largest boxed integer.
        box_probability: Chance that a reply ends with a boxed integer.
    """

    name = "random"

    def __init__(
        self,
        seed: int | None = 0,
        *,
        low: int = -10,
        high: int = 100,
        box_probability: float = 0.9,
    ) -> None:
        super().__init__()
        if low > high or not 0.0 <= box_probability <= 1.0:
            raise ValueError("need low <= high and box_probability in [0, 1]")
        self.low, self.high, self.box_probability = low, high, box_probability
        self._rng = random.Random(seed)

    def act(self, dialogue: Sequence[Message]) -> str:
        """A random reply (the dialogue is not read)."""
        words = " ".join(self._rng.choice(_WORDS) for _ in range(self._rng.randint(1, 6)))
        if self._rng.random() < self.box_probability:
            return f"{words} \\boxed{{{self._rng.randint(self.low, self.high)}}}"
        return words


class EchoAgent(Agent):
    """Repeats the last message it was sent (an empty reply when there is none but the system
    prompt); handy to probe how an env treats junk."""

    name = "echo"

    def act(self, dialogue: Sequence[Message]) -> str:
        """The content of the last non-system message."""
        for message in reversed(dialogue):
            if message.role != "system":
                return message.content
        return ""
