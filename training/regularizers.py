"""Per-token loss regularizers: covariance-based entropy control (KL-Cov, Clip-Cov).

From "The Entropy Mechanism of Reinforcement Learning for Reasoning Language Models" (Cui et
al. 2025, arXiv 2505.22617), read from its public code (PRIME-RL/Entropy-Mechanism-of-RL,
``verl/trainer/ppo/core_algos.py``: ``compute_policy_loss_kl_cov``,
``compute_policy_loss_clip_cov``; the same functions in volcengine/verl). The paper finds that
entropy falls where the centred covariance between a token's log-probability and its
advantage is large, and acts on those few tokens only.

Every regularizer has the same signature, so the loop calls whichever the scenario names::

    regularizer = REGULARIZERS.get(name)(**params)   # once, when the scenario is validated
    loss = regularizer(loss, inputs)                  # (N, T) -> (N, T), before aggregation

    loss:   Tensor[N, T], the per-token policy loss from ``POLICY_LOSSES`` (with gradient)
    inputs: RegularizerInputs (logp, old_logp, per-token advantages, mask, clipped)

The covariance of token ``(i, t)`` over the valid tokens of the (micro-)batch is
``cov_{i,t} = (A_{i,t} - mean A) (logp_{i,t} - mean logp)``, computed detached.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from rlvr.training.registry import Registry


@dataclass(frozen=True)
class RegularizerInputs:
    """The tensors a regularizer reads, all (N, T) for ``N`` completions of ``T`` tokens."""

    logp: Tensor
    """Current policy log-probabilities of the sampled tokens (with gradient)."""
    old_logp: Tensor
    """Rollout policy log-probabilities of the same tokens."""
    advantages: Tensor
    """Per-token advantages, after token credit."""
    mask: Tensor
    """1 on policy-generated tokens, 0 on env tokens and padding."""
    clipped: Tensor | None = None
    """Bool, where the PPO clip was active (the second output of ``POLICY_LOSSES``)."""
    generator: torch.Generator | None = None
    """Random source of Clip-Cov's token draw (``None``: torch's global generator)."""

    def __post_init__(self) -> None:
        shape = self.logp.shape
        for name in ("old_logp", "advantages", "mask"):
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name} must have the shape of logp {tuple(shape)}")
        if self.clipped is not None and self.clipped.shape != shape:
            raise ValueError(f"clipped must have the shape of logp {tuple(shape)}")


class Regularizer(Protocol):
    def __call__(self, loss: Tensor, inputs: RegularizerInputs) -> Tensor: ...


REGULARIZERS: Registry[Callable[..., Regularizer]] = Registry("regularizer")


def centered_covariance(inputs: RegularizerInputs) -> Tensor:
    """``(A - mean A)(logp - mean logp)`` with means over valid tokens, detached: (N, T).

    Entries at masked tokens are meaningless; callers exclude them.
    """
    valid = inputs.mask.bool()
    adv = inputs.advantages.detach().float()
    logp = inputs.logp.detach().float()
    count = valid.sum().clamp(min=1)
    adv_mean = adv[valid].sum() / count
    logp_mean = logp[valid].sum() / count
    return (adv - adv_mean) * (logp - logp_mean)


@REGULARIZERS.register("none")
@dataclass(frozen=True)
class NoRegularizer:
    """Leaves the loss as it is."""

    def __call__(self, loss: Tensor, inputs: RegularizerInputs) -> Tensor:
        return loss


@REGULARIZERS.register("kl_cov")
@dataclass(frozen=True)
class KLCov:
    """KL-Cov (Cui et al. 2025): a ``|logp - old_logp|`` penalty on the
    ``max(1, floor(ratio * n_valid))`` valid tokens of largest covariance.

    ``L_{i,t} = -A rho + kl_coef |logp - old_logp|`` on the selected tokens and ``-A rho``
    elsewhere, with ``rho = exp(logp - old_logp)``. As in the code, KL-Cov replaces the PPO
    clip: with ``unclipped=True`` the incoming (clipped) loss is discarded and the unclipped
    surrogate ``-A rho`` rebuilt; with ``unclipped=False`` the penalty is added to the incoming
    loss instead (a combination the paper does not run).
    """

    ratio: float = 0.002
    """Fraction of valid tokens penalised: the paper's recipe ``k_percent=0.2`` (per cent);
    verl's ``kl_cov_ratio`` defaults to 2e-4."""
    kl_coef: float = 1.0
    """``ppo_kl_coef``, the penalty's coefficient."""
    unclipped: bool = True
    """Rebuild the unclipped surrogate, as the reference does (see above)."""

    def __post_init__(self) -> None:
        if not 0 < self.ratio <= 1:
            raise ValueError(f"kl_cov ratio must lie in (0, 1], got {self.ratio}")
        if self.kl_coef < 0:
            raise ValueError(f"kl_cov kl_coef must be >= 0, got {self.kl_coef}")

    def __call__(self, loss: Tensor, inputs: RegularizerInputs) -> Tensor:
        log_ratio = inputs.logp - inputs.old_logp
        base = -inputs.advantages * torch.exp(log_ratio) if self.unclipped else loss
        selected = kl_cov_selection(inputs, self.ratio)
        return base + self.kl_coef * log_ratio.abs() * selected.to(base.dtype)


def kl_cov_selection(inputs: RegularizerInputs, ratio: float) -> Tensor:
    """Bool (N, T): the top ``max(1, int(n_valid * ratio))`` valid tokens by covariance."""
    valid = inputs.mask.bool()
    n_valid = int(valid.sum())
    selected = torch.zeros(valid.numel(), dtype=torch.bool, device=valid.device)
    if n_valid > 0:
        cov = centered_covariance(inputs).masked_fill(~valid, float("-inf")).reshape(-1)
        top = torch.topk(cov, max(1, int(n_valid * ratio)), largest=True).indices
        selected[top] = True
    return selected.view(valid.shape)


@REGULARIZERS.register("clip_cov")
@dataclass(frozen=True)
class ClipCov:
    """Clip-Cov (Cui et al. 2025): detach the gradient of a few random tokens
    whose covariance lies in ``(lower, upper)``.

    Eligible tokens are valid, not already clipped by the PPO clip (``inputs.clipped``), with
    ``lower < cov < upper``. ``max(1, int(ratio * n_valid))`` of them (or all, if fewer) are
    drawn uniformly and their loss multiplied by 0. Recipe values: ratio 2e-4, bounds (1, 5),
    with the PPO clip widened to ``eps_low = eps_high = 1``.
    """

    ratio: float = 2e-4
    """``clip_cov_ratio``: the fraction of valid tokens to detach."""
    lower: float = 1.0
    """``clip_cov_lb``: exclusive lower bound of the covariance band."""
    upper: float = 5.0
    """``clip_cov_ub``: exclusive upper bound of the covariance band."""

    def __post_init__(self) -> None:
        if not 0 < self.ratio <= 1:
            raise ValueError(f"clip_cov ratio must lie in (0, 1], got {self.ratio}")
        if not self.lower < self.upper:
            raise ValueError(f"clip_cov needs lower < upper, got {self.lower}, {self.upper}")

    def __call__(self, loss: Tensor, inputs: RegularizerInputs) -> Tensor:
        dropped = clip_cov_selection(inputs, self)
        return loss * (~dropped).to(loss.dtype)


def clip_cov_selection(inputs: RegularizerInputs, config: ClipCov) -> Tensor:
    """Bool (N, T): the randomly drawn in-band tokens whose loss Clip-Cov zeroes."""
    valid = inputs.mask.bool()
    eligible = valid.clone()
    if inputs.clipped is not None:
        eligible &= ~inputs.clipped.bool()
    cov = centered_covariance(inputs)
    eligible &= (cov > config.lower) & (cov < config.upper)
    candidates = torch.nonzero(eligible.reshape(-1)).squeeze(-1)
    dropped = torch.zeros(valid.numel(), dtype=torch.bool, device=valid.device)
    if candidates.numel() > 0:
        count = min(max(1, int(config.ratio * int(valid.sum()))), candidates.numel())
        order = torch.randperm(candidates.numel(), generator=inputs.generator)
        dropped[candidates[order[:count].to(candidates.device)]] = True
    return dropped.view(valid.shape)
