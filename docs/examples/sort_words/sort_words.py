"""A complete verifiable domain written outside rlvr: sort words alphabetically.

This module is what ``docs/adding_a_domain.md`` walks through. It holds the four parts every
domain needs: a seeded generator (:meth:`SortWordsEnv.generate_task`), a pure verifier
(:func:`score_sorted`), a scripted solver that reads only the observation
(:class:`SortWordsSolver`) and a registration under the user's own namespace
(:func:`register`). ``rlvr check sort_words:myorg/SortWords-v0 --agent
sort_words:SortWordsSolver`` passes on it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

import gymnasium as gym

from rlvr.agents import Agent
from rlvr.envs import Message, Outcome, Reply, Task, TextEnv

ENV_ID = "myorg/SortWords-v0"
ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
WORDS = [
    "apple",
    "bridge",
    "candle",
    "dolphin",
    "ember",
    "falcon",
    "garden",
    "harbor",
    "island",
    "jungle",
    "kettle",
    "lantern",
    "meadow",
    "nectar",
    "orchid",
    "pepper",
    "quartz",
    "river",
    "saddle",
    "timber",
    "umbrella",
    "velvet",
    "willow",
    "yonder",
    "zephyr",
    "anchor",
    "basil",
    "cobalt",
    "dune",
    "echo",
    "fable",
    "glacier",
    "hollow",
    "ivory",
    "jasper",
    "kiwi",
    "lotus",
]


def score_sorted(reply: str, words: Sequence[str]) -> dict[str, float]:
    """Score a reply against the words to sort; pure, never raises.

    Returns two components in [0, 1]: ``sorted`` (1 when the answer is exactly the words in
    alphabetical order) and ``same_words`` (1 when the answer holds exactly the given words).
    A reply with no ``<answer>`` block, or with several, scores 0 on both.
    """
    blocks = ANSWER.findall(reply)
    if len(blocks) != 1:
        return {"sorted": 0.0, "same_words": 0.0}
    answer = blocks[0].split()
    same = sorted(answer) == sorted(words)
    return {"sorted": float(answer == sorted(words)), "same_words": float(same)}


class SortWordsEnv(TextEnv):
    """Sort ``3 + 2 * difficulty`` words alphabetically; answer inside ``<answer></answer>``.

    Reward: 1.0 when the answer is exactly the sorted words, else 0.0. Single turn: the first
    reply ends the episode. ``reward_components``: ``sorted`` and ``same_words``.

    **Version History.** v0: first version.
    """

    task_prefix = "sortwords"

    def generate_task(self, task_id: str, difficulty: int, rng: random.Random) -> Task:
        words = rng.sample(WORDS, k=min(len(WORDS), 3 + 2 * difficulty))
        return Task(
            task_id=task_id,
            prompt="Sort these words alphabetically: " + ", ".join(words) + ".",
            answer=" ".join(sorted(words)),
            difficulty=difficulty,
            data={"words": tuple(words)},
        )

    def system_prompt(self) -> str:
        return "Reply with the sorted words separated by spaces inside <answer></answer>."

    def begin(self, task: Task) -> str:
        return task.prompt

    def respond(self, action: str) -> Reply:
        assert self.task is not None
        components = score_sorted(action, self.task.data["words"])
        success = components["sorted"] == 1.0
        outcome = Outcome(
            success=success,
            reward=components["sorted"],
            reward_components=components,
            verification=f"answer compared with the sorted words: {components}",
            feedback=f"The sorted words are: {self.task.answer}",
            reference=self.task.answer,
        )
        return Reply(
            "Correct." if success else "Not sorted.", outcome.reward, True, outcome=outcome
        )

    def reject(self, reason: str) -> Reply:
        return self.respond("")

    def oracle_action(self) -> str | None:
        return None if self.task is None else f"<answer>{self.task.answer}</answer>"


class SortWordsSolver(Agent):
    """Reads the words from the observation and sorts them."""

    name = "sort-words-solver"

    def act(self, dialogue: Sequence[Message]) -> str:
        first = next(m.content for m in dialogue if m.role == "user")
        listed = first.split(":", 1)[-1].strip().rstrip(".")
        words = [w.strip() for w in listed.split(",") if w.strip()]
        return f"<answer>{' '.join(sorted(words))}</answer>"


def register() -> None:
    """Register the env under the user's own namespace (idempotent)."""
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point=f"{__name__}:SortWordsEnv")


register()
