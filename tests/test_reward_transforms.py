"""Group reward transforms (POW3R, cluster voting, positive-only rubric) and self-certainty,
on numbers worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.rewards.multihop import positive_only_group
from rlvr.rewards.rubric import Criterion, Rubric
from rlvr.rewards.rubric_checks import Contains
from rlvr.rewards.transforms import (
    REWARD_TRANSFORMS,
    CriterionSpec,
    Pow3r,
    ScoredGroup,
    cluster_answers,
    cluster_vote,
    criteria_from_info,
    criterion_contrast,
    exact_equivalent,
    make_reward_transform,
    math_equivalent,
    pow3r_weights,
    rubric_for_all_group,
)
from rlvr.training.rewards_model import self_certainty

# ------------------------------------------------------------------ POW3R

FACTS = {"a": CriterionSpec(2.0, "facts"), "b": CriterionSpec(1.0, "facts")}
# a is saturated (contrast 0), b splits the group (contrast sqrt(.5 * .5) = .5)
SCORES = ({"a": 1.0, "b": 1.0}, {"a": 1.0, "b": 0.0}, {"a": 1.0, "b": 1.0}, {"a": 1.0, "b": 0.0})
# Category mass H = 3; raw a = 2 (0 + .001) = .002, raw b = 1 (.5 + .001) = .501, sum .503
W_TILDE_A, W_TILDE_B = 3 * 0.002 / 0.503, 3 * 0.501 / 0.503  # .011928, 2.988072


def group(**kwargs) -> ScoredGroup:
    return ScoredGroup(rewards=(0.0,) * 4, components=SCORES, criteria=FACTS, **kwargs)


def test_criterion_contrast_is_the_population_std():
    assert criterion_contrast([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0], [1.0, 0.0]]) == [0.0, 0.5]


def test_pow3r_weights_two_criteria_by_hand():
    w = pow3r_weights(FACTS, {"a": 0.0, "b": 0.5}, alpha=0.5, eps=1e-3)
    # w = .5 h + .5 w~: a = 1 + .005964, b = .5 + 1.494036; the category keeps mass 3.
    assert w["a"] == pytest.approx(0.5 * 2 + 0.5 * W_TILDE_A)
    assert w["b"] == pytest.approx(0.5 * 1 + 0.5 * W_TILDE_B)
    assert w["a"] == pytest.approx(1.005964, abs=1e-6)
    assert w["a"] + w["b"] == pytest.approx(3.0)
    # alpha = 0: the human weights; a category of one criterion keeps its mass whatever c.
    assert pow3r_weights(FACTS, {"a": 0.0, "b": 0.5}, alpha=0.0, eps=1e-3) == {"a": 2.0, "b": 1.0}
    alone = {"a": CriterionSpec(2.0, "facts"), "gate": CriterionSpec(0.0, "integrity")}
    assert pow3r_weights(alone, {"a": 0.0, "gate": 0.5}, alpha=1.0, eps=1e-3) == {
        "a": 2.0,
        "gate": 0.0,
    }


def test_pow3r_transform_rewards_and_logged_objective():
    result = make_reward_transform("pow3r", alpha=0.5)(group())
    w_a = 0.5 * 2 + 0.5 * W_TILDE_A
    # (1, 1) -> 1; (1, 0) -> w_a / 3 = .335321 (static: 2 / 3)
    assert result.rewards == pytest.approx((1.0, w_a / 3, 1.0, w_a / 3))
    assert result.metrics["static_reward"] == pytest.approx((1 + 2 / 3) / 2)
    assert result.metrics["strict_completion"] == 0.5
    assert result.metrics["reward"] == pytest.approx((1 + w_a / 3) / 2)


def test_pow3r_ema_moves_once_per_step_and_round_trips_its_state():
    transform = Pow3r(alpha=1.0, ema=0.5)
    flat = ScoredGroup(
        (0.0,) * 4, components=tuple({"a": 1.0, "b": 1.0} for _ in range(4)), criteria=FACTS
    )  # contrast {a: 0, b: 0}
    # step 1, no EMA yet: each group uses its own contrast; nothing moves within the step
    first = transform(group())  # contrast {a: 0, b: .5}
    assert transform(flat).rewards == (1.0,) * 4  # equal contrasts: the human weights
    assert transform.state_dict() == {"contrast": {}}
    transform.end_step()  # the step's mean {a: 0, b: .25} is the first value
    state = transform.state_dict()
    assert state == {"contrast": {"a": 0.0, "b": 0.25}}
    # step 2: every group uses the pre-step {a: 0, b: .25}, whatever the order of the groups;
    # w~_a = 3 * 2 * .001 / (2 * .001 + 1 * .251) = .0237154, so (1, 0) scores .0079051
    w = pow3r_weights(FACTS, {"a": 0.0, "b": 0.25}, alpha=1.0, eps=1e-3)
    assert w["a"] == pytest.approx(0.006 / 0.253)
    transform(flat)  # an earlier group of the step does not change the next one's weights
    second = transform(group())
    assert second.rewards[1] == pytest.approx(w["a"] / 3) == pytest.approx(0.0079051, abs=1e-7)
    assert second.rewards != first.rewards  # first used its own {a: 0, b: .5}
    transform.end_step()  # b = .5 * .25 + .5 * mean(0, .5) = .25
    assert transform.state_dict() == {"contrast": {"a": 0.0, "b": 0.25}}
    fresh = Pow3r(alpha=1.0, ema=0.5)
    fresh.load_state_dict(state)
    assert fresh(group()).rewards == second.rewards
    fresh.end_step()  # one group this time: b = .5 * .25 + .5 * .5 = .375
    assert fresh.state_dict() == {"contrast": {"a": 0.0, "b": 0.375}}


def test_pow3r_on_a_real_rubric_matches_its_static_reward():
    rubric = Rubric.of(
        Criterion("venue", Contains(("Room 4B",)), weight=2.0, category="facts"),
        Criterion("date", Contains(("May 3",)), weight=1.0, category="facts"),
        Criterion("sign", Contains(("Best,",)), weight=1.0, category="format", required=False),
    )
    texts = ["Room 4B on May 3. Best, Ana", "Room 4B. Best, Ana", "See you. Best, Ana"]
    scored = [rubric.score(t) for t in texts]
    info = {
        c.name: {"weight": c.weight, "category": c.category, "required": c.required}
        for c in rubric.criteria
    }
    group_ = ScoredGroup(
        rewards=tuple(s.reward for s in scored),
        components=tuple(s.scores for s in scored),
        criteria=criteria_from_info(info),
    )
    result = make_reward_transform("pow3r")(group_)
    assert result.metrics["static_reward"] == pytest.approx(sum(s.reward for s in scored) / 3)
    assert result.metrics["strict_completion"] == pytest.approx(1 / 3)
    # The saturated "sign" criterion keeps its category's whole mass (it is alone there).
    assert result.rewards[2] == pytest.approx(1 / 4)


def test_pow3r_errors():
    with pytest.raises(ValueError, match="needs the rubric's criteria"):
        make_reward_transform("pow3r")(ScoredGroup((0.0,), components=({"a": 1.0},)))
    with pytest.raises(ValueError, match=r"rollout 1 has no score for criteria \['b'\]"):
        broken = ({"a": 1.0, "b": 1.0}, {"a": 1.0})
        make_reward_transform("pow3r")(ScoredGroup((0.0, 0.0), components=broken, criteria=FACTS))
    with pytest.raises(ValueError, match=r"pow3r alpha must lie in \[0, 1\]"):
        make_reward_transform("pow3r", alpha=2.0)


# ------------------------------------------------------------------ cluster voting


def test_cluster_vote_with_math_equivalence():
    # "1/2" and "0.5" are one cluster (2 of 3), "2" another (1 of 3).
    answers = ["1/2", "0.5", "2"]
    assert cluster_answers(answers, math_equivalent) == [0, 0, 1]
    assert cluster_vote(answers, math_equivalent) == pytest.approx([2 / 3, 2 / 3, 1 / 3])
    assert cluster_vote(answers, math_equivalent, "majority") == [1.0, 1.0, 0.0]


def test_cluster_vote_missing_answers_and_ties():
    answers = ["3", None, "3", " ", "4"]
    assert cluster_vote(answers, exact_equivalent) == [0.4, 0.0, 0.4, 0.0, 0.2]
    assert cluster_vote(["1", "2"], exact_equivalent, "majority") == [1.0, 0.0]  # first wins
    assert cluster_vote([None, None], exact_equivalent, "majority") == [0.0, 0.0]


def test_cluster_vote_transform():
    vote = make_reward_transform("cluster_vote", mode="majority")
    result = vote(ScoredGroup((0.0,) * 4, answers=("1/2", "0.5", "2", None)))
    assert result.rewards == (1.0, 1.0, 0.0, 0.0)
    assert result.metrics["vote/clusters"] == 2.0 and result.metrics["vote/top_share"] == 0.5
    with pytest.raises(ValueError, match="needs every rollout's extracted answer"):
        vote(ScoredGroup((0.0,)))
    with pytest.raises(ValueError, match="unknown equivalence 'fuzzy'; known: exact, math"):
        make_reward_transform("cluster_vote", equivalence="fuzzy")


# ------------------------------------------------------------------ LongTraceRL rubric

OUTCOMES = [1.0, 1.0, 0.0, 0.0]
RUBRICS = [0.5, 0.25, 0.5, 0.0]  # group max .5: scaled [1, .5, 1, 0]


def multihop_group() -> ScoredGroup:
    components = tuple({"outcome": o, "rubric": r} for o, r in zip(OUTCOMES, RUBRICS, strict=True))
    return ScoredGroup(rewards=(0.0,) * 4, components=components)


def test_positive_only_transform_reuses_the_multihop_reward():
    # .7 * 1 + .3 * 1 = 1; .7 + .3 * .5 = .85; wrong answers 0.
    result = make_reward_transform("positive_only")(multihop_group())
    assert result.rewards == pytest.approx((1.0, 0.85, 0.0, 0.0))
    assert list(result.rewards) == positive_only_group(OUTCOMES, RUBRICS, 0.3)
    assert result.metrics["reward_on_wrong"] == 0.0


def test_rubric_for_all_pays_wrong_answers():
    # The wrong answer naming every gold entity gets .3 * 1 = .3.
    assert rubric_for_all_group(OUTCOMES, RUBRICS, 0.3) == pytest.approx([1.0, 0.85, 0.3, 0.0])
    result = make_reward_transform("rubric_for_all")(multihop_group())
    assert result.metrics["reward_on_wrong"] == pytest.approx(0.15)
    raw = make_reward_transform("rubric_for_all", group_normalize=False)(multihop_group())
    assert raw.rewards == pytest.approx((0.85, 0.775, 0.15, 0.0))


def test_transform_registry():
    assert sorted(REWARD_TRANSFORMS) == [
        "cluster_vote",
        "none",
        "positive_only",
        "pow3r",
        "rubric_for_all",
    ]
    assert make_reward_transform("none")(ScoredGroup((0.25, 0.75))).rewards == (0.25, 0.75)
    with pytest.raises(ValueError, match="unknown reward transform 'x'; known: cluster_vote"):
        make_reward_transform("x")
    with pytest.raises(ValueError, match=r"reward transform 'positive_only': .*'beta'"):
        make_reward_transform("positive_only", beta=1.0)
    with pytest.raises(ValueError, match="answers has 1 entries for 2 rollouts"):
        ScoredGroup((0.0, 0.0), answers=("1",))


# ------------------------------------------------------------------ self-certainty


def test_self_certainty_by_hand_on_two_tokens():
    # Token 0: logits [0, ln 3] -> p = [1/4, 3/4]; KL(U || p) = .5 ln(.5 / .25) + .5 ln(.5 / .75)
    #        = .5 ln(4/3) = .143841. Token 1: uniform -> 0. Token 2 is masked out.
    logits = torch.tensor([[[0.0, math.log(3)], [5.0, 5.0], [0.0, 40.0]]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    kl = 0.5 * math.log(4 / 3)
    assert float(self_certainty(logits, mask)[0]) == pytest.approx(kl / 2, abs=1e-6)
    # Intuitor's code value omits -log|V| = -ln 2.
    raw = self_certainty(logits, mask, subtract_log_vocab=False)
    assert float(raw[0]) == pytest.approx(kl / 2 + math.log(2), abs=1e-6)


def test_self_certainty_equals_the_exact_kl_from_uniform():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 7, generator=gen)
    p = torch.softmax(logits, -1)
    exact = (1 / 7 * torch.log((1 / 7) / p)).sum(-1).mean(-1)  # (3,)
    assert torch.allclose(self_certainty(logits, torch.ones(3, 4)), exact, atol=1e-5)
    assert torch.all(exact > 0)
    with pytest.raises(ValueError, match=r"need logits \(N, T, V\) and mask \(N, T\)"):
        self_certainty(logits, torch.ones(3, 5))
