"""Multi-turn rollouts in groups: G episodes per task, batched generation, parallel env steps.

One call to :meth:`RolloutCollector.collect` plays a list of :class:`GroupSpec` (an env id, a
seed and a level): every group's G episodes reset with the same seed and options, so they start
from the same task. All live episodes of all groups generate together, one batched turn at a
time (:class:`~rlvr.training.generation.TurnSampler`, which keeps the KV cache across turns,
or whatever ``sampler_factory`` builds: an inference server's
:class:`~rlvr.training.remote_generation.CompletionsSampler`); then every episode that replied
is stepped in a thread pool, so slow env steps (code execution in the sandbox) overlap instead
of serializing the batch.

The trained sequence is the sampled one (token in, token out): the first prompt is rendered
once, sampled ids are kept as sampled, and env messages are rendered on their own and appended
(:class:`~rlvr.training.chat_tokens.ChatTokens`). ``policy_mask`` marks the sampled ids; the
prompt, env messages, chat-template glue and the end-of-turn id added after a turn cut by the
token budget carry no loss.

Budgets: ``max_new_tokens`` per turn, ``max_total_tokens`` per episode (an episode whose next
prompt would not leave room for a reply is truncated), ``max_turns`` per episode. An env that
raises in ``reset`` or ``step`` ends its episode with ``error`` set; the trainer then drops the
whole group and counts it, so groups are never silently shrunk.
"""

from __future__ import annotations

import contextlib
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym
import torch

from rlvr.envs.core import dialogue_from
from rlvr.envs.types import Message
from rlvr.training.generation import SampledTurn, SamplingSettings, TurnSampler
from rlvr.training.policy import Policy


class Sampler(Protocol):
    """What the collector needs of a sampler: :class:`~rlvr.training.generation.TurnSampler`
    (in process) or :class:`~rlvr.training.remote_generation.CompletionsSampler` (a server)."""

    @property
    def live(self) -> list[int]: ...

    def drop(self, keep: Sequence[int]) -> None: ...

    def extend(self, row: int, ids: Sequence[int]) -> None: ...

    def ids(self, row: int) -> list[int]: ...

    def sample_turn(self, budgets: Sequence[int]) -> dict[int, SampledTurn]: ...


class SamplerFactory(Protocol):
    """Builds the sampler of one cohort of ``rows`` episodes."""

    def __call__(
        self,
        *,
        rows: int,
        stop_ids: Sequence[int],
        pad_id: int,
        settings: SamplingSettings,
        generator: torch.Generator,
    ) -> Sampler: ...


@dataclass(frozen=True)
class GroupSpec:
    """One task to play G times: all episodes reset with this seed and options."""

    env_id: str
    seed: int
    difficulty: int | None
    group_size: int


@dataclass(frozen=True)
class Rollout:
    """One finished episode, as the loss and the logs need it."""

    env_id: str
    seed: int
    difficulty: int | None
    ids: tuple[int, ...]
    """The whole token sequence: prompt, sampled turns, env messages."""
    policy_mask: tuple[int, ...]
    """1 where ``ids`` holds a sampled token, else 0 (same length as ``ids``)."""
    old_logprobs: tuple[float, ...]
    """``log pi_old`` of each sampled token, 0.0 elsewhere (same length as ``ids``)."""
    turn_index: tuple[int, ...]
    """Which assistant turn each sampled token belongs to (0-based), -1 elsewhere."""
    turn_rewards: tuple[float, ...]
    """The env's reward after each assistant turn."""
    components: Mapping[str, float]
    """``info["reward_components"]`` of the last step."""
    success: bool
    terminated: bool
    truncated: bool
    messages: tuple[Message, ...]
    """The dialogue as text (system prompt, env messages, decoded replies)."""
    feedback: str = ""
    reference: str = ""
    error: str | None = None
    """Why the env failed, if it did; such rollouts are never trained on."""
    answer: str | None = None
    """``info["answer"]`` of the last step: the final answer as the env's verifier extracted
    it (``None`` where the env gives none); label-free rewards cluster these."""
    rubric: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """``info["rubric"]`` (criterion name -> weight, category, required, ...) of rubric envs,
    from the latest info that had one; empty elsewhere."""

    @property
    def reward(self) -> float:
        """The episode's return: the sum of its per-turn rewards."""
        return float(sum(self.turn_rewards))

    @property
    def completion_tokens(self) -> int:
        return int(sum(self.policy_mask))

    @property
    def turns(self) -> int:
        return len(self.turn_rewards)


@dataclass(frozen=True)
class RolloutGroup:
    """The G rollouts of one :class:`GroupSpec`."""

    spec: GroupSpec
    rollouts: tuple[Rollout, ...]

    @property
    def failed(self) -> bool:
        return any(rollout.error is not None for rollout in self.rollouts)

    @property
    def errors(self) -> list[str]:
        return [rollout.error for rollout in self.rollouts if rollout.error is not None]


@dataclass(frozen=True)
class RolloutLimits:
    max_new_tokens: int
    max_total_tokens: int
    max_turns: int


@dataclass
class _Episode:
    spec: GroupSpec
    env: Any = None
    messages: list[Message] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    turn_index: list[int] = field(default_factory=list)
    turn_rewards: list[float] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    rubric: dict[str, Any] = field(default_factory=dict)
    terminated: bool = False
    truncated: bool = False
    error: str | None = None
    done: bool = False


class EnvPool:
    """Env instances per id, made with ``gym.make(id, **kwargs)`` and reused across groups.

    An instance whose ``reset`` or ``step`` raised is closed and never handed out again.
    """

    def __init__(self, kwargs: Mapping[str, Mapping[str, Any]]):
        self._kwargs = {env_id: dict(options) for env_id, options in kwargs.items()}
        self._free: dict[str, list[Any]] = {env_id: [] for env_id in kwargs}
        self._lock = threading.Lock()  # resets run in the collector's threads

    def acquire(self, env_id: str) -> Any:
        with self._lock:
            free = self._free[env_id]
            if free:
                return free.pop()
        return gym.make(env_id, **self._kwargs[env_id])

    def release(self, env_id: str, env: Any, *, broken: bool = False) -> None:
        if broken:
            _close_quietly(env)
            return
        with self._lock:
            self._free[env_id].append(env)

    def close(self) -> None:
        for envs in self._free.values():
            for env in envs:
                _close_quietly(env)
            envs.clear()


def _close_quietly(env: Any) -> None:
    with contextlib.suppress(Exception):  # closing a broken env must not hide its error
        env.close()


def _describe(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{type(error).__name__}: {error}{where}"


class RolloutCollector:
    """Plays groups of episodes with the policy (see the module docstring)."""

    def __init__(
        self,
        policy: Policy,
        pool: EnvPool,
        *,
        limits: RolloutLimits,
        sampling: SamplingSettings,
        env_workers: int = 8,
        stop: bool = True,
        sampler_factory: SamplerFactory | None = None,
    ):
        self.stop_ids = policy.stop_ids if stop else ()
        self.policy = policy
        self.pool = pool
        self.limits = limits
        self.sampling = sampling
        self.sampler_factory = sampler_factory or self._local_sampler
        self._threads = ThreadPoolExecutor(max_workers=env_workers, thread_name_prefix="rlvr-env")

    def _local_sampler(self, **kwargs: Any) -> Sampler:
        """The default: sample in process with the policy model (KV cache across turns)."""
        return TurnSampler(self.policy.model, **kwargs)

    def close(self) -> None:
        self._threads.shutdown(wait=True)
        self.pool.close()

    def collect(
        self,
        specs: Sequence[GroupSpec],
        generator: torch.Generator,
        *,
        max_new_tokens: int | None = None,
    ) -> list[RolloutGroup]:
        """Play every group to the end; groups come back in the order of ``specs``.

        ``max_new_tokens`` overrides the per-turn budget of ``limits`` for this call (the
        distillation horizon of the step); ``None`` keeps it.
        """
        turn_budget = self.limits.max_new_tokens if max_new_tokens is None else max_new_tokens
        episodes = [_Episode(spec) for spec in specs for _ in range(spec.group_size)]
        sampler = self.sampler_factory(
            rows=len(episodes),
            stop_ids=self.stop_ids,
            pad_id=self.policy.pad_id,
            settings=self.sampling,
            generator=generator,
        )
        self._parallel(self._reset, episodes)
        for row, episode in enumerate(episodes):
            if not episode.done:
                prompt = self.policy.chat.prompt_ids(episode.messages)
                self._append(sampler, row, episode, prompt)
                episode.truncated = episode.done = len(prompt) >= self.limits.max_total_tokens
        model = self.policy.model
        was_training = model.training
        model.eval()
        try:
            self._play(episodes, sampler, turn_budget)
        finally:
            model.train(was_training)
        rollouts = [self._finish(sampler, row, episode) for row, episode in enumerate(episodes)]
        groups, start = [], 0
        for spec in specs:
            groups.append(RolloutGroup(spec, tuple(rollouts[start : start + spec.group_size])))
            start += spec.group_size
        return groups

    def _play(self, episodes: list[_Episode], sampler: Sampler, turn_budget: int) -> None:
        limits = self.limits
        while True:
            live = [row for row in sampler.live if not episodes[row].done]
            sampler.drop(live)
            if not live:
                return
            budgets = [
                min(turn_budget, limits.max_total_tokens - len(episodes[row].mask)) for row in live
            ]
            turns = sampler.sample_turn(budgets)
            replies = {row: self._record_turn(episodes[row], turns[row]) for row in live}
            self._parallel(self._step, [(episodes[row], replies[row]) for row in live])
            for row in live:
                self._after_step(sampler, row, episodes[row], turns[row])

    def _record_turn(self, episode: _Episode, turn: SampledTurn) -> str:
        """Book the sampled ids as policy tokens; the reply text for the env."""
        index = len(episode.turn_rewards)
        episode.mask.extend([1] * len(turn.ids))
        episode.logprobs.extend(turn.logprobs)
        episode.turn_index.extend([index] * len(turn.ids))
        content = turn.ids[:-1] if turn.ended else turn.ids
        return str(self.policy.tokenizer.decode(list(content), skip_special_tokens=True))

    def _after_step(self, sampler: Sampler, row: int, episode: _Episode, turn: SampledTurn) -> None:
        if episode.done:
            return
        if len(episode.turn_rewards) >= self.limits.max_turns:
            episode.truncated = episode.done = True
            return
        role = str(episode.info.get("role", "user"))
        new = [Message(role, episode.messages[-1].content)]
        glue = self.policy.chat.close_ids(turn.ids) + self.policy.chat.append_ids(new)
        if len(episode.mask) + len(glue) >= self.limits.max_total_tokens:
            episode.truncated = episode.done = True  # no room left for another reply
            return
        self._append(sampler, row, episode, glue)

    @staticmethod
    def _append(sampler: Sampler, row: int, episode: _Episode, ids: Sequence[int]) -> None:
        """Append non-policy ids (prompt, env messages, template glue): no loss on them."""
        sampler.extend(row, ids)
        episode.mask.extend([0] * len(ids))
        episode.logprobs.extend([0.0] * len(ids))
        episode.turn_index.extend([-1] * len(ids))

    def _reset(self, episode: _Episode) -> None:
        spec = episode.spec
        try:
            episode.env = self.pool.acquire(spec.env_id)
            options = {"difficulty": spec.difficulty} if spec.difficulty is not None else None
            observation, info = episode.env.reset(seed=spec.seed, options=options)
        except Exception as error:
            episode.error, episode.done = f"reset failed: {_describe(error)}", True
            return
        episode.info = dict(info)
        episode.rubric = dict(info.get("rubric") or {})
        episode.messages = dialogue_from(observation, info)

    def _step(self, job: tuple[_Episode, str]) -> None:
        episode, reply = job
        episode.messages.append(Message("assistant", reply))
        try:
            observation, reward, terminated, truncated, info = episode.env.step(reply)
        except Exception as error:
            episode.error, episode.done = f"step failed: {_describe(error)}", True
            episode.turn_rewards.append(0.0)
            return
        episode.turn_rewards.append(float(reward))
        episode.info = dict(info)
        episode.rubric = dict(info.get("rubric") or episode.rubric)
        episode.terminated, episode.truncated = bool(terminated), bool(truncated)
        episode.done = episode.terminated or episode.truncated
        role = str(info.get("role", "user"))
        episode.messages.append(Message(role, str(observation)))

    def _parallel(self, work: Callable[[Any], None], items: Sequence[Any]) -> None:
        list(self._threads.map(work, items))

    def _finish(self, sampler: Sampler, row: int, episode: _Episode) -> Rollout:
        ids = sampler.ids(row)
        if len(ids) != len(episode.mask):
            raise RuntimeError(
                f"token books out of step: {len(ids)} ids, {len(episode.mask)} marks"
            )
        if episode.env is not None:
            self.pool.release(episode.spec.env_id, episode.env, broken=episode.error is not None)
        info = episode.info
        components = info.get("reward_components") or {}
        return Rollout(
            env_id=episode.spec.env_id,
            seed=episode.spec.seed,
            difficulty=episode.spec.difficulty,
            ids=tuple(ids),
            policy_mask=tuple(episode.mask),
            old_logprobs=tuple(episode.logprobs),
            turn_index=tuple(episode.turn_index),
            turn_rewards=tuple(episode.turn_rewards),
            components={str(k): float(v) for k, v in dict(components).items()},
            success=bool(info.get("success", False)),
            terminated=episode.terminated,
            truncated=episode.truncated,
            messages=tuple(episode.messages),
            feedback=str(info.get("feedback") or ""),
            reference=str(info.get("reference") or ""),
            error=episode.error,
            answer=None if info.get("answer") is None else str(info["answer"]),
            rubric=episode.rubric,
        )
