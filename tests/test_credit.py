"""Token credit (DelTA) and turn-level credit, on numbers worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.training.advantages import ADVANTAGES
from rlvr.training.credit import (
    TOKEN_CREDIT,
    CreditInputs,
    DeltaCredit,
    credit_scale_spread,
    delta_coefficients,
    per_token,
)
from rlvr.training.turn_credit import (
    TurnCreditConfig,
    returns_to_go,
    turn_advantages,
    turns_to_tokens,
)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def two_by_two() -> tuple[torch.Tensor, CreditInputs]:
    """2 rollouts x 2 tokens, H = 2. p = 0.5 everywhere, so v = (1 - p) h = h / 2.

    Rollout 0 (A = +1): a shared token v = (0, 1), then a key token v = (2, 0).
    Rollout 1 (A = -1): the same shared token, then the opposite key token v = (-2, 0).
    """
    v = torch.tensor([[[0.0, 1.0], [2.0, 0.0]], [[0.0, 1.0], [-2.0, 0.0]]], dtype=torch.float64)
    inputs = CreditInputs(
        mask=torch.ones(2, 2, dtype=torch.float64),
        old_token_prob=torch.full((2, 2), 0.5, dtype=torch.float64),
        hidden=2 * v,
    )
    return torch.tensor([1.0, -1.0], dtype=torch.float64), inputs


def test_delta_two_sequences_by_hand():
    # mu+ = mean((0,1), (2,0)) = (1, .5); mu- = (-1, .5).
    # Shared token: d+ = d- = 1.25, M = 0. Key token: d+ = 1.25, d- = 9.25, M = 8 (both sides).
    # gamma = population std of {0, 8} = 4.
    # Refinement (K = 1): s = sigmoid(M / 4) = .5 (shared), sigmoid(2) (key);
    # mu+* = (.5 (0,1) + sigmoid(2) (2,0)) / (.5 + sigmoid(2)) = (a, .5 / (.5 + sigmoid(2))),
    # a = 2 sigmoid(2) / (.5 + sigmoid(2)); mu-* mirrors it. gamma stays 4 (same margins).
    # Final margins: shared 0 -> w = .8 + .4 * .5 = 1; key: (2 + a)^2 - (2 - a)^2 = 8a ->
    # w = .8 + .4 sigmoid(2a). Self-normalised by the mean (1 + w_key) / 2.
    advantages, inputs = two_by_two()
    s2 = sigmoid(2.0)
    a = 2 * s2 / (0.5 + s2)
    w_key = 0.8 + 0.4 * sigmoid(8 * a / 4)
    mean = (1 + w_key) / 2
    expected = torch.tensor([[1 / mean, w_key / mean], [-1 / mean, -w_key / mean]]).double()
    out = TOKEN_CREDIT.get("delta")()(advantages, inputs)
    assert torch.allclose(out, expected, atol=1e-12)
    assert 1 / mean == pytest.approx(0.92120, abs=1e-5)  # shared tokens lose weight
    assert w_key / mean == pytest.approx(1.07880, abs=1e-5)  # key tokens gain it


def test_delta_without_refinement_uses_the_first_centroids():
    # K = 0: key w = .8 + .4 sigmoid(8 / 4), shared w = 1, normalised by their mean.
    advantages, inputs = two_by_two()
    w = delta_coefficients(advantages, inputs, DeltaCredit(iterations=0))
    w_key = 0.8 + 0.4 * sigmoid(2.0)
    mean = (1 + w_key) / 2
    assert torch.allclose(w, torch.tensor([[1, w_key], [1, w_key]]).double() / mean)


def test_delta_coefficients_stay_in_range_and_average_one():
    gen = torch.Generator().manual_seed(0)
    advantages = torch.tensor([1.5, -0.5, 0.0, -1.0])
    mask = torch.ones(4, 6)
    mask[1, 4:] = 0
    prob, hidden = torch.rand(4, 6, generator=gen), torch.randn(4, 6, 3, generator=gen)
    inputs = CreditInputs(mask, prob, hidden)
    config = DeltaCredit(lambda_min=0.5, lambda_max=2.0, iterations=3)
    w = delta_coefficients(advantages, inputs, config)
    valid = mask.bool()
    assert float(w[valid].mean()) == pytest.approx(1.0, abs=1e-6)
    assert torch.all(w[~valid] == 0)
    # The A = 0 rollout sits at lambda_min before self-normalisation, which gives the scale.
    scale = float(w[2, 0]) / 0.5
    raw = w[valid] / scale
    assert torch.allclose(w[2] / scale, torch.full((6,), 0.5))
    assert float(raw.min()) >= 0.5 - 1e-6 and float(raw.max()) <= 2.0 + 1e-6


def test_delta_equal_lambdas_is_the_base_advantage_exactly():
    advantages, inputs = two_by_two()
    out = DeltaCredit(lambda_min=1.1, lambda_max=1.1)(advantages, inputs)
    base = TOKEN_CREDIT.get("none")()(advantages, inputs)
    assert torch.equal(out, base)
    assert base.tolist() == [[1.0, 1.0], [-1.0, -1.0]]


def test_delta_shared_boilerplate_loses_weight_to_key_tokens():
    # Three format tokens shared by both sides, one side-specific answer token each.
    gen = torch.Generator().manual_seed(1)
    shared = torch.tensor([0.0, 0.0, 3.0])
    pos_key, neg_key = torch.tensor([2.0, 0.0, 0.0]), torch.tensor([-2.0, 0.0, 0.0])
    rows = []
    for sign in (1, 1, -1, -1):
        key = pos_key if sign > 0 else neg_key
        noise = 0.05 * torch.randn(4, 3, generator=gen)
        rows.append(torch.stack([shared, shared, shared, key]) + noise)
    hidden = torch.stack(rows)  # (4, 4, 3)
    inputs = CreditInputs(torch.ones(4, 4), torch.full((4, 4), 0.2), hidden)
    w = delta_coefficients(torch.tensor([1.0, 1.0, -1.0, -1.0]), inputs, DeltaCredit())
    assert float(w[:, 3].min()) > 1.0 > float(w[:, :3].max())


def reference_delta(adv, token_mask, probs, h, final_w_lo, final_w_hi, disc_steps):
    """RUCBM/DelTA @ cf048bd, ``verl-DelTA/verl/workers/actor/dp_actor.py``,
    ``compute_log_prob_h``, ``version == "Normal"``, transcribed statement by statement for a
    single micro-batch (the micro-batch accumulators become plain sums; the upstream names
    are kept; ``gamma_time = lam_w = 1`` as upstream sets them)."""
    lam, eps, gamma_time, lam_w = 1e-6, 1e-8, 1, 1.0
    # pass 1: weighted sums -> mu_pos, mu_neg (and the unused diagonal variance)
    v = (1.0 - probs).unsqueeze(-1) * h
    v2 = v**2
    token_mask_3d = token_mask.unsqueeze(-1)
    adv_pos, adv_neg = torch.clamp(adv, min=0.0), torch.clamp(-adv, min=0.0)
    w_pos0 = adv_pos[:, None, None] * token_mask_3d
    w_neg0 = adv_neg[:, None, None] * token_mask_3d
    S_p = torch.clamp(w_pos0.sum(), min=eps)
    S_n = torch.clamp(w_neg0.sum(), min=eps)
    mu_pos = (w_pos0 * v).sum(dim=(0, 1)) / S_p
    mu_neg = (w_neg0 * v).sum(dim=(0, 1)) / S_n
    sig_pos = torch.clamp((w_pos0 * v2).sum(dim=(0, 1)) / S_p - mu_pos**2, min=0.0)
    sig_neg = torch.clamp((w_neg0 * v2).sum(dim=(0, 1)) / S_n - mu_neg**2, min=0.0)
    d = sig_pos + sig_neg + lam
    d = torch.ones_like(mu_pos)
    pos_seq_mask = (adv > 0).float().unsqueeze(1)
    neg_seq_mask = (adv < 0).float().unsqueeze(1)
    valid_pos_mask, valid_neg_mask = pos_seq_mask * token_mask, neg_seq_mask * token_mask

    def margins(mu_p, mu_n):
        d_pos = (((v - mu_p.view(1, 1, -1)) ** 2) / d.view(1, 1, -1)).sum(dim=-1)
        d_neg = (((v - mu_n.view(1, 1, -1)) ** 2) / d.view(1, 1, -1)).sum(dim=-1)
        return lam_w * d_neg - d_pos, lam_w * d_pos - d_neg

    def gamma(margin, valid):
        count = torch.clamp(valid.sum(), min=1.0)
        mean = (margin * valid).sum() / count
        sumsq = (margin**2 * valid).sum()
        return gamma_time * torch.sqrt(torch.clamp(sumsq / count - mean**2, min=eps))

    # pass 2: gamma from the margins against mu_pos, mu_neg
    margin_pos, margin_neg = margins(mu_pos, mu_neg)
    gamma_pos, gamma_neg = gamma(margin_pos, valid_pos_mask), gamma(margin_neg, valid_neg_mask)
    # disc_steps refinement passes
    mu_pos_star, mu_neg_star = mu_pos.clone(), mu_neg.clone()
    for _ in range(disc_steps):
        margin_pos, margin_neg = margins(mu_pos_star, mu_neg_star)
        base_pos = torch.clamp(adv, min=0.0).unsqueeze(1)
        base_neg = torch.clamp(-adv, min=0.0).unsqueeze(1)
        w_pos = torch.sigmoid(margin_pos / gamma_pos) * base_pos * valid_pos_mask
        w_neg = torch.sigmoid(margin_neg / gamma_neg) * base_neg * valid_neg_mask
        num_pos = (w_pos.unsqueeze(-1) * v).sum(dim=(0, 1))
        num_neg = (w_neg.unsqueeze(-1) * v).sum(dim=(0, 1))
        mu_pos_star = num_pos / torch.clamp(w_pos.sum(), min=eps)
        mu_neg_star = num_neg / torch.clamp(w_neg.sum(), min=eps)
        gamma_pos = gamma(margin_pos, valid_pos_mask)  # this pass's (pre-update) margins
        gamma_neg = gamma(margin_neg, valid_neg_mask)
    # final pass: weights against mu_*_star, then gy_norm = tk_sum / wht_sum
    margin_pos, margin_neg = margins(mu_pos_star, mu_neg_star)
    w_pos_final = final_w_lo + (final_w_hi - final_w_lo) * torch.sigmoid(margin_pos / gamma_pos)
    w_neg_final = final_w_lo + (final_w_hi - final_w_lo) * torch.sigmoid(margin_neg / gamma_neg)
    zero_seq_mask = 1.0 - pos_seq_mask - neg_seq_mask
    weight = (
        w_pos_final * pos_seq_mask + w_neg_final * neg_seq_mask + final_w_lo * zero_seq_mask
    ) * token_mask
    gy_norm = token_mask.sum() / weight.sum().clamp_min(1e-8)
    return weight * gy_norm


@pytest.mark.parametrize("steps", [0, 1, 3])
def test_delta_matches_the_reference_code(steps):
    gen = torch.Generator().manual_seed(steps)
    adv = torch.tensor([0.7, -1.2, 0.0, 2.0, -0.3])
    mask = (torch.rand(5, 7, generator=gen) > 0.2).float()
    prob = torch.rand(5, 7, generator=gen)
    h = torch.randn(5, 7, 4, generator=gen)
    expected = reference_delta(adv, mask, prob, h, 0.8, 1.2, steps)
    w = delta_coefficients(adv, CreditInputs(mask, prob, h), DeltaCredit(iterations=steps))
    assert torch.allclose(w, expected, atol=1e-6)


def test_delta_per_token_advantages_take_the_side_of_each_token():
    # (N, T) advantages equal to a broadcast (N,) give the same result.
    advantages, inputs = two_by_two()
    per_rollout = TOKEN_CREDIT.get("delta")()(advantages, inputs)
    per_token = TOKEN_CREDIT.get("delta")()(advantages.unsqueeze(-1).expand(2, 2), inputs)
    assert torch.allclose(per_rollout, per_token)


def test_credit_inputs_and_config_errors():
    with pytest.raises(ValueError, match="lambda_min <= lambda_max"):
        DeltaCredit(lambda_min=1.3, lambda_max=1.2)
    with pytest.raises(ValueError, match="iterations must be >= 0"):
        DeltaCredit(iterations=-1)
    with pytest.raises(ValueError, match="iterations must be an int"):
        DeltaCredit(iterations=1.5)
    with pytest.raises(ValueError, match="old_token_prob"):
        CreditInputs(torch.ones(2, 3), torch.ones(2, 2))
    with pytest.raises(ValueError, match="hidden must be"):
        CreditInputs(torch.ones(2, 3), torch.ones(2, 3), torch.ones(2, 2, 4))
    with pytest.raises(ValueError, match=r"needs inputs\.hidden"):
        DeltaCredit()(torch.ones(2), CreditInputs(torch.ones(2, 3), torch.ones(2, 3)))
    with pytest.raises(ValueError, match="unknown token credit 'nope'; known: delta, none"):
        TOKEN_CREDIT.get("nope")


def test_none_credit_broadcasts_and_masks():
    inputs = CreditInputs(torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]), torch.ones(2, 3))
    out = TOKEN_CREDIT.get("none")()(torch.tensor([2.0, -1.0]), inputs)
    assert out.tolist() == [[2.0, 2.0, 0.0], [-1.0, 0.0, 0.0]]
    with pytest.raises(ValueError, match=r"advantages must be \(N,\) or \(N, T\)"):
        TOKEN_CREDIT.get("none")()(torch.ones(3), inputs)


# ------------------------------------------------------------------ turn-level credit


def test_returns_to_go_discounts_by_turn():
    # rewards [1, 0, 2], gamma .5: R_2 = 2, R_1 = 0 + .5 * 2 = 1, R_0 = 1 + .5 * 1 = 1.5.
    # Second row has 2 valid turns: the padded reward 9 is ignored.
    rewards = torch.tensor([[1.0, 0.0, 2.0], [1.0, 1.0, 9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    assert returns_to_go(rewards, mask, 0.5).tolist() == [[1.5, 1.0, 2.0], [1.5, 1.0, 0.0]]


def test_turn_credit_gamma_one_terminal_reward_equal_lengths_is_grpo():
    # Four 3-turn episodes, reward only on the last turn: R_{i,u} = r_i on every turn.
    terminal = [1.0, 0.0, 0.0, 1.0]
    rewards = torch.zeros(4, 3, dtype=torch.float64)
    rewards[:, 2] = torch.tensor(terminal, dtype=torch.float64)
    mask = torch.ones(4, 3, dtype=torch.float64)
    turn_adv = turn_advantages(rewards, mask, group_size=4)
    grpo = ADVANTAGES.get("grpo")(
        torch.tensor(terminal, dtype=torch.float64).view(1, 4, 1), torch.ones(1).double()
    )[0]
    assert torch.allclose(turn_adv, grpo.unsqueeze(-1).expand(4, 3))
    # mean .5, unbiased std sqrt(1/3): +-.5 / (.57735 + 1e-4) = +-0.86588 on every turn
    assert float(turn_adv[0, 2]) == pytest.approx(0.5 / (math.sqrt(1 / 3) + 1e-4))


def test_turn_credit_baseline_is_per_turn_over_the_rollouts_still_playing():
    # Episodes of 3, 1, 2 and 3 turns, terminal rewards 1, 0, 0, 1, gamma 1.
    # Turn 0: all four alive, R = [1, 0, 0, 1] -> the GRPO advantage +-0.86588.
    # Turn 1: rollouts 0, 2, 3 alive, R = [1, 0, 1]: mean 2/3, std sqrt(1/3)
    #   -> [1/3, -2/3, 1/3] / (.57735 + 1e-4); rollout 1 is padding -> 0.
    # Turn 2: rollouts 0 and 3 alive, R = [1, 1]: equal -> 0.
    terminal, lengths = [1.0, 0.0, 0.0, 1.0], [3, 1, 2, 3]
    rewards = torch.zeros(4, 3, dtype=torch.float64)
    mask = torch.zeros(4, 3, dtype=torch.float64)
    for i, (r, n) in enumerate(zip(terminal, lengths, strict=True)):
        rewards[i, n - 1] = r
        mask[i, :n] = 1
    out = turn_advantages(rewards, mask, group_size=4)
    a0 = 0.5 / (math.sqrt(1 / 3) + 1e-4)
    s1 = math.sqrt(1 / 3) + 1e-4
    expected = [
        [a0, (1 / 3) / s1, 0.0],
        [-a0, 0.0, 0.0],
        [-a0, (-2 / 3) / s1, 0.0],
        [a0, (1 / 3) / s1, 0.0],
    ]
    assert torch.allclose(out, torch.tensor(expected, dtype=torch.float64))


def test_turn_credit_by_hand_with_discount_and_two_groups():
    # Group 0: rollouts with rewards [0, 1] and [1, 0], gamma .5: R = [[.5, 1], [1, 0]].
    #   Turn 0: R = [.5, 1], mean .75, std sqrt(.125) = .35355 -> -+.25 / (.35355 + 1e-4)
    #   Turn 1: R = [1, 0], mean .5, std sqrt(.5) = .70711 -> +-.5 / (.70711 + 1e-4)
    #   (the reward rollout 1 earned at turn 0 is not part of turn 1's baseline)
    # Group 1: rollouts [1, pad] and [1, pad]: equal returns at turn 0, none at turn 1 -> 0.
    rewards = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1], [1, 1], [1, 0], [1, 0]])
    out = turn_advantages(rewards, mask, 2, TurnCreditConfig(gamma=0.5))
    s0, s1 = math.sqrt(0.125) + 1e-4, math.sqrt(0.5) + 1e-4
    expected = [[-0.25 / s0, 0.5 / s1], [0.25 / s0, -0.5 / s1], [0.0, 0.0], [0.0, 0.0]]
    assert torch.allclose(out, torch.tensor(expected, dtype=torch.float64))
    centred = turn_advantages(rewards, mask, 2, TurnCreditConfig(gamma=0.5, scale_by_std=False))
    assert centred.tolist() == [[-0.25, 0.5], [0.25, -0.5], [0.0, 0.0], [0.0, 0.0]]


def test_turn_credit_equal_returns_give_zero_not_a_blow_up():
    # Equal per-turn rewards in the group: R = [[1, .5], [1, .5]] -> equal at each turn -> 0
    # (a shared episode-level scale of std 0 would give (.5 - 1) / 1e-4 = -5000 at turn 1).
    same = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    assert turn_advantages(same, torch.ones(2, 2), 2).tolist() == [[0.0, 0.0], [0.0, 0.0]]
    # Terminal reward only, gamma .9, every rollout solves in 2 turns: R = [[.9, 1], [.9, 1]]
    # -> 0 (not (1 - .9) / 1e-4 = +1000 at turn 1).
    solved = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    out = turn_advantages(solved, torch.ones(2, 2), 2, TurnCreditConfig(gamma=0.9))
    assert out.tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_turn_credit_discount_prefers_the_faster_solve_with_bounded_advantages():
    # Both solve, in 3 and 2 turns, gamma .9: R = [[.81, .9, 1], [.9, 1, pad]].
    # Turns 0 and 1: two distinct returns d apart -> +-(d / 2) / (d / sqrt(2) + 1e-4), about .706;
    # turn 2: one rollout alive -> 0.
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    out = turn_advantages(rewards, mask, 2, TurnCreditConfig(gamma=0.9))
    d0, d1 = 0.9 - 0.81, 1.0 - 0.9
    a0, a1 = 0.5 * d0 / (d0 / math.sqrt(2) + 1e-4), 0.5 * d1 / (d1 / math.sqrt(2) + 1e-4)
    expected = [[-a0, -a1, 0.0], [a0, a1, 0.0]]
    assert torch.allclose(out, torch.tensor(expected, dtype=torch.float64))
    assert a0 == pytest.approx(0.7060, abs=1e-4)  # .045 / (.063640 + 1e-4)


def test_turns_to_tokens_broadcasts_and_zeroes_env_tokens():
    turn_adv = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    index = torch.tensor([[-1, 0, 0, -1, 1, 1], [-1, 0, -1, -1, -1, -1]])
    assert turns_to_tokens(turn_adv, index).tolist() == [
        [0.0, 0.5, 0.5, 0.0, -1.0, -1.0],
        [0.0, 2.0, 0.0, 0.0, 0.0, 0.0],
    ]
    with pytest.raises(ValueError, match=r"turn_index values must lie in \[-1, 1\]"):
        turns_to_tokens(turn_adv, torch.tensor([[2, 0], [0, 0]]))


def test_turn_credit_errors():
    ones = torch.ones(3, 2)
    with pytest.raises(ValueError, match="group_size must be >= 1 and divide N = 3"):
        turn_advantages(ones, ones, 2)
    with pytest.raises(ValueError, match="padding last"):
        turn_advantages(torch.ones(2, 3), torch.tensor([[1, 0, 1], [1, 1, 1]]), 2)
    with pytest.raises(ValueError, match="valid first turn"):
        turn_advantages(torch.ones(2, 2), torch.tensor([[1, 1], [0, 1]]), 2)
    with pytest.raises(ValueError, match="gamma must lie in"):
        TurnCreditConfig(gamma=1.5)


def test_turn_credit_feeds_token_credit():
    # Per-token advantages from turns go through any TOKEN_CREDIT entry unchanged in shape.
    turn_adv = torch.tensor([[1.0, 0.5], [-1.0, -0.5]])
    token_adv = turns_to_tokens(turn_adv, torch.tensor([[0, 1], [0, 1]]))
    inputs = CreditInputs(torch.ones(2, 2), torch.full((2, 2), 0.5))
    credit = TOKEN_CREDIT.get("none")()
    assert credit(token_adv, inputs).tolist() == [[1.0, 0.5], [-1.0, -0.5]]


def test_credit_scale_spread_by_hand():
    before = torch.tensor([1.0, -2.0, 0.0])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 1, 1]])
    after = torch.tensor([[1.2, 0.8, 1.0], [-2.0, -2.0, 5.0], [0.0, 0.0, 0.0]])
    # ratios on masked tokens with a nonzero advantage: 1.2, 0.8, 1.0, 1.0, 1.0
    # mean 1, squared deviations 0.04 + 0.04 = 0.08, unbiased variance 0.08 / 4 = 0.02
    assert credit_scale_spread(before, after, mask) == pytest.approx(0.02**0.5)
    assert credit_scale_spread(before, per_token(before, mask), mask) == 0.0
    assert math.isnan(credit_scale_spread(before[:1], after[:1, :1], mask[:1, :1]))
