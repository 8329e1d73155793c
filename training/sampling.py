"""DAPO's batch-level reward shaping and filtering (Yu et al. 2025, sec. 3.2 and 3.4)."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from rlvr.training.registry import Registry


class GroupFilter(Protocol):
    def __call__(self, rewards: Tensor) -> Tensor: ...


GROUP_FILTERS: Registry[GroupFilter] = Registry("group filter")
"""Which prompt groups of a batch train: ``(rewards[B, G]) -> keep[B]`` (bool)."""


@GROUP_FILTERS.register("all")
def all_groups(rewards: Tensor) -> Tensor:
    """Keep every group (TRL's and DeepSeekMath's default). Shapes: (B, G) -> (B,) bool."""
    return torch.ones(rewards.shape[0], dtype=torch.bool, device=rewards.device)


@GROUP_FILTERS.register("informative")
def informative_groups(rewards: Tensor) -> Tensor:
    """DAPO dynamic sampling: keep the groups whose rewards are not all equal.

    A group with zero reward variance has zero advantage everywhere and no gradient; verl drops
    it and samples more prompts until the batch is full. Groups of one rollout are kept, as in
    verl. Shapes: (B, G) -> (B,) bool.
    """
    if rewards.shape[1] < 2:
        return torch.ones(rewards.shape[0], dtype=torch.bool, device=rewards.device)
    return (rewards.max(dim=1).values - rewards.min(dim=1).values) > 0


def overlong_penalty(lengths: Tensor, max_length: int, buffer: int, factor: float = 1.0) -> Tensor:
    """DAPO soft overlong punishment (eq. 13), added to the reward:
    ``min(-(L - (L_max - L_buf)) / L_buf * f, 0)``: 0 up to ``L_max - L_buf`` tokens, falling
    linearly to ``-f`` at ``L_max``. Shapes: (N,) lengths -> (N,) penalties.
    """
    if not 0 < buffer <= max_length:
        raise ValueError(f"need 0 < buffer <= max_length, got buffer={buffer}, max={max_length}")
    excess = lengths.float() - (max_length - buffer)
    return torch.clamp(-excess / buffer * factor, max=0.0)
