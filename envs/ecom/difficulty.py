"""The difficulty mapping of ``rlvr/Ecom-v0``: one integer level -> every axis of the task.

Every axis is monotone in the level (no axis gets easier as ``d`` grows, unlike Ecom-RLVE's
``B_tool``). The turn budget is not a function of ``d`` alone: it is ``2 * T_oracle + 4``,
computed per instance from the reference dialogue (see :mod:`rlvr.envs.ecom.families`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Theta:
    """The value of every difficulty axis at one level."""

    level: int
    constraints: int
    """Constraints on a wanted product (besides its category): ``min(6, 1 + d // 2)``."""
    distractors: int
    """Near-miss products planted per wanted product, each violating one constraint: ``2 + 2d``."""
    p_missing: float
    """Chance that the opening message leaves out a slot: ``min(0.8, 0.1d)``."""
    catalog_items: int
    """Catalog size in variant items: ``min(2000, 60 + 40d)``."""
    cart_items: int
    """Distinct items of a cart to build: ``min(5, 1 + d // 3)``."""
    variants: int
    """Most variants per product: ``min(8, 2 + d // 2)``."""
    p_oos: float
    """Chance of a cheaper out-of-stock look-alike of the target: ``min(0.4, 0.04d)``."""
    p_trap: float
    """Chance of a policy trap (ineligible return, processed order): ``min(0.5, 0.05d)``."""
    p_noise: float
    """Typo rate of the user's filler words: ``min(0.06, 0.005d)``."""
    p_switch: float
    """Chance the user changes one wanted attribute at the first confirmation:
    0 below level 6, else ``min(0.4, 0.1(d - 5))``."""
    orders: int
    """Background orders of the user: ``1 + d // 2``."""
    journey_steps: int
    """Sub-tasks of a multi-intent journey: ``min(4, 2 + d // 4)``."""
    page_size: int
    """Search results per page: ``max(5, 20 - d)``."""


def theta(level: int) -> Theta:
    """The axes at ``level`` (``level >= 0``)."""
    if level < 0:
        raise ValueError(f"difficulty must be >= 0, got {level}")
    d = level
    return Theta(
        level=d,
        constraints=min(6, 1 + d // 2),
        distractors=2 + 2 * d,
        p_missing=min(0.8, 0.1 * d),
        catalog_items=min(2000, 60 + 40 * d),
        cart_items=min(5, 1 + d // 3),
        variants=min(8, 2 + d // 2),
        p_oos=min(0.4, 0.04 * d),
        p_trap=min(0.5, 0.05 * d),
        p_noise=min(0.06, 0.005 * d),
        p_switch=0.0 if d < 6 else min(0.4, 0.1 * (d - 5)),
        orders=1 + d // 2,
        journey_steps=min(4, 2 + d // 4),
        page_size=max(5, 20 - d),
    )
