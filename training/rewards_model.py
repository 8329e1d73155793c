"""Rewards the policy model computes about itself (label-free RLIF), on plain tensors.

Token-wise self-certainty, from Intuitor ("Learning to Reason without External Rewards",
Zhao et al. 2025, arXiv 2505.19590, eq. 4; code sunblaze-ucb/Intuitor computes
``logsumexp(z) - mean(z)`` per position and averages over the response)::

    SC_i = (1 / |o_i|) sum_t KL(U || pi(. | q, o_<t))
         = mean_t [ logsumexp_v z_{t,v} - mean_v z_{t,v} ] - log |V|

where ``U`` is uniform over the vocabulary ``V`` and ``z`` the logits. Since
``KL(U || p) = -log|V| - mean_v log p_v`` it is >= 0, 0 exactly for a uniform prediction,
and grows as the prediction sharpens. Intuitor's code leaves out the constant ``log |V|``;
it cancels in any group-normalised advantage, so both forms train the same.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


@torch.no_grad()
def self_certainty(logits: Tensor, mask: Tensor, *, subtract_log_vocab: bool = True) -> Tensor:
    """Completion-level self-certainty: (N, T, V) logits, (N, T) mask -> (N,) nats.

    ``logits[i, t]`` is the rollout policy's prediction of completion token ``t`` (after the
    sampling temperature, if the reward should match the sampler). The mean runs over tokens
    with ``mask = 1``; a completion without any gets 0. ``subtract_log_vocab=False`` gives
    Intuitor's code value (``log |V|`` larger).
    """
    if logits.ndim != 3 or mask.shape != logits.shape[:2]:
        raise ValueError(
            f"need logits (N, T, V) and mask (N, T), got {tuple(logits.shape)}, {tuple(mask.shape)}"
        )
    z = logits.float()
    per_token = torch.logsumexp(z, dim=-1) - z.mean(dim=-1)  # (N, T)
    if subtract_log_vocab:
        per_token = per_token - math.log(z.shape[-1])
    weights = mask.to(per_token.dtype)
    return (per_token * weights).sum(-1) / weights.sum(-1).clamp(min=1.0)
