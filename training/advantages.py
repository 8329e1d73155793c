"""Advantage estimators: reward components of rollout groups -> one advantage per rollout.

Every estimator has the same signature, so the training loop calls whichever the scenario
names without knowing which it is::

    estimator(rewards: Tensor[B, G, K], weights: Tensor[K]) -> Tensor[B, G]

``B`` prompt groups of ``G`` rollouts (all rollouts of a group start from the same env seed),
``K`` reward components (``info["reward_components"]``; ``K = 1`` for a scalar reward) with
weights ``w``. The scalar estimators first form ``r = sum_k w_k r_k`` (TRL's default
``multi_objective_aggregation="sum_then_normalize"``). The advantage is broadcast to every
token of the rollout by the loss. Standard deviations are unbiased (Bessel), as ``torch.std``
and TRL compute them; ``EPS = 1e-4`` as in TRL.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from rlvr.training.registry import Registry

EPS = 1e-4


class AdvantageEstimator(Protocol):
    def __call__(self, rewards: Tensor, weights: Tensor) -> Tensor: ...


ADVANTAGES: Registry[AdvantageEstimator] = Registry("advantage estimator")


def _check(rewards: Tensor, weights: Tensor) -> None:
    if rewards.ndim != 3:
        raise ValueError(f"rewards must be (B, G, K), got shape {tuple(rewards.shape)}")
    if weights.shape != rewards.shape[-1:]:
        raise ValueError(f"weights must be (K,) = {rewards.shape[-1]}, got {tuple(weights.shape)}")


def weighted_sum(rewards: Tensor, weights: Tensor) -> Tensor:
    """``r_i = sum_k w_k r_{i,k}``: (B, G, K), (K,) -> (B, G)."""
    _check(rewards, weights)
    return (rewards * weights).sum(dim=-1)


def _std(x: Tensor, dim: int | None = None) -> Tensor:
    """Unbiased std; 0 where there is a single sample (no spread to scale by)."""
    n = x.numel() if dim is None else x.shape[dim]
    if n < 2:
        return torch.zeros_like(x.mean() if dim is None else x.mean(dim=dim, keepdim=True))
    return x.std() if dim is None else x.std(dim=dim, keepdim=True)


@ADVANTAGES.register("grpo")
def grpo_advantage(rewards: Tensor, weights: Tensor) -> Tensor:
    """GRPO (Shao et al. 2024, DeepSeekMath, eq. 3): ``A_i = (r_i - mean_g) / (std_g + eps)``.

    TRL ``scale_rewards="group"``. Shapes: (B, G, K), (K,) -> (B, G).
    """
    r = weighted_sum(rewards, weights)
    return (r - r.mean(dim=1, keepdim=True)) / (_std(r, dim=1) + EPS)


@ADVANTAGES.register("grpo_batch_std")
def grpo_batch_std_advantage(rewards: Tensor, weights: Tensor) -> Tensor:
    """Group-centred, batch-scaled: ``A_i = (r_i - mean_g) / (std_batch + eps)``.

    TRL ``scale_rewards="batch"`` (std over all B*G rewards). Shapes: (B, G, K), (K,) -> (B, G).
    """
    r = weighted_sum(rewards, weights)
    return (r - r.mean(dim=1, keepdim=True)) / (_std(r) + EPS)


@ADVANTAGES.register("dr_grpo")
def dr_grpo_advantage(rewards: Tensor, weights: Tensor) -> Tensor:
    """Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-like training", sec. 3.1):
    ``A_i = r_i - mean_g``, no std scaling (it biases towards too easy/hard groups).

    TRL ``scale_rewards="none"``. Shapes: (B, G, K), (K,) -> (B, G).
    """
    r = weighted_sum(rewards, weights)
    return r - r.mean(dim=1, keepdim=True)


@ADVANTAGES.register("rloo")
def rloo_advantage(rewards: Tensor, weights: Tensor) -> Tensor:
    """RLOO (Ahmadian et al. 2024, eq. 6): ``A_i = r_i - (sum_j r_j - r_i) / (G - 1)``.

    The leave-one-out baseline; equals ``G / (G - 1) * (r_i - mean_g)``. Needs ``G >= 2``.
    Shapes: (B, G, K), (K,) -> (B, G).
    """
    r = weighted_sum(rewards, weights)
    group = r.shape[1]
    if group < 2:
        raise ValueError("rloo needs groups of at least 2 rollouts")
    return r - (r.sum(dim=1, keepdim=True) - r) / (group - 1)


@ADVANTAGES.register("gdpo")
def gdpo_advantage(rewards: Tensor, weights: Tensor) -> Tensor:
    """GDPO (arXiv 2601.05242; TRL ``multi_objective_aggregation="normalize_then_sum"``).

    1. per component, within its group: ``r^_{i,k} = (r_{i,k} - mean_{g,k}) / (std_{g,k} + eps)``;
    2. weighted sum: ``s_i = sum_k w_k r^_{i,k}``;
    3. over the batch: ``A_i = (s_i - mean_B s) / (std_B s + eps)``.

    Keeps the components apart, so two binary rewards do not collapse into fewer distinct
    advantage values. Shapes: (B, G, K), (K,) -> (B, G).
    """
    _check(rewards, weights)
    normalized = (rewards - rewards.mean(dim=1, keepdim=True)) / (_std(rewards, dim=1) + EPS)
    s = (normalized * weights).sum(dim=-1)
    return (s - s.mean()) / (_std(s) + EPS)


@ADVANTAGES.register("grpo_positive")
def grpo_positive_advantage(rewards: Tensor, weights: Tensor) -> Tensor:
    """The positive half of GRPO: ``A_i = max((r_i - mean_g) / (std_g + eps), 0)``.

    Better-than-average rollouts are reinforced with GRPO's weight; worse ones get 0 instead
    of being pushed down. Rejection-sampling fine-tuning (RAFT, Dong et al. 2023) weighted by
    the group's scale; Xiong et al. 2025 ("A Minimalist Approach to LLM Reasoning",
    arXiv 2504.11343, sec. 3) find that GRPO's early gains come mostly from its positive
    samples, while the negative ones keep the entropy up. Shapes: (B, G, K), (K,) -> (B, G).
    """
    return grpo_advantage(rewards, weights).clamp(min=0.0)


@ADVANTAGES.register("raft")
def raft_advantage(rewards: Tensor, weights: Tensor) -> Tensor:
    """RAFT / rejection-sampling fine-tuning (Dong et al. 2023, arXiv 2304.06767; RAFT++ in
    Xiong et al. 2025): ``A_i = 1`` for rollouts above their group's mean, else 0.

    The loss is then the likelihood of the group's better rollouts, each weighted alike; a
    group whose rollouts all score the same teaches nothing (as in GRPO). Shapes:
    (B, G, K), (K,) -> (B, G).
    """
    r = weighted_sum(rewards, weights)
    return (r > r.mean(dim=1, keepdim=True) + EPS).to(r.dtype)
