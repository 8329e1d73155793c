"""On-policy distillation (OPD advantage, exact reverse KL), DistIL losses, the teacher context
and the TOPD/POPD horizon schedules, on numbers worked out by hand (comments show the
arithmetic)."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.envs.types import Message
from rlvr.training.distill import (
    DISTILLATION_LOSSES,
    FEEDBACK_TEMPLATE,
    DistillConfig,
    opd_advantage,
    reverse_kl_full,
    teacher_context,
)
from rlvr.training.horizons import HORIZONS, HorizonConfig

LN2 = math.log(2)


def logits_of(*probs: float) -> torch.Tensor:
    """A (1, 1, V) logits tensor whose softmax is ``probs``."""
    return torch.tensor(probs, dtype=torch.float64).log().view(1, 1, -1)


ONE = torch.ones(1, 1)
NO_TOKENS = torch.zeros(1, 1, dtype=torch.long)


# --- OPD ---------------------------------------------------------------------------------


def test_opd_advantage_is_teacher_minus_student_and_masked():
    logp = torch.tensor([[math.log(0.5), math.log(0.25), 0.0]], requires_grad=True)
    teacher = torch.tensor([[math.log(0.25), math.log(0.5), 5.0]])
    adv = opd_advantage(logp, teacher, torch.tensor([[1.0, 1.0, 0.0]]))
    assert adv[0].tolist() == pytest.approx([-LN2, LN2, 0.0])
    assert not adv.requires_grad  # detached: the advantage is a constant of the PG loss
    with pytest.raises(ValueError, match="one \\(N, T\\) shape"):
        opd_advantage(logp, teacher[:, :2], torch.ones(1, 3))


def test_reverse_kl_full_by_hand():
    # KL([.5, .5] || [.8, .2]) = .5 ln(.5/.8) + .5 ln(.5/.2) = .5 ln(25/16) = 0.22314
    kl = reverse_kl_full(logits_of(0.5, 0.5), logits_of(0.8, 0.2), ONE)
    assert kl.item() == pytest.approx(0.5 * math.log(25 / 16))
    assert reverse_kl_full(logits_of(0.5, 0.5), logits_of(0.8, 0.2), 0 * ONE).item() == 0.0
    same = torch.randn(2, 3, 7)
    assert torch.allclose(reverse_kl_full(same, same, torch.ones(2, 3)), torch.zeros(2, 3))


def test_opd_advantage_is_an_unbiased_reverse_kl_sample():
    # E_{y ~ pi_S}[-A] = KL(pi_S || pi_T): the Monte Carlo mean of -A matches the exact KL
    student, teacher = torch.tensor([0.6, 0.3, 0.1]), torch.tensor([0.2, 0.5, 0.3])
    tokens = torch.multinomial(student, 200_000, replacement=True, generator=torch.Generator())
    logp, teacher_logp = student.log()[tokens].view(1, -1), teacher.log()[tokens].view(1, -1)
    sampled = -opd_advantage(logp, teacher_logp, torch.ones_like(logp)).mean()
    exact = reverse_kl_full(student.log().view(1, 1, 3), teacher.log().view(1, 1, 3), ONE)
    assert sampled.item() == pytest.approx(exact.item(), abs=5e-3)


# --- DistIL losses -----------------------------------------------------------------------


def test_forward_ce_against_a_known_distribution():
    # p_E = [.5, .25, .25], p_theta = [.25, .25, .5]:
    # -(.5 ln .25 + .25 ln .25 + .25 ln .5) = .75 ln 4 + .25 ln 2 = 1.75 ln 2
    loss = DISTILLATION_LOSSES.get("forward_ce")(
        logits_of(0.25, 0.25, 0.5), logits_of(0.5, 0.25, 0.25), NO_TOKENS, ONE, DistillConfig()
    )
    assert loss.item() == pytest.approx(1.75 * LN2)


def test_forward_ce_is_masked_and_minimal_at_the_teacher():
    teacher = torch.randn(2, 3, 5)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    forward_ce = DISTILLATION_LOSSES.get("forward_ce")
    at_teacher = forward_ce(teacher, teacher, NO_TOKENS, mask, DistillConfig())
    elsewhere = forward_ce(torch.randn(2, 3, 5), teacher, NO_TOKENS, mask, DistillConfig())
    assert (at_teacher[mask == 0] == 0).all() and (elsewhere[mask == 0] == 0).all()
    # H(p, q) = H(p) + KL(p || q) >= H(p), with equality at q = p
    assert (elsewhere[mask == 1] > at_teacher[mask == 1]).all()


def test_forward_ce_topk_renormalizes_the_teachers_top_k():
    # p_E = [.5, .3, .2], k = 2: {0: .625, 1: .375}; p_theta = [.25, .25, .5]:
    # -(.625 ln .25 + .375 ln .25) = ln 4
    loss = DISTILLATION_LOSSES.get("forward_ce_topk")(
        logits_of(0.25, 0.25, 0.5), logits_of(0.5, 0.3, 0.2), NO_TOKENS, ONE, DistillConfig(2)
    )
    assert loss.item() == pytest.approx(math.log(4))


@pytest.mark.parametrize("k", [7, 50])
def test_forward_ce_topk_with_k_at_least_v_equals_full(k):
    student, teacher, mask = torch.randn(3, 4, 7), torch.randn(3, 4, 7), torch.ones(3, 4)
    full = DISTILLATION_LOSSES.get("forward_ce")(student, teacher, NO_TOKENS, mask, DistillConfig())
    topk = DISTILLATION_LOSSES.get("forward_ce_topk")(
        student, teacher, NO_TOKENS, mask, DistillConfig(top_k=k)
    )
    assert torch.allclose(full, topk, atol=1e-6)


def test_reverse_kl_sampled_by_hand():
    # p_theta = [.5, .5], p_E = [.8, .2], sampled token 1:
    # L = (ln .5 - ln .2) * ln .5 = ln 2.5 * ln .5; dL/dz = ln 2.5 * (e_1 - p) = ln 2.5 * [-.5, .5]
    student = logits_of(0.5, 0.5).requires_grad_()
    loss = DISTILLATION_LOSSES.get("reverse_kl_sampled")(
        student, logits_of(0.8, 0.2), torch.tensor([[1]]), ONE, DistillConfig()
    )
    assert loss.item() == pytest.approx(math.log(2.5) * math.log(0.5))
    loss.sum().backward()
    assert student.grad.view(-1).tolist() == pytest.approx(
        [-0.5 * math.log(2.5), 0.5 * math.log(2.5)]
    )


def test_reverse_kl_sampled_gradient_is_the_reverse_kl_gradient_in_expectation():
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(1, 1, 4, dtype=torch.float64, generator=generator).requires_grad_()
    teacher = torch.randn(1, 1, 4, dtype=torch.float64, generator=generator)
    p = torch.softmax(student.detach(), dim=-1).view(-1)
    sampled = DISTILLATION_LOSSES.get("reverse_kl_sampled")
    expected = sum(
        p[y] * sampled(student, teacher, torch.tensor([[y]]), ONE, DistillConfig()).sum()
        for y in range(4)
    )
    (grad_sampled,) = torch.autograd.grad(expected, student)
    (grad_exact,) = torch.autograd.grad(reverse_kl_full(student, teacher, ONE).sum(), student)
    # reverse_kl_full computes in float32
    assert torch.allclose(grad_sampled, grad_exact, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", DISTILLATION_LOSSES.names())
def test_gradients_flow_only_to_the_student(name):
    student = torch.randn(2, 3, 5, requires_grad=True)
    teacher = torch.randn(2, 3, 5, requires_grad=True)
    tokens = torch.randint(0, 5, (2, 3))
    loss = DISTILLATION_LOSSES.get(name)(
        student, teacher, tokens, torch.ones(2, 3), DistillConfig(3)
    )
    loss.sum().backward()
    assert teacher.grad is None
    assert student.grad is not None and student.grad.abs().sum() > 0


def test_forward_ce_gradient_is_student_minus_teacher():
    student = logits_of(0.25, 0.25, 0.5).requires_grad_()
    loss = DISTILLATION_LOSSES.get("forward_ce")(
        student, logits_of(0.5, 0.25, 0.25), NO_TOKENS, ONE, DistillConfig()
    )
    loss.sum().backward()
    assert student.grad.view(-1).tolist() == pytest.approx([-0.25, 0.0, 0.25])


def test_loss_arguments_are_checked():
    forward_ce = DISTILLATION_LOSSES.get("forward_ce")
    with pytest.raises(ValueError, match="both be \\(N, T, V\\)"):
        forward_ce(
            torch.zeros(1, 2, 3), torch.zeros(1, 2, 4), NO_TOKENS, torch.ones(1, 2), DistillConfig()
        )
    with pytest.raises(ValueError, match="mask must be"):
        forward_ce(
            torch.zeros(1, 2, 3), torch.zeros(1, 2, 3), NO_TOKENS, torch.ones(2, 2), DistillConfig()
        )
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        DistillConfig(top_k=0)
    with pytest.raises(ValueError, match="unknown distillation loss 'kl'; known: forward_ce"):
        DISTILLATION_LOSSES.get("kl")


# --- the 2-action, 2-step toy of DistIL (techniques.md sec. 6, tiny test 1) ----------------
#
# s0 --good--> s_g, s0 --bad--> s_b; one more 2-action step in s_g or s_b. The expert prefers
# `good` in s0 (.9 vs the student's .5). In s_g the student disagrees badly with the expert
# ([.05, .95] vs [.95, .05]); in s_b they agree. Rollouts: N = 2 (by the first action), T = 2.

EXPERT = torch.stack([logits_of(0.9, 0.1).view(2), logits_of(0.95, 0.05).view(2)])


def toy_logits(z0, z_good, z_bad):
    """(N=2, T=2, V=2) logits of the student and of the expert on both rollouts."""
    student = torch.stack([torch.stack([z0, z_good]), torch.stack([z0, z_bad])])
    expert_bad_state = torch.zeros(2, dtype=torch.float64)  # the expert's [.5, .5] in s_b
    expert = torch.stack([EXPERT, torch.stack([EXPERT[0], expert_bad_state])])
    return student, expert


def sequence_reverse_kl(z0, z_good, z_bad):
    """KL(P_theta || P_E) over whole trajectories, differentiated through the state
    distribution: KL(s0) + sum_a pi(a | s0) KL(s_a), the objective reverse-KL distillation
    minimises."""
    student, expert = toy_logits(z0, z_good, z_bad)
    per_state = reverse_kl_full(student, expert, torch.ones(2, 2))  # (2, 2)
    return (torch.softmax(z0, dim=0) * per_state.sum(-1)).sum()


def on_policy_forward_ce(z0, z_good, z_bad):
    """DistIL: the forward CE at the states the student visits, weighted by sg(pi(a | s0))."""
    student, expert = toy_logits(z0, z_good, z_bad)
    per_token = DISTILLATION_LOSSES.get("forward_ce")(
        student, expert, NO_TOKENS, torch.ones(2, 2), DistillConfig()
    )
    return (torch.softmax(z0, dim=0).detach() * per_token.sum(-1)).sum()


def bad_probability_after_a_step(objective, z0, z_good, z_bad, lr=1.0):
    z0 = z0.clone().requires_grad_()
    (grad,) = torch.autograd.grad(objective(z0, z_good, z_bad), z0)
    return torch.softmax(z0 - lr * grad, dim=0)[1].item(), grad


def test_toy_reverse_kl_step_raises_the_worse_action_forward_ce_does_not():
    z0 = torch.zeros(2, dtype=torch.float64)
    z_good, z_bad = logits_of(0.05, 0.95).view(2), torch.zeros(2, dtype=torch.float64)
    # reverse KL, d/dz0[good] = pi_g (ln(pi_g / pE_g) - KL(s0)) + pi_g (KL(s_g) - E_a KL(s_a))
    #   KL(s0) = .5 ln(.5/.9) + .5 ln(.5/.1) = 0.51083, KL(s_g) = .9 ln 19 = 2.65000, KL(s_b) = 0
    #   = .5 (-0.58779 - 0.51083) + .5 (2.65 - 1.325) = -0.54931 + 0.66250 = +0.11319
    p_bad, grad = bad_probability_after_a_step(sequence_reverse_kl, z0, z_good, z_bad)
    assert grad[0].item() == pytest.approx(0.11319, abs=1e-5)
    assert p_bad > 0.5  # descending the reverse KL moves s0 towards the worse action
    # forward CE: d/dz0 = sum_a sg(pi(a)) (pi(.|s0) - pE(.|s0)) = [.5 - .9, .5 - .1]
    p_bad, grad = bad_probability_after_a_step(on_policy_forward_ce, z0, z_good, z_bad)
    assert grad.tolist() == pytest.approx([-0.4, 0.4])
    assert p_bad < 0.5


# On sampled rollouts: the registered losses, as a training step would use them. The student
# samples N trajectories (a0 ~ pi(.|s0), a1 ~ pi(.|s_a0)); each loss gets the (N, 2, 2) logits
# of the states visited, the expert's logits there and the sampled tokens, and one gradient
# step on the token-mean loss moves z0. The check compares pi(bad | s0) before and after.

EXPERT_BAD_STATE = torch.zeros(2, dtype=torch.float64)  # the expert's [.5, .5] in s_b


def sample_toy(z0, z_good, z_bad, n, generator):
    """``n`` student rollouts of the toy: (student logits, expert logits, tokens, mask)."""
    first = torch.multinomial(torch.softmax(z0.detach(), 0), n, True, generator=generator)
    went_good = (first == 0).unsqueeze(-1)  # (n, 1)
    z1 = torch.where(went_good, z_good, z_bad)  # (n, 2): the student's logits at step 2
    second = torch.multinomial(torch.softmax(z1.detach(), -1), 1, generator=generator)
    student = torch.stack([z0.expand(n, 2), z1], dim=1)  # (n, 2, 2)
    expert_1 = torch.where(went_good, EXPERT[1], EXPERT_BAD_STATE)
    expert = torch.stack([EXPERT[0].expand(n, 2), expert_1], dim=1)
    tokens = torch.stack([first, second.squeeze(-1)], dim=1)  # (n, 2)
    return student, expert, tokens, torch.ones(n, 2, dtype=torch.float64)


def sequence_reverse_kl_sampled(student, teacher, tokens, mask, config):
    """Not registered, the loss DistIL warns about: REINFORCE on the *sequence* reverse KL,
    ``sg(sum_{t' >= t} k_t') log pi(y_t)`` with ``k = log pi - log pi_E`` of the sampled
    tokens. Its expected gradient is that of :func:`sequence_reverse_kl`."""
    index = tokens.unsqueeze(-1)
    logp = torch.log_softmax(student, -1).gather(-1, index).squeeze(-1)
    k = (logp - torch.log_softmax(teacher, -1).gather(-1, index).squeeze(-1)).detach() * mask
    cost_to_go = k.flip(-1).cumsum(-1).flip(-1)
    return cost_to_go * logp * mask


def sampled_step(loss, z0, z_good, z_bad, generator, n=512, lr=0.5):
    """One gradient step of ``loss`` on ``n`` sampled rollouts: (pi(bad|s0) after, grad z0)."""
    z0 = z0.clone().requires_grad_()
    student, expert, tokens, mask = sample_toy(z0, z_good, z_bad, n, generator)
    value = loss(student, expert, tokens, mask, DistillConfig(top_k=2)).sum(-1).mean()
    (grad,) = torch.autograd.grad(value, z0)
    return torch.softmax(z0.detach() - lr * grad, dim=0)[1].item(), grad


def raised_worse_action(loss, instances=200, seed=0):
    """How many random toy instances (with pi(bad|s0) above the expert's .1) a step of
    ``loss`` on sampled rollouts moves towards the worse first action."""
    generator = torch.Generator().manual_seed(seed)
    raised = 0
    for _ in range(instances):
        z0, z_good, z_bad = (
            torch.randn(2, generator=generator, dtype=torch.float64) * 3 for _ in range(3)
        )
        before = torch.softmax(z0, dim=0)[1].item()
        if before < 0.1:  # the expert's pE(bad | s0) = .1 must be the better policy
            continue
        after, _ = sampled_step(loss, z0, z_good, z_bad, generator)
        raised += after > before
    return raised


@pytest.mark.parametrize("name", ["forward_ce", "forward_ce_topk", "reverse_kl_sampled"])
def test_toy_registered_losses_on_sampled_rollouts_never_raise_the_worse_action(name):
    # Every registered loss is per state: at s0 the forward CE's gradient is pi - pE, and the
    # sampled per-token reverse KL moves each sample towards pE (2 actions). The sequence-level
    # cost-to-go, which is what pulls towards `bad`, is in none of them.
    assert raised_worse_action(DISTILLATION_LOSSES.get(name)) == 0


def test_toy_the_check_catches_a_sequence_level_reverse_kl():
    # The same check on the unregistered sequence-level loss: it does raise the worse action,
    # so the check above can fail.
    assert raised_worse_action(sequence_reverse_kl_sampled) > 0
    # On the hand instance its sampled gradient estimates the exact +0.11319 of the first test.
    z0, z_good = torch.zeros(2, dtype=torch.float64), logits_of(0.05, 0.95).view(2)
    generator = torch.Generator().manual_seed(1)
    p_bad, grad = sampled_step(sequence_reverse_kl_sampled, z0, z_good, 0 * z0, generator, n=20_000)
    assert grad[0].item() == pytest.approx(0.11319, abs=0.03)
    assert p_bad > 0.5


def test_toy_forward_ce_sampled_gradient_by_hand():
    # Every rollout starts in s0, so the token-mean forward CE has grad z0 = pi - pE exactly,
    # whatever was sampled: [.5 - .9, .5 - .1]. In s_g its gradient is the share of rollouts
    # that went there times (pi(.|s_g) - pE(.|s_g)) = share * [.05 - .95, .95 - .05] / 2 (mean
    # over the 2 tokens).
    generator = torch.Generator().manual_seed(2)
    z0 = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    z_good = logits_of(0.05, 0.95).view(2).requires_grad_()
    student, expert, tokens, mask = sample_toy(z0, z_good, 0 * z0.detach(), 64, generator)
    loss = DISTILLATION_LOSSES.get("forward_ce")(student, expert, tokens, mask, DistillConfig())
    grad0, grad_good = torch.autograd.grad(loss.sum(-1).mean(), (z0, z_good))
    assert grad0.tolist() == pytest.approx([-0.4, 0.4])
    share = float((tokens[:, 0] == 0).double().mean())
    assert 0 < share < 1
    assert grad_good.tolist() == pytest.approx([-0.9 * share, 0.9 * share])
    # A deliberately wrong loss fails the same check: the cross-entropy with the two
    # distributions swapped, -sum_v pi(v) log pE(v), has grad z0 = -pi (log pE - E_pi log pE)
    # = -.5 [ln .9 - m, ln .1 - m], m = .5 ln .09: [-ln(3) / 2, ln(3) / 2] = [-.54931, .54931].
    student, expert, tokens, mask = sample_toy(z0, z_good, 0 * z0.detach(), 64, generator)
    swapped = -(torch.softmax(student, -1) * torch.log_softmax(expert, -1)).sum(-1) * mask
    (wrong,) = torch.autograd.grad(swapped.sum(-1).mean(), z0)
    assert wrong.tolist() == pytest.approx([-math.log(3) / 2, math.log(3) / 2])
    assert wrong.tolist() != pytest.approx([-0.4, 0.4])


# --- the teacher's context -----------------------------------------------------------------


def test_teacher_context_appends_feedback_to_the_task_before_the_student_turn():
    dialogue = [Message("system", "Be brief."), Message("user", "What is 2 + 3?")]
    info = {"feedback": "  expected 5, got 6 ", "reference": "2 + 3 = 5"}
    context = teacher_context(dialogue, info)
    # one user message (roles still alternate): the task, a blank line, the feedback
    assert context[0] == dialogue[0] and len(context) == 2 and context[1].role == "user"
    assert context[1].content == "What is 2 + 3?\n\n" + FEEDBACK_TEMPLATE.format(
        feedback="expected 5, got 6"
    )
    assert "2 + 3 = 5" not in context[1].content
    with_ref = teacher_context(dialogue, info, with_reference=True)
    assert with_ref[1].content.endswith("2 + 3 = 5") and len(with_ref) == 2
    as_system = teacher_context(dialogue, info, role="system")  # the last message is a user's
    assert as_system[:2] == dialogue and as_system[2].role == "system"
    assert as_system[2].content == FEEDBACK_TEMPLATE.format(feedback="expected 5, got 6")
    no_ref = teacher_context(dialogue, {"feedback": "x", "reference": None}, with_reference=True)
    assert "reference" not in no_ref[1].content
    assert dialogue == [Message("system", "Be brief."), Message("user", "What is 2 + 3?")]


@pytest.mark.parametrize("info", [{}, {"feedback": ""}, {"feedback": "  "}, {"feedback": None}])
def test_teacher_context_needs_feedback(info):
    with pytest.raises(ValueError, match="no 'feedback' text"):
        teacher_context([Message("user", "q")], info)


# --- horizon schedules -------------------------------------------------------------------


def horizon(name, step, total=100, full=128, **config):
    return HORIZONS.get(name)(step, total, full, HorizonConfig(**config))


def test_full_and_truncated_horizons():
    assert [horizon("full", s) for s in (0, 50, 100)] == [128, 128, 128]
    assert horizon("truncated", 0) == 13  # ceil(.1 * 128) = ceil(12.8)
    assert horizon("truncated", 99, full=1000) == 100
    assert horizon("truncated", 0, full=10, fraction=0.3) == 3  # 0.3 * 10 = 3.0000000000000004
    assert horizon("truncated", 0, full=5, fraction=0.01) == 1  # at least one token
    assert horizon("truncated", 0, full=7, fraction=1.0) == 7


def test_doubling_spreads_the_doublings_over_the_ramp():
    # H_0 = 16, 3 doublings to 128 over the ramp .5 * 100 = 50 steps: stages of 16.67 steps
    steps = (0, 16, 17, 33, 34, 49, 50, 100)
    assert [horizon("doubling", s) for s in steps] == [16, 16, 32, 32, 64, 64, 128, 128]
    # explicit N_s = 10: 16, 32, 64, 128 from step 30 on
    assert [horizon("doubling", s, stage_steps=10) for s in (0, 9, 10, 20, 30, 99)] == [
        16,
        16,
        32,
        64,
        128,
        128,
    ]
    # H_full = 100: H_0 = ceil(12.5) = 13, ceil(log2(100 / 13)) = 3 doublings, capped at 100
    assert [horizon("doubling", s, full=100) for s in (0, 17, 34, 50)] == [13, 26, 52, 100]
    assert horizon("doubling", 0, initial_fraction=1.0) == 128


def test_linear_growth():
    # H = 16 + floor(112 * min(1, step / 50))
    assert [horizon("linear", s) for s in (0, 10, 25, 49, 50, 100)] == [16, 38, 72, 125, 128, 128]
    assert horizon("linear", 50, ramp_fraction=1.0) == 72


@pytest.mark.parametrize("name", HORIZONS.names())
def test_every_schedule_is_monotone_and_within_bounds(name):
    values = [horizon(name, s, total=37, full=300) for s in range(38)]
    assert all(1 <= v <= 300 for v in values)
    assert values == sorted(values)


@pytest.mark.parametrize(
    "config,message",
    [
        ({"fraction": 0.0}, "fraction must be in \\(0, 1\\], got 0.0"),
        ({"fraction": 1.5}, "fraction must be in"),
        ({"initial_fraction": -0.1}, "initial_fraction must be in"),
        ({"ramp_fraction": 0}, "ramp_fraction must be in"),
        ({"stage_steps": 0}, "stage_steps must be >= 1"),
    ],
)
def test_horizon_config_is_validated(config, message):
    with pytest.raises(ValueError, match=message):
        HorizonConfig(**config)


@pytest.mark.parametrize(
    "step,total,full,message",
    [
        (-1, 10, 8, "step must be in \\[0, total_steps=10\\], got -1"),
        (11, 10, 8, "step must be in"),
        (0, 0, 8, "total_steps must be >= 1"),
        (0, 10, 0, "full_horizon must be >= 1"),
    ],
)
def test_horizon_arguments_are_checked(step, total, full, message):
    for name in HORIZONS:
        with pytest.raises(ValueError, match=message):
            HORIZONS.get(name)(step, total, full)
