"""Token credit: per-rollout (or per-token) advantages -> one advantage per completion token.

Every technique has the same call signature, so a training loop can call whichever it is
configured with without knowing which it is (``algorithm.token_credit`` in a scenario)::

    credit = TOKEN_CREDIT.get(name)(**params)      # once, when the loop is configured
    token_adv = credit(advantages, inputs)         # every step, under torch.no_grad()

    advantages: Tensor[N] (one per rollout, from ``ADVANTAGES``) or Tensor[N, T] (per token,
                e.g. from :mod:`rlvr.training.turn_credit`)
    inputs:     CreditInputs (mask, rollout-policy token probabilities, last hidden states,
                group size, per-turn rewards and the turn of each token)
    returns:    Tensor[N, T], zero wherever ``inputs.mask`` is 0

The registry holds frozen dataclasses: the fields are the technique's parameters (checked on
construction, a one-line ``ValueError`` for bad values) and ``__call__`` is the technique.
The result goes to the policy loss (``POLICY_LOSSES``) in place of the broadcast advantage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch
from torch import Tensor

from rlvr.training.registry import Registry
from rlvr.training.turn_credit import TurnCreditConfig, turn_advantages, turns_to_tokens

_EPS = 1e-8
"""Floor of DelTA's centroid denominators and margin variances (``eps`` in RUCBM/DelTA)."""


@dataclass(frozen=True)
class CreditInputs:
    """What token-credit techniques may read about a batch of ``N`` completions of ``T`` tokens.

    All tensors are computed under ``torch.no_grad()`` with the rollout-time weights, before
    the policy update, over every rollout of the step (DelTA's centroids are batch statistics,
    so pass the whole step's batch, not a micro-batch).
    """

    mask: Tensor
    """(N, T) float or bool: 1 on policy-generated tokens, 0 on env tokens and padding."""
    old_token_prob: Tensor
    """(N, T): ``pi_old(y_t | prefix)``, the rollout policy's probability of the sampled token
    (``exp(old_logp)``, at the sampling temperature)."""
    hidden: Tensor | None = None
    """(N, T, H): the last hidden state fed to ``lm_head`` at the position that predicts
    token ``t`` (a forward pre-hook on ``lm_head`` captures it), or ``None`` when no
    technique needs it (DelTA does)."""
    group_size: int = 1
    """``G``: rows ``b * G .. b * G + G - 1`` are the rollouts of one group."""
    turn_rewards: Tensor | None = None
    """(N, U): the env's reward after each assistant turn, 0 on padded turns."""
    turn_mask: Tensor | None = None
    """(N, U): 1 on the turns a rollout played (a prefix), 0 after."""
    turn_index: Tensor | None = None
    """(N, T) long: the turn each policy token belongs to, -1 on other tokens."""

    def __post_init__(self) -> None:
        if self.mask.ndim != 2:
            raise ValueError(f"mask must be (N, T), got shape {tuple(self.mask.shape)}")
        if self.old_token_prob.shape != self.mask.shape:
            raise ValueError(
                f"old_token_prob {tuple(self.old_token_prob.shape)} must match "
                f"mask {tuple(self.mask.shape)}"
            )
        if self.hidden is not None and (
            self.hidden.ndim != 3 or self.hidden.shape[:2] != self.mask.shape
        ):
            raise ValueError(
                f"hidden must be (N, T, H) with (N, T) = {tuple(self.mask.shape)}, "
                f"got {tuple(self.hidden.shape)}"
            )
        if self.turn_index is not None and self.turn_index.shape != self.mask.shape:
            raise ValueError(
                f"turn_index {tuple(self.turn_index.shape)} must match "
                f"mask {tuple(self.mask.shape)}"
            )


class TokenCredit(Protocol):
    needs_hidden: ClassVar[bool]
    """Whether ``inputs.hidden`` must be given (the trainer then runs one extra no-grad
    forward pass with the rollout-time weights to capture it)."""

    def __call__(self, advantages: Tensor, inputs: CreditInputs) -> Tensor: ...


TOKEN_CREDIT: Registry[Callable[..., TokenCredit]] = Registry("token credit")


def per_token(advantages: Tensor, mask: Tensor) -> Tensor:
    """(N,) or (N, T) advantages as (N, T), zeroed where ``mask`` is 0."""
    if advantages.ndim == 1 and advantages.shape[0] == mask.shape[0]:
        return advantages.unsqueeze(-1) * mask.to(advantages.dtype)
    if advantages.shape == mask.shape:
        return advantages * mask.to(advantages.dtype)
    raise ValueError(
        f"advantages must be (N,) or (N, T) = {tuple(mask.shape)}, got {tuple(advantages.shape)}"
    )


def credit_scale_spread(before: Tensor, after: Tensor, mask: Tensor) -> float:
    """How much token credit rescaled the advantages: the standard deviation of
    ``after / before`` over the tokens with ``mask`` 1 and ``before != 0``.

    ``before`` (N,) or (N, T) and ``after`` (N, T) as :func:`per_token` aligns them. 0 when
    every token keeps its rollout's advantage (``none``; DelTA with lambda_min = lambda_max);
    for DelTA it is the spread of its coefficients, within [lambda_min, lambda_max]. NaN
    when fewer than two tokens qualify.
    """
    base = per_token(before, mask)
    keep = mask.bool() & (base != 0)
    if int(keep.sum()) < 2:
        return float("nan")
    return float((after[keep] / base[keep]).double().std())


@TOKEN_CREDIT.register("none")
@dataclass(frozen=True)
class BroadcastCredit:
    """Plain GRPO credit: every token of rollout ``i`` gets ``A_i`` (``A_{i,t}`` if per token)."""

    needs_hidden: ClassVar[bool] = False

    def __call__(self, advantages: Tensor, inputs: CreditInputs) -> Tensor:
        return per_token(advantages, inputs.mask)


@TOKEN_CREDIT.register("turn")
@dataclass(frozen=True)
class TurnCredit:
    """Turn-level credit for multi-turn episodes (reconstructed; no paper's code followed):
    the env's per-turn rewards -> discounted returns-to-go, normalised per turn over the
    group's rollouts still playing that turn (:func:`rlvr.training.turn_credit.turn_advantages`)
    -> every token of turn ``u`` gets ``A_{i,u}``.

    It *replaces* the episode advantage: the ``advantages`` argument (and so
    ``algorithm.advantage`` and ``algorithm.rewards``) is not read; the rewards are the env's
    own per-turn rewards. With ``gamma = 1``, a terminal reward only and episodes of equal
    length it equals GRPO's broadcast advantage. Shapes: (N,) or (N, T), inputs -> (N, T).
    """

    needs_hidden: ClassVar[bool] = False

    gamma: float = 1.0
    """Per-turn discount in [0, 1]."""
    scale_by_std: bool = True
    """Divide by the per-turn group std (GRPO); ``False`` centres only (Dr. GRPO)."""

    def __post_init__(self) -> None:
        if not isinstance(self.scale_by_std, bool):
            raise ValueError(f"scale_by_std must be a bool, got {self.scale_by_std!r}")
        TurnCreditConfig(self.gamma, self.scale_by_std)  # checks gamma

    def __call__(self, advantages: Tensor, inputs: CreditInputs) -> Tensor:
        if inputs.turn_rewards is None or inputs.turn_mask is None or inputs.turn_index is None:
            raise ValueError("turn credit needs inputs.turn_rewards, turn_mask and turn_index")
        config = TurnCreditConfig(self.gamma, self.scale_by_std)
        turn_adv = turn_advantages(
            inputs.turn_rewards.float(), inputs.turn_mask, inputs.group_size, config
        )  # (N, U)
        return per_token(turns_to_tokens(turn_adv, inputs.turn_index), inputs.mask)


@TOKEN_CREDIT.register("delta")
@dataclass(frozen=True)
class DeltaCredit:
    """DelTA, discriminative token credit assignment (arXiv 2605.21467), read from the public
    code RUCBM/DelTA (``verl-DelTA/verl/workers/actor/dp_actor.py``, ``compute_log_prob_h``,
    implementation ``"Normal"``): ``A~_{i,t} = A_i * w_{i,t}``.

    Defaults are those of ``recipe/dapo/srcs/run_DelTA.sh`` (``K=1``, ``lam_min=0.8``,
    ``lam_max=1.2``). The paper pairs it with the DAPO loss (clip 0.2/0.28, token mean, no KL).
    See :func:`delta_coefficients` for the steps.
    """

    needs_hidden: ClassVar[bool] = True

    lambda_min: float = 0.8
    """Coefficient of the least discriminative tokens, before self-normalisation."""
    lambda_max: float = 1.2
    """Coefficient of the most discriminative tokens, before self-normalisation."""
    iterations: int = 1
    """Refinement iterations ``K`` of the soft-assigned centroids (``K >= 0``)."""

    def __post_init__(self) -> None:
        if not 0 <= self.lambda_min <= self.lambda_max:
            raise ValueError(
                f"need 0 <= lambda_min <= lambda_max, got {self.lambda_min}, {self.lambda_max}"
            )
        if self.lambda_max <= 0:
            raise ValueError(f"lambda_max must be > 0, got {self.lambda_max}")
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int):
            raise ValueError(f"iterations must be an int, got {self.iterations!r}")
        if self.iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {self.iterations}")

    def __call__(self, advantages: Tensor, inputs: CreditInputs) -> Tensor:
        base = per_token(advantages, inputs.mask)
        if self.lambda_min == self.lambda_max:
            # Every coefficient equals lambda; self-normalisation makes it exactly 1.
            return base
        weights = delta_coefficients(advantages, inputs, self)
        return base * weights.to(base.dtype)


def delta_coefficients(advantages: Tensor, inputs: CreditInputs, config: DeltaCredit) -> Tensor:
    """DelTA's self-normalised token coefficients ``w`` (N, T); zero where ``mask`` is 0.

    Steps (techniques.md section 2; all read from the public code):

    1. token-gradient proxy ``v_{i,t} = (1 - pi_old(y_{i,t})) h_{i,t}`` (N, T, H): the gradient
       of ``log p(y)`` with respect to the ``lm_head`` row of ``y`` (paper App. F);
    2. centroids ``mu+ = sum a+ m v / sum a+ m`` with ``a+ = max(A, 0)``; ``mu-`` with
       ``a- = max(-A, 0)`` (the code computes a diagonal variance, then uses ``d = 1``: plain
       squared Euclidean distance);
    3. margins ``M+ = |v - mu-|^2 - |v - mu+|^2`` on tokens of ``A > 0`` rollouts, ``M-`` the
       mirror on ``A < 0`` rollouts; temperature ``gamma+-`` = population std of that side's
       margins, floored at ``sqrt(1e-8)``;
    4. ``K`` refinements: ``s = sigmoid(M / gamma)``, ``mu* = sum s a m v / sum s a m`` per
       side, and ``gamma`` recomputed from the margins of that pass (taken against the
       centroids before the update, as in the code, so ``K = 1`` leaves ``gamma`` unchanged);
    5. ``w = lambda_min + (lambda_max - lambda_min) sigmoid(M / gamma)`` against ``mu*`` on
       each side; ``w = lambda_min`` on tokens with ``A = 0``;
    6. self-normalisation ``w <- w * (#tokens) / sum w``: batch mean 1.

    Per-token advantages (N, T) are an extension: the side of each token is the sign of its
    own ``A_{i,t}`` and ``a+-`` are per token (the code has one advantage per rollout).
    """
    if inputs.hidden is None:
        raise ValueError("delta credit needs inputs.hidden, the last hidden states (N, T, H)")
    dtype = torch.promote_types(inputs.hidden.dtype, torch.float32)
    mask = inputs.mask.to(dtype)
    adv = per_token(advantages.to(dtype), mask)  # (N, T)
    v = (1.0 - inputs.old_token_prob.to(dtype)).unsqueeze(-1) * inputs.hidden.to(dtype)
    pos = (adv > 0).to(dtype) * mask  # (N, T) tokens on the positive side
    neg = (adv < 0).to(dtype) * mask
    a_pos, a_neg = adv.clamp(min=0.0), (-adv).clamp(min=0.0)

    mu_pos, mu_neg = _centroid(v, a_pos * pos), _centroid(v, a_neg * neg)  # (H,) each
    m_pos, m_neg = _margins(v, mu_pos, mu_neg)  # (N, T) each
    g_pos, g_neg = _spread(m_pos, pos), _spread(m_neg, neg)
    for _ in range(config.iterations):
        mu_pos = _centroid(v, torch.sigmoid(m_pos / g_pos) * a_pos * pos)
        mu_neg = _centroid(v, torch.sigmoid(m_neg / g_neg) * a_neg * neg)
        # As upstream (RUCBM/DelTA @ cf048bd, verl-DelTA/verl/workers/actor/dp_actor.py,
        # compute_log_prob_h, "Normal": the `for _ in range(disc_steps)` loop): gamma is
        # recomputed from the margins of this pass (`next_m_pos_*`), taken against the
        # centroids *before* this pass's update, so at K = 1 it equals the initial gamma; the
        # final weights then use margins against the last centroids with that gamma. Kept
        # as is, on purpose, to match the published code.
        g_pos, g_neg = _spread(m_pos, pos), _spread(m_neg, neg)
        m_pos, m_neg = _margins(v, mu_pos, mu_neg)

    low, span = config.lambda_min, config.lambda_max - config.lambda_min
    w_pos = low + span * torch.sigmoid(m_pos / g_pos)
    w_neg = low + span * torch.sigmoid(m_neg / g_neg)
    zero = mask - pos - neg
    weight = (w_pos * pos + w_neg * neg + low * zero) * mask
    return weight * mask.sum() / weight.sum().clamp(min=_EPS)


def _centroid(v: Tensor, weights: Tensor) -> Tensor:
    """``sum_{i,t} w v / max(sum w, eps)``: (N, T, H), (N, T) -> (H,)."""
    return (weights.unsqueeze(-1) * v).sum(dim=(0, 1)) / weights.sum().clamp(min=_EPS)


def _margins(v: Tensor, mu_pos: Tensor, mu_neg: Tensor) -> tuple[Tensor, Tensor]:
    """``M+ = d- - d+`` and ``M- = d+ - d-`` with squared distances to each centroid: (N, T)."""
    d_pos = ((v - mu_pos) ** 2).sum(-1)
    d_neg = ((v - mu_neg) ** 2).sum(-1)
    return d_neg - d_pos, d_pos - d_neg


def _spread(margins: Tensor, side: Tensor) -> Tensor:
    """Population std of ``margins`` over the side's tokens, ``sqrt(max(var, eps))`` (scalar)."""
    count = side.sum().clamp(min=1.0)
    mean = (margins * side).sum() / count
    var = (margins**2 * side).sum() / count - mean**2
    return torch.sqrt(var.clamp(min=_EPS))
