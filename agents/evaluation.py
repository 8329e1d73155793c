"""Benchmark any agent on any env: success with a confidence interval, pass@k, pass^k, turns.

Episodes are played in lockstep batches: at every turn the agent gets all live dialogues at
once through ``act_batch``, so a model-backed agent generates for the whole batch together.
Task ``i`` is reset with ``seed + i``; with ``samples = k`` it is played ``k`` times from the
same seed, so the ``k`` samples see the same task.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym

from rlvr.agents.base import Agent
from rlvr.envs.core import dialogue_from, extend_dialogue
from rlvr.envs.types import Message


@dataclass(frozen=True)
class EpisodeRecord:
    """One finished episode of an evaluation."""

    task_id: str
    task_index: int
    sample: int
    difficulty: int
    family: str
    success: bool
    reward: float
    """The episode return (sum of the step rewards)."""
    turns: int
    truncated: bool
    reply_chars: int
    verification: str = ""
    components: Mapping[str, float] = field(default_factory=dict)
    """The env's ``reward_components`` at the episode's last step (``{"answer": 1.0,
    "format": 1.0}`` for Math-v0)."""


@dataclass(frozen=True)
class GroupStats:
    """Success and reward over a subset of the episodes (one difficulty, say)."""

    episodes: int
    success_rate: float
    ci_low: float
    ci_high: float
    mean_reward: float
    mean_turns: float


@dataclass(frozen=True)
class EvalReport:
    """Everything ``rlvr eval`` prints, and the same numbers for ``--json``."""

    env_id: str
    agent: str
    episodes: int
    """Episodes played in all (tasks x samples)."""
    tasks: int
    samples: int
    success_rate: float
    ci_low: float
    ci_high: float
    """Wilson 95% interval of the success rate."""
    mean_reward: float
    mean_turns: float
    truncated_rate: float
    mean_tokens: float | None
    """Generated tokens per episode; ``None`` for agents that do not count tokens."""
    mean_reply_chars: float
    pass_at_k: dict[int, float] = field(default_factory=dict)
    """Unbiased pass@k (Chen et al. 2021): some of k samples succeeds."""
    pass_hat_k: dict[int, float] = field(default_factory=dict)
    """pass^k (Yao et al. 2024, tau-bench): all of k samples succeed."""
    mean_components: dict[str, float] = field(default_factory=dict)
    """Each reward component averaged over the episodes that report it."""
    per_difficulty: dict[int, GroupStats] = field(default_factory=dict)
    records: tuple[EpisodeRecord, ...] = ()

    def to_json(self, *, with_records: bool = False) -> dict[str, Any]:
        data = asdict(self)
        if not with_records:
            data.pop("records")
        return data


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion (95% by default)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of ``k`` samples drawn from ``n`` (``c`` correct) is."""
    if k > n:
        raise ValueError(f"k={k} exceeds the {n} samples")
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float:
    """Probability that all ``k`` samples drawn from ``n`` (``c`` correct) are correct."""
    if k > n:
        raise ValueError(f"k={k} exceeds the {n} samples")
    return math.comb(c, k) / math.comb(n, k)


def _k_values(samples: int) -> list[int]:
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64) if k <= samples]
    return ks if samples in ks else [*ks, samples]


def _group(records: Sequence[EpisodeRecord]) -> GroupStats:
    n = len(records)
    wins = sum(r.success for r in records)
    low, high = wilson_interval(wins, n)
    return GroupStats(
        episodes=n,
        success_rate=wins / n if n else 0.0,
        ci_low=low,
        ci_high=high,
        mean_reward=sum(r.reward for r in records) / n if n else 0.0,
        mean_turns=sum(r.turns for r in records) / n if n else 0.0,
    )


def summarize(
    env_id: str, agent: str, records: Sequence[EpisodeRecord], samples: int, tokens: int | None
) -> EvalReport:
    """Aggregate episode records into a report."""
    overall = _group(records)
    by_task: dict[int, list[bool]] = defaultdict(list)
    by_level: dict[int, list[EpisodeRecord]] = defaultdict(list)
    for record in records:
        by_task[record.task_index].append(record.success)
        by_level[record.difficulty].append(record)
    ks = _k_values(samples)
    n_tasks = len(by_task)

    def mean_over_tasks(metric: Callable[[int, int, int], float], k: int) -> float:
        return sum(metric(len(s), sum(s), k) for s in by_task.values()) / max(1, n_tasks)

    n = len(records)
    return EvalReport(
        env_id=env_id,
        agent=agent,
        episodes=n,
        tasks=n_tasks,
        samples=samples,
        success_rate=overall.success_rate,
        ci_low=overall.ci_low,
        ci_high=overall.ci_high,
        mean_reward=overall.mean_reward,
        mean_turns=overall.mean_turns,
        truncated_rate=sum(r.truncated for r in records) / n if n else 0.0,
        mean_tokens=None if tokens is None else (tokens / n if n else 0.0),
        mean_reply_chars=sum(r.reply_chars for r in records) / n if n else 0.0,
        pass_at_k={k: mean_over_tasks(pass_at_k, k) for k in ks},
        pass_hat_k={k: mean_over_tasks(pass_hat_k, k) for k in ks},
        per_difficulty={level: _group(by_level[level]) for level in sorted(by_level)},
        mean_components=_mean_components(records),
        records=tuple(records),
    )


def _mean_components(records: Sequence[EpisodeRecord]) -> dict[str, float]:
    values: dict[str, list[float]] = defaultdict(list)
    for record in records:
        for key, value in record.components.items():
            values[key].append(value)
    return {key: sum(v) / len(v) for key, v in sorted(values.items())}


@dataclass
class _Live:
    """An episode in progress inside a lockstep batch."""

    env: gym.Env[str, str]
    task_index: int
    sample: int
    info: dict[str, Any]
    dialogue: list[Message]
    turns: int = 0
    reply_chars: int = 0
    reward: float = 0.0


def _finish(live: _Live, terminated: bool, info: dict[str, Any]) -> EpisodeRecord:
    return EpisodeRecord(
        task_id=str(live.info.get("task_id", "")),
        task_index=live.task_index,
        sample=live.sample,
        difficulty=int(live.info.get("difficulty", 0)),
        family=str(live.info.get("family", "")),
        success=terminated and bool(info.get("success", False)),
        reward=live.reward,
        turns=live.turns,
        truncated=not terminated,
        reply_chars=live.reply_chars,
        verification=str(info.get("verification", "")),
        components=_numeric(info.get("reward_components")),
    )


def _numeric(components: Any) -> dict[str, float]:
    """The numeric entries of an env's ``reward_components`` (anything else is ignored)."""
    if not isinstance(components, Mapping):
        return {}
    return {
        str(key): float(value)
        for key, value in components.items()
        if isinstance(value, int | float) and math.isfinite(value)
    }


def evaluate(
    make_env: Callable[[], gym.Env[str, str]],
    agent: Agent,
    *,
    env_id: str,
    episodes: int,
    seed: int = 0,
    samples: int = 1,
    difficulty: int | None = None,
    batch_size: int = 32,
    max_turns: int = 32,
    on_episode: Callable[[EpisodeRecord], None] | None = None,
) -> EvalReport:
    """Play ``episodes`` tasks ``samples`` times each and summarize.

    ``max_turns`` is a safety budget: an episode still open after it counts as truncated.
    """
    if episodes < 1 or samples < 1 or batch_size < 1 or max_turns < 1:
        raise ValueError("episodes, samples, batch_size and max_turns must all be >= 1")
    options = {"difficulty": difficulty} if difficulty is not None else None
    jobs = [(i, s) for i in range(episodes) for s in range(samples)]
    records: list[EpisodeRecord] = []
    tokens_before = agent.tokens_used
    for start in range(0, len(jobs), batch_size):
        live = []
        for task_index, sample in jobs[start : start + batch_size]:
            env = make_env()
            observation, info = env.reset(seed=seed + task_index, options=options)
            live.append(_Live(env, task_index, sample, info, dialogue_from(observation, info)))
        while live:
            actions = agent.act_batch([episode.dialogue for episode in live])
            still_live = []
            for episode, action in zip(live, actions, strict=True):
                observation, reward, terminated, truncated, info = episode.env.step(action)
                episode.turns += 1
                episode.reply_chars += len(action)
                episode.reward += float(reward)
                truncated = truncated or (not terminated and episode.turns >= max_turns)
                if terminated or truncated:
                    record = _finish(episode, terminated, info)
                    records.append(record)
                    episode.env.close()
                    if on_episode is not None:
                        on_episode(record)
                else:
                    episode.dialogue = extend_dialogue(episode.dialogue, action, observation, info)
                    still_live.append(episode)
            live = still_live
    records.sort(key=lambda r: (r.task_index, r.sample))
    tokens = agent.tokens_used - tokens_before if agent.counts_tokens else None
    return summarize(env_id, agent.name, records, samples, tokens)
