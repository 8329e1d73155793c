"""KL-Cov and Clip-Cov on a 5-token example worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.training.losses import POLICY_LOSSES, ClipConfig
from rlvr.training.regularizers import (
    REGULARIZERS,
    ClipCov,
    KLCov,
    RegularizerInputs,
    centered_covariance,
    clip_cov_selection,
    kl_cov_selection,
)

E = math.exp(0.1)


def five_tokens(clipped: list[bool] | None = None) -> RegularizerInputs:
    """Five valid tokens plus one padded token (index 5, which must never count).

    A = [2, 0, 0, -1, -1], logp = [-1, -2, -3, -1, -3]: means 0 and -2 over valid tokens, so
    cov = A (logp + 2) = [2, 0, 0, -1, 1]. old_logp = logp - 0.1: rho = e^0.1, |log rho| = 0.1.
    """
    logp = torch.tensor([[-1.0, -2.0, -3.0, -1.0, -3.0, 9.0]], dtype=torch.float64)
    logp.requires_grad_(True)
    return RegularizerInputs(
        logp=logp,
        old_logp=logp.detach() - 0.1,
        advantages=torch.tensor([[2.0, 0.0, 0.0, -1.0, -1.0, 50.0]], dtype=torch.float64),
        mask=torch.tensor([[1, 1, 1, 1, 1, 0]], dtype=torch.float64),
        clipped=None if clipped is None else torch.tensor([[*clipped, False]]),
    )


def test_centered_covariance_uses_valid_tokens_only():
    cov = centered_covariance(five_tokens())[0, :5]
    assert cov.tolist() == [2.0, 0.0, 0.0, -1.0, 1.0]


def test_kl_cov_selects_top_k_fraction_by_covariance():
    inputs = five_tokens()
    # ratio .4: int(5 * .4) = 2 tokens, the two largest covariances 2 (t0) and 1 (t4).
    assert kl_cov_selection(inputs, 0.4).tolist() == [[True, False, False, False, True, False]]
    # A tiny ratio still selects one token (max(1, int(5 * 2e-4)) = 1).
    assert kl_cov_selection(inputs, 2e-4).tolist() == [[True] + [False] * 5]


def test_kl_cov_loss_by_hand():
    # Selected t0, t4: -A e^.1 + 1 * .1; others -A e^.1 (unclipped surrogate).
    inputs = five_tokens()
    loss = KLCov(ratio=0.4, kl_coef=1.0)(torch.zeros(1, 6, dtype=torch.float64), inputs)
    expected = [-2 * E + 0.1, 0.0, 0.0, E, E + 0.1]
    assert torch.allclose(loss[0, :5], torch.tensor(expected, dtype=torch.float64))


def test_kl_cov_with_zero_coefficient_is_vanilla_policy_gradient():
    inputs = five_tokens()
    loss = KLCov(ratio=0.4, kl_coef=0.0)(torch.zeros(1, 6, dtype=torch.float64), inputs)
    vanilla = -inputs.advantages * torch.exp(inputs.logp - inputs.old_logp)
    assert torch.equal(loss, vanilla)


def test_kl_cov_can_add_to_the_clipped_loss_instead():
    inputs = five_tokens()
    clipped, _ = POLICY_LOSSES.get("token")(
        inputs.logp, inputs.old_logp, inputs.advantages, inputs.mask, ClipConfig(0.05, 0.05)
    )
    loss = KLCov(ratio=0.4, kl_coef=2.0, unclipped=False)(clipped, inputs)
    bonus = torch.tensor([[0.2, 0, 0, 0, 0.2, 0]], dtype=torch.float64)
    assert torch.allclose(loss, clipped + bonus)


def test_clip_cov_detaches_in_band_unclipped_tokens():
    # Band (0.5, 5): t0 (cov 2) and t4 (cov 1) qualify; t0 is already clipped, so only t4
    # remains; ratio .2 -> int(.2 * 5) = 1 token: t4 is dropped, deterministically.
    inputs = five_tokens(clipped=[True, False, False, False, False])
    config = ClipCov(ratio=0.2, lower=0.5, upper=5.0)
    assert clip_cov_selection(inputs, config).tolist() == [[False] * 4 + [True, False]]
    base = -inputs.advantages * torch.exp(inputs.logp - inputs.old_logp)
    loss = config(base, inputs)
    assert torch.allclose(loss[0, :5], torch.tensor([-2 * E, 0, 0, E, 0], dtype=torch.float64))
    (loss * inputs.mask).sum().backward()
    assert inputs.logp.grad is not None
    assert float(inputs.logp.grad[0, 4]) == 0.0 and float(inputs.logp.grad[0, 3]) != 0.0


def test_clip_cov_bounds_are_exclusive_and_draw_is_random_but_seeded():
    inputs = five_tokens()
    # Default band (1, 5) excludes t4 (cov exactly 1): only t0 can be dropped.
    assert clip_cov_selection(inputs, ClipCov(ratio=1.0)).tolist() == [[True] + [False] * 5]
    # Band (.5, 5), one token of two candidates: each seed drops exactly one of t0, t4.
    seen = set()
    for seed in range(20):
        gen = torch.Generator().manual_seed(seed)
        seeded = RegularizerInputs(
            inputs.logp, inputs.old_logp, inputs.advantages, inputs.mask, generator=gen
        )
        dropped = clip_cov_selection(seeded, ClipCov(ratio=0.2, lower=0.5))[0]
        assert int(dropped.sum()) == 1 and bool(dropped[0] or dropped[4])
        seen.add(int(dropped.nonzero()))
    assert seen == {0, 4}


def test_regularizer_registry_and_errors():
    inputs = five_tokens()
    loss = torch.ones(1, 6)
    assert REGULARIZERS.get("none")()(loss, inputs) is loss
    assert REGULARIZERS.names() == ["clip_cov", "kl_cov", "none"]
    with pytest.raises(ValueError, match=r"kl_cov ratio must lie in \(0, 1\]"):
        KLCov(ratio=0.0)
    with pytest.raises(ValueError, match="clip_cov needs lower < upper"):
        ClipCov(lower=5.0, upper=1.0)
    with pytest.raises(ValueError, match="advantages must have the shape of logp"):
        RegularizerInputs(torch.ones(2, 3), torch.ones(2, 3), torch.ones(2), torch.ones(2, 3))
