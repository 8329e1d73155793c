"""From rollout groups to the tensors of the loss, and the per-step metrics of a batch."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from rlvr.training.rollout import Rollout, RolloutGroup
from rlvr.training.sampling import overlong_penalty


@dataclass(frozen=True)
class TeacherInputs:
    """The distillation teacher's sequences for the rows of a :class:`TrainBatch` (built by
    :func:`rlvr.training.teacher.teacher_inputs`): a context prefix, then exactly the
    student's ids from its first sampled token on. The teacher's target ``t + shift[i]``
    scores the same token as the student's target ``t``."""

    ids: Tensor  # (N, W) long, right-padded
    attention: Tensor  # (N, W) long
    shift: Tensor  # (N,) long: teacher prefix length minus student prompt length
    start: Tensor  # (N,) long: the student's target position of its first sampled token
    has_context: Tensor  # (N,) float: 0 where the rollout had no feedback for the teacher

    def select(self, index: Tensor) -> TeacherInputs:
        """The rows ``index``, trimmed to their longest sequence."""
        width = int(self.attention[index].sum(-1).max())
        return TeacherInputs(
            self.ids[index, :width],
            self.attention[index, :width],
            self.shift[index],
            self.start[index],
            self.has_context[index],
        )

    def to(self, device: torch.device) -> TeacherInputs:
        tensors = (self.ids, self.attention, self.shift, self.start, self.has_context)
        return TeacherInputs(*(t.to(device) for t in tensors))


@dataclass(frozen=True)
class TrainBatch:
    """Right-padded sequences; every ``(N, L-1)`` tensor is aligned with the targets
    ``ids[:, 1:]`` (position ``t`` scores token ``t + 1``)."""

    ids: Tensor  # (N, L) long
    attention: Tensor  # (N, L) long
    mask: Tensor  # (N, L-1) float: 1 on policy-generated targets
    old_logp: Tensor  # (N, L-1) float
    advantages: Tensor  # (N,) float, or (N, L-1) per token after token credit
    teacher: TeacherInputs | None = None
    """The distillation teacher's inputs for the same rows; ``None`` without a teacher."""

    def select(self, index: Tensor) -> TrainBatch:
        """The rows ``index``, trimmed to their longest sequence."""
        width = int(self.attention[index].sum(-1).max())
        advantages = self.advantages[index]
        if advantages.ndim == 2:
            advantages = advantages[:, : width - 1]
        return TrainBatch(
            self.ids[index, :width],
            self.attention[index, :width],
            self.mask[index, : width - 1],
            self.old_logp[index, : width - 1],
            advantages,
            None if self.teacher is None else self.teacher.select(index),
        )

    def __len__(self) -> int:
        return int(self.ids.shape[0])


def group_rewards(
    groups: Sequence[RolloutGroup], *, max_tokens: int, overlong_buffer: int, overlong_factor: float
) -> Tensor:
    """Rewards ``(B, G, 1)``: each rollout's return plus the DAPO overlong penalty on its
    length against the budget that truncates it, ``max_tokens`` for the whole episode (zero
    when ``overlong_buffer`` is 0)."""
    returns = torch.tensor([[r.reward for r in g.rollouts] for g in groups], dtype=torch.float)
    if overlong_buffer > 0:
        lengths = torch.tensor([[len(r.ids) for r in g.rollouts] for g in groups])
        returns = returns + overlong_penalty(lengths, max_tokens, overlong_buffer, overlong_factor)
    return returns.unsqueeze(-1)


def distinct_advantages(advantages: Tensor) -> float:
    """Mean number of distinct advantage values per group: (B, G) -> float (values equal to
    1e-6 count as one). GDPO's measure of how much a reward combination keeps apart."""
    if advantages.numel() == 0:
        return float("nan")
    rounded = torch.round(advantages * 1e6)
    return float(sum(len(torch.unique(row)) for row in rounded) / advantages.shape[0])


def build_batch(rollouts: Sequence[Rollout], advantages: Tensor, pad_id: int) -> TrainBatch:
    """Pad rollouts into a :class:`TrainBatch` (on the CPU; move with :func:`to_device`)."""
    width = max(len(r.ids) for r in rollouts)
    n = len(rollouts)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.float)
    old = torch.zeros((n, width), dtype=torch.float)
    for row, rollout in enumerate(rollouts):
        length = len(rollout.ids)
        ids[row, :length] = torch.tensor(rollout.ids)
        attention[row, :length] = 1
        mask[row, :length] = torch.tensor(rollout.policy_mask, dtype=torch.float)
        old[row, :length] = torch.tensor(rollout.old_logprobs, dtype=torch.float)
    return TrainBatch(ids, attention, mask[:, 1:], old[:, 1:], advantages.float())


def turn_tensors(rollouts: Sequence[Rollout], width: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per-turn rewards (N, U) and mask (N, U), and each target's turn (N, width - 1), aligned
    with :class:`TrainBatch` (``-1`` off the policy tokens). ``U >= 1``: an episode that
    played no turn (its prompt filled the budget) counts as one turn of reward 0, as its
    return of 0 does in the episode-level advantage."""
    turns = max([1, *(r.turns for r in rollouts)])
    rewards = torch.zeros((len(rollouts), turns), dtype=torch.float)
    mask = torch.zeros((len(rollouts), turns), dtype=torch.float)
    index = torch.full((len(rollouts), width), -1, dtype=torch.long)
    for row, rollout in enumerate(rollouts):
        played = rollout.turns
        rewards[row, :played] = torch.tensor(rollout.turn_rewards, dtype=torch.float)
        mask[row, : max(1, played)] = 1.0
        index[row, : len(rollout.ids)] = torch.tensor(rollout.turn_index, dtype=torch.long)
    return rewards, mask, index[:, 1:]


def to_device(batch: TrainBatch, device: torch.device) -> TrainBatch:
    return TrainBatch(
        batch.ids.to(device),
        batch.attention.to(device),
        batch.mask.to(device),
        batch.old_logp.to(device),
        batch.advantages.to(device),
        None if batch.teacher is None else batch.teacher.to(device),
    )


@dataclass(frozen=True)
class RolloutStats:
    """What the metrics need of one rollout, small enough to gather across processes."""

    env_id: str
    reward: float
    success: bool
    components: dict[str, float]
    completion_tokens: int
    total_tokens: int
    turns: int
    truncated: bool
    difficulty: int | None

    @classmethod
    def of(cls, rollout: Rollout) -> RolloutStats:
        return cls(
            rollout.env_id,
            rollout.reward,
            rollout.success,
            dict(rollout.components),
            rollout.completion_tokens,
            len(rollout.ids),
            rollout.turns,
            rollout.truncated,
            rollout.difficulty,
        )


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else float("nan")


def rollout_metrics(stats: Sequence[RolloutStats]) -> dict[str, float]:
    """Means over the trained rollouts, overall and per env (``env/<id>/...``, every reward
    component included)."""
    metrics = {
        "reward": _mean([s.reward for s in stats]),
        "success": _mean([float(s.success) for s in stats]),
        "completion_tokens": _mean([float(s.completion_tokens) for s in stats]),
        "episode_tokens": _mean([float(s.total_tokens) for s in stats]),
        "turns": _mean([float(s.turns) for s in stats]),
        "truncated": _mean([float(s.truncated) for s in stats]),
        "rollouts": float(len(stats)),
    }
    levels = [float(s.difficulty) for s in stats if s.difficulty is not None]
    if levels:
        metrics["difficulty"] = _mean(levels)
    by_env: dict[str, list[RolloutStats]] = defaultdict(list)
    for s in stats:
        by_env[s.env_id].append(s)
    for env_id, items in sorted(by_env.items()):
        prefix = f"env/{env_id}"
        metrics[f"{prefix}/reward"] = _mean([s.reward for s in items])
        metrics[f"{prefix}/success"] = _mean([float(s.success) for s in items])
        for name in sorted({k for s in items for k in s.components}):
            values = [s.components[name] for s in items if name in s.components]
            metrics[f"{prefix}/components/{name}"] = _mean(values)
    return metrics
