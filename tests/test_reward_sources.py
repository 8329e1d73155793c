"""Reward sources on hand-made groups, their mix into (B, G, K) and turn credit."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from test_trainer import _rlvr, _scenario

from rlvr.training.advantages import ADVANTAGES, EPS
from rlvr.training.batch import group_rewards, turn_tensors
from rlvr.training.config import ConfigError, RewardSourceConfig, load_config
from rlvr.training.credit import TOKEN_CREDIT, CreditInputs
from rlvr.training.reward_sources import (
    REWARD_SOURCES,
    OverlongPenalty,
    PolicyView,
    RewardContext,
    RewardMix,
)
from rlvr.training.rollout import GroupSpec, Rollout, RolloutGroup

pytestmark = pytest.mark.usefixtures("tiny_cache")

ROOT = Path(__file__).resolve().parents[1]


def _rollout(
    reward: float = 0.0,
    *,
    ids: tuple[int, ...] = (5, 1, 7, 7),
    mask: tuple[int, ...] = (0, 0, 1, 1),
    turn_rewards: tuple[float, ...] | None = None,
    turn_index: tuple[int, ...] | None = None,
    components: dict[str, float] | None = None,
    answer: str | None = None,
    rubric: dict[str, Any] | None = None,
    env_id: str = "test/Hand-v0",
) -> Rollout:
    return Rollout(
        env_id=env_id,
        seed=0,
        difficulty=None,
        ids=ids,
        policy_mask=mask,
        old_logprobs=tuple(0.0 for _ in ids),
        turn_index=turn_index or tuple(0 if m else -1 for m in mask),
        turn_rewards=turn_rewards if turn_rewards is not None else (reward,),
        components=components or {},
        success=reward == 1.0,
        terminated=True,
        truncated=False,
        messages=(),
        answer=answer,
        rubric=rubric or {},
    )


def _group(*rollouts: Rollout) -> RolloutGroup:
    return RolloutGroup(GroupSpec(rollouts[0].env_id, 0, None, len(rollouts)), rollouts)


def _context(*groups: RolloutGroup, policy: PolicyView | None = None, **overlong: Any) -> Any:
    return RewardContext(
        groups, OverlongPenalty(overlong.pop("max_tokens", 10), **overlong), policy
    )


def _mix(*choices: dict[str, Any]) -> RewardMix:
    return RewardMix([RewardSourceConfig(**choice) for choice in choices])


def test_env_source_is_the_return_plus_the_overlong_penalty() -> None:
    long = (5, 1, 7, 7, 7, 7, 7, 7)  # 8 tokens against a budget of 10 with a buffer of 4
    groups = [
        _group(_rollout(1.0, ids=long, mask=(0,) * 4 + (1,) * 4), _rollout(0.0)),
        _group(_rollout(0.0), _rollout(1.0)),
    ]
    mixed = _mix({"name": "env"})(_context(*groups, buffer=4, factor=1.0))
    # penalty -(8 - (10 - 4)) / 4 = -0.5 on the long rollout only
    assert mixed.rewards.tolist() == [[[0.5], [0.0]], [[0.0], [1.0]]]
    assert mixed.weights.tolist() == [1.0]
    assert mixed.metrics == {"rewards/env": [0.5, 0.0, 0.0, 1.0]}


def test_the_default_reproduces_the_previous_rewards_bit_for_bit() -> None:
    lengths = [(5, 1, 7), (5, 1, 7, 7, 7, 7, 7, 7, 7), (5, 1, 7, 7, 7), (5, 1, 7, 7, 7, 7, 7)]
    rollouts = [
        _rollout(r, ids=ids, mask=(0, 0) + (1,) * (len(ids) - 2))
        for r, ids in zip([0.3, 1.0, 0.0, 0.7], lengths, strict=True)
    ]
    groups = [_group(*rollouts[:2]), _group(*rollouts[2:])]
    default = load_config(_scenario_path(), []).algorithm.rewards
    assert [(c.name, c.weight, c.params) for c in default] == [("env", 1.0, {})]
    mixed = RewardMix(default)(_context(*groups, max_tokens=9, buffer=5, factor=0.7))
    before = group_rewards(groups, max_tokens=9, overlong_buffer=5, overlong_factor=0.7)
    assert torch.equal(mixed.rewards, before)
    for name in ("grpo", "gdpo", "rloo", "dr_grpo"):
        estimate = ADVANTAGES.get(name)
        assert torch.equal(estimate(mixed.rewards, mixed.weights), estimate(before, torch.ones(1)))


def _scenario_path() -> Path:
    return ROOT / "scenarios" / "quickstart.yaml"


def test_component_source_reads_one_reward_component() -> None:
    group = _group(
        _rollout(1.0, components={"answer": 1.0, "format": 1.0}),
        _rollout(0.0, components={"answer": 0.0, "format": 0.5}),
    )
    mixed = _mix({"name": "component", "params": {"key": "format"}})(_context(group))
    assert mixed.rewards.tolist() == [[[1.0], [0.5]]]
    assert mixed.metrics == {"rewards/component:format": [1.0, 0.5]}
    missing = _mix({"name": "component", "params": {"key": "style"}})
    with pytest.raises(ValueError, match=r"env test/Hand-v0 gave no reward component 'style'; "):
        missing(_context(group))
    with pytest.raises(ValueError, match=r"it gives \['answer', 'format'\]"):
        missing(_context(group))


def test_cluster_vote_source_is_label_free() -> None:
    answers = ["1/2", "0.5", "2", None]
    group = _group(*(_rollout(r, answer=a) for r, a in zip([1, 0, 0, 1], answers, strict=True)))
    vote = _mix({"name": "transform", "params": {"transform": "cluster_vote"}})
    mixed = vote(_context(group))
    # clusters {1/2, 0.5} and {2}; the share of the group's 4 rollouts; no answer gets 0
    assert mixed.rewards[..., 0].tolist() == [[0.5, 0.5, 0.25, 0.0]]
    assert mixed.metrics["rewards/transform:cluster_vote"] == [0.5, 0.5, 0.25, 0.0]
    assert mixed.metrics["rewards/transform:cluster_vote/vote/clusters"] == [2.0]
    assert mixed.metrics["rewards/transform:cluster_vote/vote/top_share"] == [0.5]
    # the env's rewards (ground truth) do not reach the vote
    flipped = _group(
        *(_rollout(1 - r, answer=a) for r, a in zip([1, 0, 0, 1], answers, strict=True))
    )
    assert torch.equal(vote(_context(flipped)).rewards, mixed.rewards)
    majority = _mix(
        {"name": "transform", "params": {"transform": "cluster_vote", "mode": "majority"}}
    )
    assert majority(_context(group)).rewards[..., 0].tolist() == [[1.0, 1.0, 0.0, 0.0]]


RUBRIC = {
    "a": {"weight": 1.0, "category": "content", "required": True},
    "b": {"weight": 1.0, "category": "content", "required": True},
}


def test_pow3r_source_reweights_by_contrast_and_logs_the_static_reward() -> None:
    group = _group(
        _rollout(1.0, components={"a": 1.0, "b": 1.0}, rubric=RUBRIC),
        _rollout(0.5, components={"a": 1.0, "b": 0.0}, rubric=RUBRIC),
    )
    source = {"name": "transform", "params": {"transform": "pow3r", "alpha": 1.0, "eps": 1e-3}}
    mixed = _mix(source)(_context(group))
    # contrast c_a = 0, c_b = 0.5; w_a = 2 * 0.001 / 0.502, w_b = 2 * 0.501 / 0.502 (sum 2)
    w_a = 2 * 0.001 / 0.502
    assert mixed.rewards[0, :, 0].tolist() == pytest.approx([1.0, w_a / 2], abs=1e-6)
    label = "rewards/transform:pow3r"
    assert mixed.metrics[f"{label}/static_reward"] == pytest.approx([0.75])  # (1 + 0.5) / 2
    assert mixed.metrics[f"{label}/strict_completion"] == [0.5]


def test_pow3r_ema_state_round_trips_through_the_mix() -> None:
    choice = {"name": "transform", "params": {"transform": "pow3r", "ema": 0.5}}
    first = _group(
        _rollout(components={"a": 1.0, "b": 1.0}, rubric=RUBRIC),
        _rollout(components={"a": 1.0, "b": 0.0}, rubric=RUBRIC),
    )
    second = _group(
        _rollout(components={"a": 1.0, "b": 0.0}, rubric=RUBRIC),
        _rollout(components={"a": 0.0, "b": 0.0}, rubric=RUBRIC),
    )
    mix = _mix(choice)
    mix(_context(first))
    state = mix.state_dict()
    assert state == {"transform:pow3r": {"contrast": {"a": 0.0, "b": 0.5}}}
    resumed = _mix(choice)
    resumed.load_state_dict(json.loads(json.dumps(state)))
    expected = mix(_context(second))
    assert torch.equal(resumed(_context(second)).rewards, expected.rewards)
    assert resumed.state_dict() == {"transform:pow3r": {"contrast": {"a": 0.25, "b": 0.25}}}
    assert not torch.equal(_mix(choice)(_context(second)).rewards, expected.rewards)


def test_pow3r_ema_gives_every_group_of_a_step_the_pre_step_weights() -> None:
    choice = {"name": "transform", "params": {"transform": "pow3r", "alpha": 1.0, "ema": 0.5}}
    first = _group(
        _rollout(components={"a": 1.0, "b": 1.0}, rubric=RUBRIC),
        _rollout(components={"a": 1.0, "b": 0.0}, rubric=RUBRIC),
    )  # contrast {a: 0, b: .5}
    second = _group(
        _rollout(components={"a": 1.0, "b": 0.0}, rubric=RUBRIC),
        _rollout(components={"a": 0.0, "b": 0.0}, rubric=RUBRIC),
    )  # contrast {a: .5, b: 0}
    mix = _mix(choice)
    alone = mix(_context(first)).rewards  # step 1: EMA {a: 0, b: .5}
    both = mix(_context(first, second)).rewards  # step 2: both groups use {a: 0, b: .5}
    assert torch.equal(both[0], alone[0])
    # second: w_a = 2 * .001 / .502, w_b = 2 * .501 / .502; (1, 0) -> w_a / 2, (0, 0) -> 0
    assert both[1, :, 0].tolist() == pytest.approx([0.001 / 0.502, 0.0], abs=1e-7)
    # one update with the step's mean {a: .25, b: .25}: a = .125, b = .375
    assert mix.state_dict() == {"transform:pow3r": {"contrast": {"a": 0.125, "b": 0.375}}}
    swapped = _mix(choice)
    swapped(_context(first))
    assert torch.equal(swapped(_context(second, first)).rewards, both.flip(0))


def test_rollouts_the_env_never_judged_mark_their_group_for_the_sources_that_need_it() -> None:
    judged = _rollout(1.0, components={"a": 1.0, "b": 1.0}, rubric=RUBRIC)
    cut = _rollout(0.0, rubric=RUBRIC)  # no terminal reward_components
    group = _group(judged, cut)
    for choice in (
        {"name": "component", "params": {"key": "a"}},
        {"name": "transform", "params": {"transform": "pow3r"}},
        {"name": "transform", "params": {"transform": "positive_only"}},
        {"name": "transform", "params": {"transform": "rubric_for_all"}},
    ):
        marked = _mix({"name": "env"}, choice).mark_unscorable(group)
        assert marked.failed and marked.rollouts[0] == judged
        assert marked.errors == [marked.rollouts[1].error]
        label = "component:a" if choice["name"] == "component" else "transform:"
        assert f"unscored: reward source {label}" in marked.errors[0]
        assert "cut by rollout.max_total_tokens or max_turns" in marked.errors[0]
    for choice in (
        {"name": "env"},
        {"name": "transform", "params": {"transform": "cluster_vote"}},
        {"name": "transform", "params": {"transform": "none"}},
    ):
        assert _mix(choice).mark_unscorable(group) == group  # these score a cut episode


def test_positive_only_and_rubric_for_all_on_multihop_components() -> None:
    scores = [(1.0, 0.5), (0.0, 1.0), (1.0, 0.25)]
    group = _group(
        *(_rollout(o, components={"outcome": o, "rubric": r}) for o, r in scores),
    )
    positive = _mix({"name": "transform", "params": {"transform": "positive_only"}})
    mixed = positive(_context(group))
    # rubrics / group max (1.0); wrong -> 0, right -> 0.7 + 0.3 * rubric
    assert mixed.rewards[0, :, 0].tolist() == pytest.approx([0.85, 0.0, 0.775])
    assert mixed.metrics["rewards/transform:positive_only/reward_on_wrong"] == [0.0]
    for_all = _mix({"name": "transform", "params": {"transform": "rubric_for_all"}})
    hacked = for_all(_context(group))
    assert hacked.rewards[0, :, 0].tolist() == pytest.approx([0.85, 0.3, 0.775])
    assert hacked.metrics["rewards/transform:rubric_for_all/reward_on_wrong"] == pytest.approx(
        [0.3]
    )


class _TableLM(torch.nn.Module):
    """Logits looked up by the current token: token 1 predicts [0, log 3], others [0, 0]."""

    def __init__(self) -> None:
        super().__init__()
        self.table = torch.nn.Parameter(torch.zeros(16, 2), requires_grad=False)
        self.table.data[1] = torch.tensor([0.0, math.log(3.0)])
        self.seen_training: list[bool] = []

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, logits_to_keep: int = 0
    ) -> Any:
        self.seen_training.append(self.training)
        return SimpleNamespace(logits=self.table[input_ids][:, -logits_to_keep:])


@pytest.mark.parametrize("rows_per_pass", [1, 8])
def test_self_certainty_source_scores_the_policy_tokens(rows_per_pass: int) -> None:
    model = _TableLM().train()
    policy = PolicyView(model, pad_id=0, device=torch.device("cpu"), temperature=1.0)
    group = _group(
        _rollout(ids=(5, 1, 7, 7), mask=(0, 0, 1, 1)),  # targets predicted after 1 and 7
        _rollout(ids=(9, 1, 1, 1), mask=(0, 0, 1, 1)),  # both predicted after 1
    )  # both prompts are 2 tokens long: the LM head runs from the second position on
    source = {"name": "self_certainty", "params": {"rows_per_pass": rows_per_pass}}
    mixed = _mix(source)(_context(group, policy=policy))
    # KL(U || [1/4, 3/4]) = 0.5 ln(0.5 / 0.25) + 0.5 ln(0.5 / 0.75) = 0.5 ln(4/3); uniform: 0
    kl = 0.5 * math.log(4 / 3)
    assert mixed.rewards[0, :, 0].tolist() == pytest.approx([kl / 2, kl], abs=1e-6)
    assert set(model.seen_training) == {False} and model.training  # eval inside, restored
    raw = {"name": "self_certainty", "params": {"subtract_log_vocab": False}}
    shifted = _mix(raw)(_context(group, policy=policy)).rewards
    assert shifted[0, :, 0].tolist() == pytest.approx([kl / 2 + math.log(2), kl + math.log(2)])
    hot = PolicyView(model, pad_id=0, device=torch.device("cpu"), temperature=2.0)
    # temperature 2: logits [0, ln(3) / 2], p = [1, sqrt 3] / (1 + sqrt 3)
    p = torch.tensor([1.0, math.sqrt(3.0)]) / (1 + math.sqrt(3.0))
    hot_kl = float((0.5 * (0.5 / p).log()).sum())
    assert _mix(source)(_context(group, policy=hot)).rewards[0, 1, 0] == pytest.approx(hot_kl)
    with pytest.raises(ValueError, match="needs the policy"):
        _mix(source)(_context(group))


def test_gdpo_normalises_each_source_within_its_group() -> None:
    answer, fmt = [1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]
    group = _group(
        *(
            _rollout(a, components={"answer": a, "format": f})
            for a, f in zip(answer, fmt, strict=True)
        )
    )
    mix = _mix(
        {"name": "component", "params": {"key": "answer"}},
        {"name": "component", "weight": 0.5, "params": {"key": "format"}},
    )
    mixed = mix(_context(group))
    assert mixed.rewards.shape == (1, 4, 2) and mixed.weights.tolist() == [1.0, 0.5]
    # per component: answer mean 1/4, std 1/2 -> [1.5, -0.5, -0.5, -0.5];
    # format mean 1/2, std sqrt(1/3) -> +-0.866; s = answer + 0.5 format; then batch z-score
    z_answer = [(a - 0.25) / (0.5 + EPS) for a in answer]
    z_format = [(f - 0.5) / (math.sqrt(1 / 3) + EPS) for f in fmt]
    s = [a + 0.5 * f for a, f in zip(z_answer, z_format, strict=True)]
    mean = sum(s) / 4
    std = math.sqrt(sum((x - mean) ** 2 for x in s) / 3)
    expected = [(x - mean) / (std + EPS) for x in s]
    gdpo = ADVANTAGES.get("gdpo")(mixed.rewards, mixed.weights)
    assert gdpo[0].tolist() == pytest.approx(expected, abs=1e-5)
    # sum-then-normalise (grpo) sees r = [1.5, 0.5, 0, 0] and gives other values
    grpo = ADVANTAGES.get("grpo")(mixed.rewards, mixed.weights)
    r = [1.5, 0.5, 0.0, 0.0]
    std_r = math.sqrt(sum((x - 0.5) ** 2 for x in r) / 3)
    assert grpo[0].tolist() == pytest.approx([(x - 0.5) / (std_r + EPS) for x in r], abs=1e-5)
    assert not torch.allclose(gdpo, grpo, atol=1e-2)


def test_turn_credit_on_a_two_turn_hand_example() -> None:
    # group of 2: A plays 2 turns (rewards 0 then 1), B plays 1 turn (reward 0)
    a = _rollout(
        ids=(9, 3, 3, 9, 4, 4, 4),
        mask=(0, 1, 1, 0, 1, 1, 1),
        turn_index=(-1, 0, 0, -1, 1, 1, 1),
        turn_rewards=(0.0, 1.0),
    )
    b = _rollout(ids=(9, 3, 3), mask=(0, 1, 1), turn_rewards=(0.0,))
    rewards, turn_mask, index = turn_tensors([a, b], width=7)
    assert rewards.tolist() == [[0.0, 1.0], [0.0, 0.0]]
    assert turn_mask.tolist() == [[1.0, 1.0], [1.0, 0.0]]
    assert index.tolist() == [[0, 0, -1, 1, 1, 1], [0, 0, -1, -1, -1, -1]]
    mask = torch.tensor([[1, 1, 0, 1, 1, 1], [1, 1, 0, 0, 0, 0]], dtype=torch.float)
    inputs = CreditInputs(
        mask, torch.ones_like(mask), group_size=2, turn_rewards=rewards, turn_mask=turn_mask,
        turn_index=index,
    )  # fmt: skip
    credit = TOKEN_CREDIT.get("turn")(gamma=0.5)
    out = credit(torch.tensor([5.0, -5.0]), inputs)  # the episode advantages are replaced
    # turn 0: returns-to-go 0.5 (A) and 0 (B): +-0.25 / (std 0.35355 + 1e-4);
    # turn 1: only A plays it, no sibling to compare with -> 0
    first = 0.25 / (math.sqrt(0.125) + 1e-4)
    assert out[0].tolist() == pytest.approx([first, first, 0.0, 0.0, 0.0, 0.0], abs=1e-6)
    assert out[1].tolist() == pytest.approx([-first, -first, 0.0, 0.0, 0.0, 0.0], abs=1e-6)
    with pytest.raises(ValueError, match="gamma must lie in"):
        TOKEN_CREDIT.get("turn")(gamma=1.5)
    with pytest.raises(ValueError, match=r"needs inputs\.turn_rewards"):
        credit(torch.zeros(2), CreditInputs(mask, torch.ones_like(mask)))


def test_a_rollout_without_turns_counts_as_one_turn_of_reward_zero() -> None:
    played = _rollout(1.0)
    empty = _rollout(ids=(9, 9, 9, 9), mask=(0, 0, 0, 0), turn_rewards=(), turn_index=(-1,) * 4)
    rewards, turn_mask, index = turn_tensors([played, empty], width=4)
    assert rewards.tolist() == [[1.0], [0.0]] and turn_mask.tolist() == [[1.0], [1.0]]
    assert index[1].tolist() == [-1, -1, -1]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("algorithm.rewards=[{name: magic}]", "algorithm.rewards.0: unknown reward source 'magic'"),
        (
            "algorithm.rewards=[{name: component, params: {kye: answer}}]",
            "algorithm.rewards.0: bad parameters for reward source 'component'",
        ),
    ],
)
def test_bad_reward_sources_are_one_line_errors_through_the_cli(
    tmp_path: Path, override: str, message: str
) -> None:
    result = _rlvr("train", str(_scenario(tmp_path)), override, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("rlvr: error:") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("rewards", "message"),
    [
        (
            "[{name: transform, params: {transform: pow3r, alpha: 2}}]",
            "algorithm.rewards.0: pow3r alpha must lie in [0, 1], got 2",
        ),
        (
            "[{name: transform, params: {transform: vote}}]",
            "unknown reward transform 'vote'; known: cluster_vote",
        ),
        ("[{name: transform}]", "missing 1 required positional argument: 'transform'"),
        ("[{name: env, weight: .nan}]", "algorithm.rewards.0.weight: weight must be finite"),
        ("[{name: env, weight: 0}]", "algorithm.rewards: at least one reward weight must be"),
        ("[{name: env}, {name: env}]", "reward sources must differ, got ['env', 'env']"),
        ("[]", "algorithm.rewards: List should have at least 1 item"),
        ("[{name: self_certainty, params: {rows_per_pass: 0}}]", "rows_per_pass must be >= 1"),
    ],
)
def test_bad_reward_sources_fail_validation(tmp_path: Path, rewards: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_scenario(tmp_path), [f"algorithm.rewards={rewards}"])
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["algorithm.rewards=[{name: transform, params: {transform: cluster_vote}}]"],
            "informative filters on the env return: it needs the default algorithm.rewards",
        ),
        (
            ["algorithm.rewards=[{name: env}, {name: component, params: {key: answer}}]"],
            "informative filters on the env return: it needs the default algorithm.rewards",
        ),
        (
            ["algorithm.token_credit={name: turn}"],
            "the episode return, which token_credit turn does not train on",
        ),
    ],
)
def test_the_informative_filter_is_refused_unless_it_sees_the_trained_reward(
    tmp_path: Path, overrides: list[str], message: str
) -> None:
    informative = "rollout.group_filter=informative"
    with pytest.raises(ConfigError) as caught:
        load_config(_scenario(tmp_path), [informative, *overrides])
    assert message in str(caught.value) and "\n" not in str(caught.value)
    load_config(_scenario(tmp_path), overrides)  # the same run without the filter is valid
    weighted = load_config(_scenario(tmp_path), [informative, "algorithm.rewards=[{name: env}]"])
    assert weighted.rollout.group_filter == "informative"


def test_every_registered_source_is_documented() -> None:
    text = (ROOT / "docs" / "techniques.md").read_text(encoding="utf-8")
    for name in REWARD_SOURCES:
        assert f"`{name}`" in text, name
    assert "algorithm.rewards" in (ROOT / "docs" / "training.md").read_text(encoding="utf-8")
