"""Rollout horizon schedules for on-policy distillation: how many completion tokens to sample.

On-policy distillation (OPD) needs no final-answer reward: every sampled token gets its own
teacher signal, so a rollout can be cut at any length and its prefix still trains. Two papers
build on that:

* TOPD ("Are Full Rollouts Necessary for On-Policy Distillation?", arXiv 2605.31490) samples
  only a fixed fraction ``rho_h`` of the full horizon (``max_new_tokens = rho_h * H_full``;
  the paper reports ``rho_h ~ 10%`` matching full OPD). The truncated prefix gets the full
  per-token loss, with no EOS and no length penalty.
* POPD (same paper) grows the horizon ``H(s)`` from ``H_0`` to ``H_full`` during training.
  The paper's abstract gives no schedule; the two here, stagewise doubling and linear growth
  in the step count, are reconstructed from the reference notes and are not the authors'
  code.

Every schedule has the same signature, so the loop calls whichever the scenario names::

    schedule(step, total_steps, full_horizon, config) -> int   # tokens to generate at `step`

``step`` counts optimizer steps from 0 (``step == total_steps`` is accepted, for a final
evaluation), ``full_horizon`` is the run's ``max_new_tokens``. Every schedule returns an
integer in ``[1, full_horizon]`` and is non-decreasing in ``step``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from rlvr.training.registry import Registry

_ROUNDING_SLACK = 1e-9
"""Absorbs float error before rounding up (``0.3 * 10`` is ``3.0000000000000004``)."""


@dataclass(frozen=True)
class HorizonConfig:
    """Parameters of the horizon schedules (each schedule reads the fields it needs)."""

    fraction: float = 0.1
    """TOPD ``rho_h``: ``truncated`` samples ``ceil(fraction * H_full)`` tokens, in (0, 1]."""
    initial_fraction: float = 0.125
    """POPD ``H_0 = ceil(initial_fraction * H_full)``, in (0, 1] (16 of 128 by default)."""
    ramp_fraction: float = 0.5
    """POPD: the full horizon is reached at ``step = ramp_fraction * total_steps``, in (0, 1]."""
    stage_steps: int | None = None
    """POPD ``doubling``: double every ``stage_steps`` steps (``N_s``); ``None`` spreads the
    doublings evenly over the ramp."""

    def __post_init__(self) -> None:
        for name in ("fraction", "initial_fraction", "ramp_fraction"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ValueError(f"horizon {name} must be in (0, 1], got {value}")
        if self.stage_steps is not None and self.stage_steps < 1:
            raise ValueError(f"horizon stage_steps must be >= 1, got {self.stage_steps}")


class HorizonSchedule(Protocol):
    def __call__(
        self, step: int, total_steps: int, full_horizon: int, config: HorizonConfig = ...
    ) -> int: ...


HORIZONS: Registry[HorizonSchedule] = Registry("horizon schedule")


def _check(step: int, total_steps: int, full_horizon: int) -> None:
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0 <= step <= total_steps:
        raise ValueError(f"step must be in [0, total_steps={total_steps}], got {step}")
    if full_horizon < 1:
        raise ValueError(f"full_horizon must be >= 1, got {full_horizon}")


def _fraction_of(full_horizon: int, fraction: float) -> int:
    """``ceil(fraction * full_horizon)``, at least 1 token."""
    return max(1, math.ceil(fraction * full_horizon - _ROUNDING_SLACK))


@HORIZONS.register("full")
def full_horizon_schedule(
    step: int, total_steps: int, full_horizon: int, config: HorizonConfig = HorizonConfig()
) -> int:
    """Plain OPD (Thinking Machines, "On-Policy Distillation", 2025): always ``H_full``."""
    _check(step, total_steps, full_horizon)
    return full_horizon


@HORIZONS.register("truncated")
def truncated_schedule(
    step: int, total_steps: int, full_horizon: int, config: HorizonConfig = HorizonConfig()
) -> int:
    """TOPD (arXiv 2605.31490): a fixed ``H = ceil(rho_h * H_full)`` for the whole run."""
    _check(step, total_steps, full_horizon)
    return _fraction_of(full_horizon, config.fraction)


@HORIZONS.register("doubling")
def doubling_schedule(
    step: int, total_steps: int, full_horizon: int, config: HorizonConfig = HorizonConfig()
) -> int:
    """POPD stagewise doubling [reconstructed]: ``H = min(H_full, H_0 * 2^floor(step / N_s))``.

    ``N_s = config.stage_steps``, or, when that is ``None``, the ramp ``ramp_fraction *
    total_steps`` split into ``n = ceil(log2(H_full / H_0))`` equal stages, so ``H_full`` is
    reached exactly at the end of the ramp (``H_0 = 16, H_full = 128``: 16, 32, 64, 128).
    """
    _check(step, total_steps, full_horizon)
    initial = _fraction_of(full_horizon, config.initial_fraction)
    doublings = math.ceil(math.log2(full_horizon / initial) - _ROUNDING_SLACK)
    if doublings <= 0:
        return full_horizon
    if config.stage_steps is not None:
        stage = step // config.stage_steps
    else:  # step / (ramp * total / doublings), without dividing twice in floating point
        stage = math.floor(
            step * doublings / (config.ramp_fraction * total_steps) + _ROUNDING_SLACK
        )
    return min(full_horizon, initial * 2 ** min(stage, doublings))


@HORIZONS.register("linear")
def linear_schedule(
    step: int, total_steps: int, full_horizon: int, config: HorizonConfig = HorizonConfig()
) -> int:
    """POPD linear growth [reconstructed]:
    ``H = H_0 + floor((H_full - H_0) * min(1, step / (ramp_fraction * total_steps)))``."""
    _check(step, total_steps, full_horizon)
    initial = _fraction_of(full_horizon, config.initial_fraction)
    progress = min(1.0, step / (config.ramp_fraction * total_steps))
    return initial + math.floor((full_horizon - initial) * progress + _ROUNDING_SLACK)
