"""Advantages, policy losses, aggregations, KL estimators and DAPO shaping, on numbers worked
out by hand (the comments show the arithmetic)."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.training.advantages import ADVANTAGES
from rlvr.training.losses import (
    AGGREGATIONS,
    KL_ESTIMATORS,
    POLICY_LOSSES,
    AggregationContext,
    ClipConfig,
    token_entropy,
)
from rlvr.training.sampling import informative_groups, overlong_penalty

ONE = torch.ones(1)


def scalar(*groups):
    """(B, G) python lists -> (B, G, 1) rewards."""
    return torch.tensor(groups, dtype=torch.float64).unsqueeze(-1)


def test_grpo_group_std():
    # r = [1, 0, 0, 1]: mean 0.5, unbiased std sqrt(4 * 0.25 / 3) = 0.57735
    a = ADVANTAGES.get("grpo")(scalar([1, 0, 0, 1]), ONE.double())
    expected = 0.5 / (math.sqrt(1 / 3) + 1e-4)  # 0.86588
    assert torch.allclose(a, torch.tensor([[expected, -expected, -expected, expected]]).double())


def test_grpo_batch_std():
    # centred [[.5, -.5], [0, 0]]; batch rewards [1, 0, 1, 1]: mean .75, var (3*.0625+.5625)/3 = .25
    a = ADVANTAGES.get("grpo_batch_std")(scalar([1, 0], [1, 1]), ONE.double())
    x = 0.5 / (0.5 + 1e-4)
    assert torch.allclose(a, torch.tensor([[x, -x], [0.0, 0.0]]).double())


def test_dr_grpo_centres_only():
    a = ADVANTAGES.get("dr_grpo")(scalar([1, 0, 0, 1]), ONE.double())
    assert a.tolist() == [[0.5, -0.5, -0.5, 0.5]]


def test_rloo_leave_one_out():
    # A_0 = 1 - (0 + 0 + 0) / 3 = 1;  A_1 = 0 - (1 + 0 + 0) / 3 = -1/3
    a = ADVANTAGES.get("rloo")(scalar([1, 0, 0, 0]), ONE.double())
    assert torch.allclose(a, torch.tensor([[1.0, -1 / 3, -1 / 3, -1 / 3]]).double())
    with pytest.raises(ValueError, match="at least 2"):
        ADVANTAGES.get("rloo")(scalar([1]), ONE.double())


def test_grpo_positive_keeps_only_the_better_half():
    # r = [1, 0, 0, 0]: mean .25, std sqrt(.75 / 3) = .5 -> grpo [1.5, -.5, -.5, -.5]
    a = ADVANTAGES.get("grpo_positive")(scalar([1, 0, 0, 0], [1, 1, 1, 1]), ONE.double())
    x = 0.75 / (0.5 + 1e-4)
    assert torch.allclose(a, torch.tensor([[x, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]).double())


def test_raft_marks_rollouts_above_their_group_mean():
    # [.5, .2, .2]: mean .3 -> only the first; all equal -> none; [1, 1, 0]: mean 2/3 -> two
    a = ADVANTAGES.get("raft")(scalar([0.5, 0.2, 0.2], [1, 1, 1], [1, 1, 0]), ONE.double())
    assert a.tolist() == [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 0.0]]


def test_weights_combine_components_before_scalar_estimators():
    rewards = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # (1, 2, 2)
    a = ADVANTAGES.get("dr_grpo")(rewards, torch.tensor([3.0, 1.0]))
    assert a.tolist() == [[1.0, -1.0]]  # r = [3, 1], mean 2


def test_gdpo_normalizes_each_component_then_the_batch():
    # c1 = [1, 1, 0, 0], c2 = [1, 0, 1, 0]: each normalizes to +-a, a = 0.5 / (0.57735 + 1e-4)
    # s = [2a, 0, 0, -2a]; batch std = 2a * sqrt(2/3), so A = [sqrt(3/2), 0, 0, -sqrt(3/2)]
    rewards = torch.tensor([[[1, 1], [1, 0], [0, 1], [0, 0]]], dtype=torch.float64)
    a = ADVANTAGES.get("gdpo")(rewards, torch.ones(2, dtype=torch.float64))
    x = math.sqrt(1.5)
    assert torch.allclose(a, torch.tensor([[x, 0.0, 0.0, -x]]).double(), atol=1e-3)


def test_gdpo_keeps_components_apart_where_the_sum_collapses():
    # c1 = [1, 0, 0, 0], c2 = [0, 1, 1, 0]: sums [1, 1, 1, 0] make rollouts 0-2 identical under
    # sum-then-normalize. GDPO: c1 -> [1.5, -.5, -.5, -.5] (mean .25, std .5), c2 -> +-0.866,
    # s = [0.634, 0.366, 0.366, -1.366]: the rare c1 success is ranked above the c2 ones.
    rewards = torch.tensor([[[1, 0], [0, 1], [0, 1], [0, 0]]], dtype=torch.float64)
    weights = torch.ones(2, dtype=torch.float64)
    summed = ADVANTAGES.get("grpo")(rewards, weights)[0]
    gdpo = ADVANTAGES.get("gdpo")(rewards, weights)[0]
    assert len(set(summed.round(decimals=6).tolist())) == 2
    assert len(set(gdpo.round(decimals=6).tolist())) == 3
    assert gdpo[0] > gdpo[1] == gdpo[2] > gdpo[3]


@pytest.mark.parametrize(
    "ratio,adv,loss,clipped",
    [
        (1.5, 1.0, -1.2, True),  # min(1.5, 1.2) = 1.2
        (0.5, 1.0, -0.5, False),  # min(0.5, 0.8) = 0.5
        (0.5, -1.0, 0.8, True),  # min(-0.5, -0.8) = -0.8
        (1.5, -1.0, 1.5, False),  # min(-1.5, -1.2) = -1.5
        (1.0, 2.0, -2.0, False),  # on-policy: -A
    ],
)
def test_token_level_clipped_surrogate(ratio, adv, loss, clipped):
    logp = torch.tensor([[math.log(ratio)]])
    out, was_clipped = POLICY_LOSSES.get("token")(
        logp, torch.zeros(1, 1), torch.tensor([adv]), torch.ones(1, 1), ClipConfig()
    )
    assert out.item() == pytest.approx(loss) and was_clipped.item() == clipped


def test_two_sided_clip_caps_the_unclipped_ratio():
    # ratio 3, A = -1: min(-min(3, 1.4), -1.2) = -1.4 -> loss 1.4 (without delta: 3)
    logp = torch.tensor([[math.log(3.0)]])
    args = (logp, torch.zeros(1, 1), torch.tensor([-1.0]), torch.ones(1, 1))
    assert POLICY_LOSSES.get("token")(*args, ClipConfig())[0].item() == pytest.approx(3.0)
    capped = POLICY_LOSSES.get("token")(*args, ClipConfig(delta=1.4))[0]
    assert capped.item() == pytest.approx(1.4)


def test_dapo_clip_higher_is_asymmetric():
    logp = torch.tensor([[math.log(1.25), math.log(0.75)]])
    loss, _ = POLICY_LOSSES.get("token")(
        logp, torch.zeros(1, 2), torch.tensor([1.0]), torch.ones(1, 2), ClipConfig(0.2, 0.28)
    )
    assert loss[0].tolist() == pytest.approx([-1.25, -0.75])  # 1.25 < 1.28: not clipped


def test_sequence_level_ratio_is_the_geometric_mean():
    # log ratios [ln 2, 0] -> s = exp(ln2 / 2) = 1.4142 > 1.2: clipped to 1.2 on both tokens
    logp = torch.tensor([[math.log(2.0), 0.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])  # the masked token must not count
    loss, clipped = POLICY_LOSSES.get("sequence")(
        logp, torch.zeros(1, 3), torch.tensor([1.0]), mask, ClipConfig()
    )
    assert loss[0, :2].tolist() == pytest.approx([-1.2, -1.2]) and bool(clipped[0, 0])


def test_gspo_equals_grpo_on_policy():
    torch.manual_seed(0)
    logp = torch.randn(3, 5, requires_grad=True)
    adv, mask = torch.randn(3), (torch.rand(3, 5) > 0.3).float()
    context = AggregationContext(max_completion_length=5)
    losses = []
    for name in ("token", "sequence"):
        per_token, _ = POLICY_LOSSES.get(name)(logp, logp.detach(), adv, mask, ClipConfig())
        losses.append(AGGREGATIONS.get("grpo")(per_token, mask, context))
    assert losses[0].item() == pytest.approx(losses[1].item())


def test_on_policy_gradient_is_minus_advantage():
    logp = torch.zeros(1, 2, requires_grad=True)
    loss, _ = POLICY_LOSSES.get("token")(
        logp, logp.detach(), torch.tensor([0.7]), torch.ones(1, 2), ClipConfig()
    )
    loss.sum().backward()
    assert logp.grad[0].tolist() == pytest.approx([-0.7, -0.7])


def test_aggregations():
    loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])  # masked 9s must not count
    context = AggregationContext(max_completion_length=5, global_active_tokens=20)
    agg = {name: AGGREGATIONS.get(name)(loss, mask, context).item() for name in AGGREGATIONS}
    assert agg["grpo"] == pytest.approx((6 / 3 + 4 / 1) / 2)  # 3.0
    assert agg["bnpo"] == pytest.approx(10 / 4)
    assert agg["dr_grpo"] == pytest.approx(10 / (2 * 5))
    assert agg["dapo"] == pytest.approx(10 / 20)
    local = AggregationContext(max_completion_length=5)
    assert AGGREGATIONS.get("dapo")(loss, mask, local).item() == pytest.approx(2.5)


def test_kl_estimators_by_hand():
    # d = log .5 - log .25 = ln 2: k1 = .6931, k2 = ln2^2 / 2 = .2402, k3 = .5 + ln2 - 1 = .1931
    logp, ref = torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)])
    ln2 = math.log(2)
    assert KL_ESTIMATORS.get("k1")(logp, ref).item() == pytest.approx(ln2)
    assert KL_ESTIMATORS.get("k2")(logp, ref).item() == pytest.approx(ln2**2 / 2)
    assert KL_ESTIMATORS.get("k3")(logp, ref).item() == pytest.approx(0.5 + ln2 - 1)


def test_k1_and_k3_are_unbiased_and_k3_nonnegative():
    p, q = torch.tensor([0.5, 0.3, 0.2]), torch.tensor([0.2, 0.3, 0.5])
    exact = float((p * (p / q).log()).sum())  # .5 ln 2.5 + .2 ln .4 = 0.27489
    generator = torch.Generator().manual_seed(0)
    samples = torch.multinomial(p, 400_000, replacement=True, generator=generator)
    logp, ref = p.log()[samples], q.log()[samples]
    for name in ("k1", "k3"):
        assert KL_ESTIMATORS.get(name)(logp, ref).mean().item() == pytest.approx(exact, abs=5e-3)
    assert (KL_ESTIMATORS.get("k3")(logp, ref) >= 0).all()


def test_token_entropy_of_uniform_and_peaked():
    logits = torch.zeros(1, 1, 4)
    assert token_entropy(logits).item() == pytest.approx(math.log(4))
    peaked = torch.tensor([[[100.0, 0.0, 0.0]]])
    assert token_entropy(peaked).item() == pytest.approx(0.0, abs=1e-6)


def test_dynamic_sampling_and_overlong_shaping():
    groups = torch.tensor([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    assert informative_groups(groups).tolist() == [False, True, False]
    assert informative_groups(torch.tensor([[1.0]])).tolist() == [True]
    # L_max 10, buffer 4: free up to 6 tokens, then -1/4 per token
    penalties = overlong_penalty(torch.tensor([5, 6, 8, 10]), max_length=10, buffer=4)
    assert penalties.tolist() == [0.0, 0.0, -0.5, -1.0]


def test_registries_reject_unknown_names_in_one_line():
    with pytest.raises(ValueError, match=r"unknown advantage estimator 'ppo'; known: .*grpo"):
        ADVANTAGES.get("ppo")
    assert {"grpo", "bnpo", "dr_grpo", "dapo"} == set(AGGREGATIONS.names())
    with pytest.raises(ValueError, match="eps_low"):
        ClipConfig(eps_low=1.5)
