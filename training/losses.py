"""Policy losses, loss aggregations and KL estimators: small functions on plain tensors.

Notation (as in the reference notes): ``N`` sequences of ``T`` completion tokens, response
mask ``m`` (1 on policy-generated tokens, 0 on env tokens and padding), log-probs of the
current policy ``logp``, of the rollout policy ``old_logp`` and of the frozen reference
``ref_logp``, all ``(N, T)``; per-rollout advantages ``A`` of shape ``(N,)`` or per-token
advantages ``(N, T)`` (after token credit). Ratio ``rho = exp(logp - old_logp)``.

Three registries, one per kind:

* ``POLICY_LOSSES`` -- ``(logp, old_logp, advantages, mask, clip) -> (loss[N, T], clipped[N, T])``
* ``AGGREGATIONS``  -- ``(loss[N, T], mask[N, T], context) -> scalar``
* ``KL_ESTIMATORS`` -- ``(logp[N, T], ref_logp[N, T]) -> kl[N, T]``
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from rlvr.training.registry import Registry


@dataclass(frozen=True)
class ClipConfig:
    """The trust region of the clipped objective."""

    eps_low: float = 0.2
    """Lower clip: ``rho >= 1 - eps_low`` (PPO epsilon)."""
    eps_high: float = 0.2
    """Upper clip: ``rho <= 1 + eps_high`` (DAPO clip-higher uses 0.28)."""
    delta: float | None = None
    """INTELLECT-2 two-sided clip: caps the unclipped ratio at ``delta`` (> 1 + eps_high)."""

    def __post_init__(self) -> None:
        if not 0 <= self.eps_low < 1 or self.eps_high < 0:
            raise ValueError(f"need 0 <= eps_low < 1 and eps_high >= 0, got {self}")
        if self.delta is not None and self.delta <= 1 + self.eps_high:
            raise ValueError(f"delta must exceed 1 + eps_high, got {self.delta}")


@dataclass(frozen=True)
class AggregationContext:
    """What some aggregations normalize by, beyond the local batch."""

    max_completion_length: int
    """``L_max`` of Dr. GRPO's constant normalizer."""
    global_active_tokens: float | None = None
    """Active tokens in the whole accumulated (and, under DDP, all-reduced) batch (DAPO);
    ``None`` means the local batch."""
    world_size: int = 1
    """Processes whose gradients DDP averages; a global token mean is scaled back by it."""


class PolicyLoss(Protocol):
    def __call__(
        self, logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, clip: ClipConfig
    ) -> tuple[Tensor, Tensor]: ...


class Aggregation(Protocol):
    def __call__(self, loss: Tensor, mask: Tensor, context: AggregationContext) -> Tensor: ...


class KLEstimator(Protocol):
    def __call__(self, logp: Tensor, ref_logp: Tensor) -> Tensor: ...


POLICY_LOSSES: Registry[PolicyLoss] = Registry("policy loss")
AGGREGATIONS: Registry[Aggregation] = Registry("loss aggregation")
KL_ESTIMATORS: Registry[KLEstimator] = Registry("KL estimator")


def _per_token(advantages: Tensor, like: Tensor) -> Tensor:
    """(N,) or (N, T) advantages as (N, T)."""
    return advantages.unsqueeze(-1).expand_as(like) if advantages.ndim == 1 else advantages


def _clipped_objective(ratio: Tensor, adv: Tensor, clip: ClipConfig) -> tuple[Tensor, Tensor]:
    """``-min(rho A, clip(rho, 1 - eps_low, 1 + eps_high) A)`` and where the clip was active."""
    unclipped = ratio if clip.delta is None else torch.clamp(ratio, max=clip.delta)
    clamped = torch.clamp(ratio, 1 - clip.eps_low, 1 + clip.eps_high)
    loss = -torch.min(unclipped * adv, clamped * adv)
    clipped = (clamped * adv) < (unclipped * adv)
    return loss, clipped


@POLICY_LOSSES.register("token")
def token_level_loss(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, clip: ClipConfig
) -> tuple[Tensor, Tensor]:
    """PPO/GRPO clipped surrogate with a per-token ratio (Schulman et al. 2017, eq. 7).

    ``L_{i,t} = -min(rho_{i,t} A_{i,t}, clip(rho_{i,t}, 1 - eps_low, 1 + eps_high) A_{i,t})``.
    Shapes: (N, T) x3, (N,) or (N, T), (N, T) -> (N, T) loss, (N, T) bool clipped.
    """
    ratio = torch.exp(logp - old_logp)
    return _clipped_objective(ratio, _per_token(advantages, logp), clip)


@POLICY_LOSSES.register("sequence")
def sequence_level_loss(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, clip: ClipConfig
) -> tuple[Tensor, Tensor]:
    """GSPO (Zheng et al. 2025, eq. 5-7): one length-normalized ratio per sequence,
    ``s_i = exp(sum_t m (logp - old_logp) / sum_t m)``, in the same clipped objective.

    TRL ``importance_sampling_level="sequence"``. The paper's settings: eps 3e-4 / 4e-4.
    Shapes: (N, T) x3, (N,) or (N, T), (N, T) -> (N, T) loss, (N, T) bool clipped.
    """
    log_ratio = ((logp - old_logp) * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)  # (N,)
    ratio = torch.exp(log_ratio).unsqueeze(-1).expand_as(logp)  # (N, T)
    return _clipped_objective(ratio, _per_token(advantages, logp), clip)


@AGGREGATIONS.register("grpo")
def grpo_aggregation(loss: Tensor, mask: Tensor, context: AggregationContext) -> Tensor:
    """DeepSeekMath GRPO: ``mean_i [sum_t m L / sum_t m]`` (each sequence weighs the same,
    so tokens of short sequences weigh more: the length bias Dr. GRPO points out)."""
    per_sequence = (loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)
    return per_sequence.mean()


@AGGREGATIONS.register("bnpo")
def bnpo_aggregation(loss: Tensor, mask: Tensor, context: AggregationContext) -> Tensor:
    """BNPO / token mean over the local batch: ``sum m L / sum m``."""
    return (loss * mask).sum() / mask.sum().clamp(min=1.0)


@AGGREGATIONS.register("dr_grpo")
def dr_grpo_aggregation(loss: Tensor, mask: Tensor, context: AggregationContext) -> Tensor:
    """Dr. GRPO (Liu et al. 2025): ``sum m L / (N * L_max)``, a constant normalizer."""
    return (loss * mask).sum() / (loss.shape[0] * context.max_completion_length)


@AGGREGATIONS.register("dapo")
def dapo_aggregation(loss: Tensor, mask: Tensor, context: AggregationContext) -> Tensor:
    """DAPO token-level loss (Yu et al. 2025, eq. 12): ``sum m L`` over the active tokens of
    the whole accumulated global batch (TRL's default ``loss_type``)."""
    tokens = context.global_active_tokens
    if tokens is None:
        return (loss * mask).sum() / mask.sum().clamp(min=1.0)
    # DDP averages gradients over ranks: scale so the sum over ranks is the global token mean
    return (loss * mask).sum() * context.world_size / max(tokens, 1.0)


_DELTA_CLAMP = 20.0
_K3_CLAMP = 10.0


@KL_ESTIMATORS.register("k1")
def kl_k1(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """``k1 = logp - ref_logp``: unbiased, high variance, can be negative (Schulman 2020)."""
    return (logp - ref_logp).clamp(-_DELTA_CLAMP, _DELTA_CLAMP)


@KL_ESTIMATORS.register("k2")
def kl_k2(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """``k2 = (logp - ref_logp)^2 / 2``: biased, low variance; its gradient is the KL's."""
    delta = (logp - ref_logp).clamp(-_DELTA_CLAMP, _DELTA_CLAMP)
    return 0.5 * delta**2


@KL_ESTIMATORS.register("k3")
def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """``k3 = exp(-d) + d - 1`` with ``d = logp - ref_logp``: unbiased, >= 0, low variance.

    verl's ``low_var_kl`` and TRL's ``beta`` term; clamped as verl does (d to +-20, k3 to +-10).
    """
    delta = (logp - ref_logp).clamp(-_DELTA_CLAMP, _DELTA_CLAMP)
    return (torch.exp(-delta) + delta - 1).clamp(-_K3_CLAMP, _K3_CLAMP)


def token_entropy(logits: Tensor) -> Tensor:
    """Entropy of each next-token distribution: (N, T, V) logits -> (N, T) nats."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)
