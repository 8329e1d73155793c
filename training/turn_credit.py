"""Turn-level credit for multi-turn episodes: per-turn rewards -> per-turn -> per-token advantages.

A multi-turn env pays a reward at every ``step`` (often 0 until the last one). With ``U``
turns (padded across the batch) and ``N = B * G`` rollouts stored group by group (rows
``b * G .. b * G + G - 1`` share one prompt and env seed)::

    turn_adv  = turn_advantages(turn_rewards[N, U], turn_mask[N, U], group_size=G, config)
    token_adv = turns_to_tokens(turn_adv[N, U], turn_index[N, T])    # (N, T)

``token_adv`` then goes through ``TOKEN_CREDIT`` like any per-token advantage; in a scenario,
``algorithm.token_credit: {name: turn, params: {gamma: ...}}`` runs both steps
(:class:`rlvr.training.credit.TurnCredit`).

The estimator (group-normalised discounted returns-to-go, a reconstruction: no paper's code
was followed) is, for rollout ``i`` of group ``g`` and valid turn ``u``::

    R_{i,u} = sum_{u' >= u, valid} gamma^(u' - u) r_{i,u'}        (return-to-go)
    alive(g, u) = the rollouts j of g whose episode has a turn u
    A_{i,u} = (R_{i,u} - mean_{j in alive(g,u)} R_{j,u}) / (std_{j in alive(g,u)} R_{j,u} + 1e-4)

Each turn index ``u`` has its own baseline and scale: the mean and unbiased std of the
returns-to-go at turn ``u`` over the group's rollouts still playing at turn ``u``, so a turn
is compared with the same turn of its siblings, on rewards that follow it only. Where fewer
than two rollouts are alive at ``u``, or their ``R_{j,u}`` are all equal, ``A_{i,u} = 0``
(GRPO's advantage for equal rewards; DeepSeekMath eq. 3, unbiased std and ``eps = 1e-4`` as
in ``rlvr.training.advantages``). Hence:

* the first turn's advantage is the GRPO advantage of the discounted episode return;
* with ``gamma = 1``, only a terminal reward and episodes of equal length, ``R_{i,u} = r_i``
  on every turn and ``A_{i,u}`` equals the episode-level GRPO advantage on every turn;
* with intermediate rewards or ``gamma < 1``, a later turn is credited only with the rewards
  that follow it, discounted by its distance to them, against the siblings' returns from the
  same turn on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

GROUP_EPS = 1e-4
"""Added to the group std, as in TRL and ``rlvr.training.advantages.EPS``."""


@dataclass(frozen=True)
class TurnCreditConfig:
    """Parameters of :func:`turn_advantages`."""

    gamma: float = 1.0
    """Per-turn discount in [0, 1]; 1 credits every earlier turn with the full outcome."""
    scale_by_std: bool = True
    """Divide by the per-turn group std of returns-to-go (GRPO); ``False`` centres only
    (Dr. GRPO)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must lie in [0, 1], got {self.gamma}")


def returns_to_go(turn_rewards: Tensor, turn_mask: Tensor, gamma: float) -> Tensor:
    """``R_{i,u} = sum_{u' >= u} gamma^(u' - u) m_{i,u'} r_{i,u'}``: (N, U), (N, U) -> (N, U).

    Padded turns (mask 0) add nothing and get ``R = 0``. Valid turns must come first in each
    row (padding only at the end), so ``u' - u`` counts turns.
    """
    mask = turn_mask.to(turn_rewards.dtype)
    rewards = turn_rewards * mask
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for u in range(rewards.shape[1] - 1, -1, -1):
        running = rewards[:, u] + gamma * running
        out[:, u] = running
    return out * mask


def turn_advantages(
    turn_rewards: Tensor,
    turn_mask: Tensor,
    group_size: int,
    config: TurnCreditConfig | None = None,
) -> Tensor:
    """Per-turn group-normalised returns-to-go (module docstring): (N, U), (N, U), G -> (N, U).

    ``N`` must be a multiple of ``group_size``; every row needs at least its first turn valid,
    and padded turns only after the valid ones. Padded turns get advantage 0.
    """
    config = config or TurnCreditConfig()
    _check(turn_rewards, turn_mask, group_size)
    ret = returns_to_go(turn_rewards, turn_mask, config.gamma)  # (N, U)
    groups = ret.shape[0] // group_size
    grouped = ret.view(groups, group_size, -1)  # (B, G, U)
    alive = turn_mask.to(ret.dtype).view_as(grouped)  # (B, G, U): rollouts playing turn u
    count = alive.sum(dim=1, keepdim=True)  # (B, 1, U)
    mean = (grouped * alive).sum(dim=1, keepdim=True) / count.clamp(min=1.0)
    centred = (grouped - mean) * alive
    # Fewer than two rollouts at turn u, or equal returns-to-go: no signal, advantage 0.
    big = torch.finfo(ret.dtype).max
    high = torch.where(alive.bool(), grouped, -big).amax(dim=1, keepdim=True)
    low = torch.where(alive.bool(), grouped, big).amin(dim=1, keepdim=True)
    informative = (count >= 2) & (high > low)  # (B, 1, U)
    if config.scale_by_std:
        var = (centred**2).sum(dim=1, keepdim=True) / (count - 1).clamp(min=1.0)
        centred = centred / (var.sqrt() + GROUP_EPS)
    return torch.where(informative, centred, torch.zeros_like(centred)).reshape_as(ret)


def turns_to_tokens(turn_values: Tensor, turn_index: Tensor) -> Tensor:
    """Give each token the value of its turn: (N, U), (N, T) long -> (N, T).

    ``turn_index[i, t]`` is the turn (0-based) whose policy reply token ``t`` belongs to, or
    -1 for tokens the policy did not generate (env messages, padding); those get 0.
    """
    if turn_values.ndim != 2 or turn_index.ndim != 2:
        raise ValueError("turn_values must be (N, U) and turn_index (N, T)")
    if turn_index.shape[0] != turn_values.shape[0]:
        raise ValueError(
            f"turn_index has {turn_index.shape[0]} rows, turn_values {turn_values.shape[0]}"
        )
    turns = turn_values.shape[1]
    if turn_index.numel() and (turn_index.min() < -1 or turn_index.max() >= turns):
        raise ValueError(f"turn_index values must lie in [-1, {turns - 1}]")
    index = turn_index.long()
    gathered = turn_values.gather(1, index.clamp(min=0))
    return torch.where(index >= 0, gathered, torch.zeros_like(gathered))


def _check(turn_rewards: Tensor, turn_mask: Tensor, group_size: int) -> None:
    if turn_rewards.ndim != 2 or turn_rewards.shape != turn_mask.shape:
        raise ValueError(
            f"turn_rewards and turn_mask must both be (N, U), got "
            f"{tuple(turn_rewards.shape)} and {tuple(turn_mask.shape)}"
        )
    if group_size < 1 or turn_rewards.shape[0] % group_size:
        raise ValueError(
            f"group_size must be >= 1 and divide N = {turn_rewards.shape[0]}, got {group_size}"
        )
    valid = turn_mask.bool()
    if turn_rewards.shape[1] == 0 or not bool(valid[:, 0].all()):
        raise ValueError("every rollout needs a valid first turn (turn_mask[:, 0] == 1)")
    if bool((valid[:, 1:] & ~valid[:, :-1]).any()):
        raise ValueError("turn_mask must be 1 on a prefix of turns and 0 after (padding last)")
