"""The RLVE adaptive-difficulty curriculum, as a wrapper that works on any rlvr env.

RLVE (Zeng et al., arXiv 2511.07317) and Ecom-RLVE keep a window ``[low, high]`` of levels
per environment. Each episode draws ``d`` uniformly from the window. Only episodes played at
``d == high`` count: after ``episodes_per_check`` of them, if their success rate is at least
``accuracy_threshold`` then ``high += 1`` (and ``low`` follows so that the window holds at most
``window`` levels). The counters reset after every check, successful or not; ``high`` never
goes down. Defaults follow Ecom-RLVE's ``difficulty/adaptive.py`` (32 episodes, 0.9, window of
levels ``high-4 .. high``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np


@dataclass
class CurriculumState:
    """What the curriculum remembers; ``state_dict`` is this as a dict."""

    low: int = 0
    high: int = 0
    attempts: int = 0
    """Episodes finished at ``d == high`` since the last check."""
    successes: int = 0
    """Of those, how many succeeded."""


class Curriculum:
    """The RLVE window rule on its own, for callers that schedule episodes themselves (the
    trainer draws one level per rollout group and records every rollout of it).

    Args:
        start: the initial ``high`` (and ``low``).
        episodes_per_check: episodes at ``d == high`` between two checks (RLVE's tau_num).
        accuracy_threshold: success rate needed to raise ``high`` (RLVE's tau_acc).
        window: how many levels the window spans at most (Ecom-RLVE's d_delta + 1).
        seed: seeds the RNG that draws levels.
    """

    def __init__(
        self,
        *,
        start: int = 0,
        episodes_per_check: int = 32,
        accuracy_threshold: float = 0.9,
        window: int = 5,
        seed: int | None = None,
    ):
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        if episodes_per_check < 1:
            raise ValueError(f"episodes_per_check must be >= 1, got {episodes_per_check}")
        if not 0.0 < accuracy_threshold <= 1.0:
            raise ValueError(f"accuracy_threshold must lie in (0, 1], got {accuracy_threshold}")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.episodes_per_check = episodes_per_check
        self.accuracy_threshold = accuracy_threshold
        self.window = window
        self.state = CurriculumState(low=start, high=start)
        self.rng = np.random.default_rng(seed)

    def sample_difficulty(self) -> int:
        """Draw a level uniformly from ``[low, high]``."""
        return int(self.rng.integers(self.state.low, self.state.high + 1))

    def record(self, difficulty: int, success: bool) -> None:
        """Count one finished episode; raise ``high`` when the check passes."""
        state = self.state
        if difficulty != state.high:
            return
        state.attempts += 1
        state.successes += int(success)
        if state.attempts < self.episodes_per_check:
            return
        if state.successes / state.attempts >= self.accuracy_threshold:
            state.high += 1
            state.low = max(state.low, state.high - self.window + 1)
        state.attempts = state.successes = 0

    def state_dict(self) -> dict[str, Any]:
        """The curriculum's state and its RNG's, to save with a checkpoint (JSON-serializable)."""
        return {**asdict(self.state), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state saved by :meth:`state_dict`; unknown or missing keys are errors.

        ``rng`` may be left out (the draws then continue from the current RNG).
        """
        counters = {key: value for key, value in state.items() if key != "rng"}
        expected = set(asdict(CurriculumState()))
        if set(counters) != expected:
            raise ValueError(f"curriculum state needs exactly the keys {sorted(expected)} (+ rng)")
        loaded = CurriculumState(**{key: int(value) for key, value in counters.items()})
        if not 0 <= loaded.low <= loaded.high or not 0 <= loaded.successes <= loaded.attempts:
            raise ValueError(f"inconsistent curriculum state {counters}")
        if "rng" in state:
            rng = np.random.default_rng()
            rng.bit_generator.state = state["rng"]
            self.rng = rng
        self.state = loaded


class AdaptiveDifficulty(gym.Wrapper[str, str, str, str]):
    """Pick each episode's difficulty from the RLVE window and move the window up.

    Args:
        env: any rlvr env (its ``reset`` accepts ``options={"difficulty": d}``).
        start, episodes_per_check, accuracy_threshold, window: as for :class:`Curriculum`.

    An explicit ``options={"difficulty": d}`` or ``task_id`` passed to ``reset`` wins, and such
    an episode still counts if ``d == high``. Episodes cut short by truncation count as failures.
    ``reset(seed=s)`` reseeds the level draws.
    """

    def __init__(
        self,
        env: gym.Env[str, str],
        *,
        start: int = 0,
        episodes_per_check: int = 32,
        accuracy_threshold: float = 0.9,
        window: int = 5,
    ):
        self.curriculum = Curriculum(
            start=start,
            episodes_per_check=episodes_per_check,
            accuracy_threshold=accuracy_threshold,
            window=window,
        )
        super().__init__(env)
        self._episode_level: int | None = None

    @property
    def state(self) -> CurriculumState:
        return self.curriculum.state

    def sample_difficulty(self) -> int:
        """Draw a level uniformly from ``[low, high]``."""
        return self.curriculum.sample_difficulty()

    def record(self, difficulty: int, success: bool) -> None:
        """Count one finished episode; raise ``high`` when the check passes."""
        self.curriculum.record(difficulty, success)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        if seed is not None:
            self.curriculum.rng = np.random.default_rng(seed)
        options = dict(options or {})
        if "difficulty" not in options and "task_id" not in options:
            options["difficulty"] = self.sample_difficulty()
        observation, info = self.env.reset(seed=seed, options=options)
        self._episode_level = int(info.get("difficulty", options.get("difficulty", 0)))
        info["curriculum"] = asdict(self.state)
        return observation, info

    def step(self, action: str) -> tuple[str, Any, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        if (terminated or truncated) and self._episode_level is not None:
            self.record(self._episode_level, bool(terminated and info.get("success", False)))
            self._episode_level = None
        return observation, reward, terminated, truncated, info

    def state_dict(self) -> dict[str, Any]:
        """The curriculum's state and its RNG's, to save with a checkpoint (JSON-serializable)."""
        return self.curriculum.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state saved by :meth:`state_dict` (see :meth:`Curriculum.load_state_dict`)."""
        self.curriculum.load_state_dict(state)
