"""Distillation in the trainer: teacher alignment, objectives, horizons, scenarios, config."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import torch
from conftest import SMALL

import rlvr
from rlvr.agents.tiny import ensure_tiny_model
from rlvr.envs.spaces import UnicodeText
from rlvr.envs.types import Message
from rlvr.training.batch import TrainBatch, build_batch
from rlvr.training.config import ConfigError, ModelConfig, TinyModelConfig, load_config
from rlvr.training.distill import FEEDBACK_TEMPLATE, REFERENCE_TEMPLATE, DistillConfig
from rlvr.training.distill_objectives import (
    DISTILL_OBJECTIVES,
    Distiller,
    NoDistillation,
    OPDAdvantage,
    first_target,
)
from rlvr.training.generation import SamplingSettings
from rlvr.training.policy import Policy, load_policy, token_scores
from rlvr.training.rollout import EnvPool, GroupSpec, Rollout, RolloutCollector, RolloutLimits
from rlvr.training.teacher import NoTeacher, Teacher, check_shared_vocabulary, teacher_inputs

gym.register_envs(rlvr)

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("tiny_cache")


def _rollouts(policy: Policy, *, max_turns: int = 2, **limits: int) -> list[Rollout]:
    budget = {"max_new_tokens": 6, "max_total_tokens": 400, "max_turns": max_turns, **limits}
    collector = RolloutCollector(
        policy,
        EnvPool({"rlvr/Math-v0": {"max_turns": max_turns, "difficulty": 0}}),
        limits=RolloutLimits(**budget),
        sampling=SamplingSettings(temperature=0.8),
        env_workers=2,
    )
    specs = [GroupSpec("rlvr/Math-v0", seed, 0, 2) for seed in (3, 4)]
    groups = collector.collect(specs, torch.Generator().manual_seed(0))
    collector.close()
    return [r for g in groups for r in g.rollouts]


def _batch(policy: Policy, rollouts: list[Rollout], teacher: Teacher) -> TrainBatch:
    batch = build_batch(rollouts, torch.zeros(len(rollouts)), policy.pad_id)
    inputs = teacher.inputs(rollouts)
    return TrainBatch(
        batch.ids, batch.attention, batch.mask, batch.old_logp, batch.advantages, inputs
    )


def test_a_copy_of_the_student_scores_like_the_student(policy: Policy) -> None:
    """Context none: teacher log-probs and logits equal the student's on every completion
    target (multi-turn episodes: env messages between the replies included)."""
    rollouts = _rollouts(policy)
    assert max(r.turns for r in rollouts) == 2
    teacher = Teacher(copy.deepcopy(policy.model), policy.chat, "none", policy.pad_id, 0.8)
    batch = _batch(policy, rollouts, teacher)
    first = first_target(batch.mask)
    student = token_scores(
        policy.model, batch.ids, batch.attention, 0.8, mask=batch.mask, logits=True
    )
    scores = teacher.scores(batch, first, logits=True)
    assert scores.logp.shape == batch.mask.shape and scores.valid.shape == batch.mask.shape
    valid = scores.valid.bool()
    assert bool((batch.mask.bool() <= valid).all())  # every policy token is scored
    assert torch.allclose(scores.logp[valid], student.logp[valid], atol=1e-5)
    assert (scores.logp[~valid] == 0).all()
    assert student.logits is not None and scores.logits is not None
    window = valid[:, first:]
    assert torch.allclose(scores.logits[window], student.logits[window], atol=1e-5)
    # the sampler's own log-probs agree too: a teacher equal to the student gives zero OPD
    advantage = OPDAdvantage(DistillConfig()).advantage(batch, teacher)
    assert advantage.abs().max() < 1e-4 and advantage.shape == batch.mask.shape


def _hand_rollout(policy: Policy, reply: list[int], feedback: str) -> Rollout:
    messages = [Message("system", "Solve it."), Message("user", "Evaluate $2 + 2$.")]
    prompt = policy.chat.prompt_ids(messages)
    ids = prompt + reply
    return Rollout(
        env_id="rlvr/Math-v0",
        seed=0,
        difficulty=0,
        ids=tuple(ids),
        policy_mask=tuple([0] * len(prompt) + [1] * len(reply)),
        old_logprobs=tuple([0.0] * len(ids)),
        turn_index=tuple([-1] * len(prompt) + [0] * len(reply)),
        turn_rewards=(0.0,),
        components={},
        success=False,
        terminated=bool(feedback),
        truncated=not feedback,
        messages=(*messages, Message("assistant", "x")),
        feedback=feedback,
        reference="4",
    )


def test_feedback_context_shifts_the_student_tokens(policy: Policy) -> None:
    """Hand-built: row 0 gets the feedback message, row 1 (no feedback) keeps its prompt."""
    eos = policy.chat.eos_id
    replies = [[40, 41, 42, eos], [50, 51]]
    rollouts = [
        _hand_rollout(policy, replies[0], "Expected 4."),
        _hand_rollout(policy, replies[1], ""),
    ]
    student_prompt = rollouts[0].policy_mask.index(1)
    teacher_messages = [
        Message("system", "Solve it."),
        Message(
            "user",
            "Evaluate $2 + 2$.\n\n"
            + FEEDBACK_TEMPLATE.format(feedback="Expected 4.")
            + REFERENCE_TEMPLATE.format(reference="4"),
        ),
    ]  # the feedback joins the task's user message: roles keep alternating
    prefix = policy.chat.prompt_ids(teacher_messages)
    inputs = teacher_inputs(rollouts, policy.chat, "reference", policy.pad_id)
    shift = len(prefix) - student_prompt
    assert shift > 0
    assert inputs.ids[0, : len(prefix) + 4].tolist() == prefix + replies[0]  # ids copied as sampled
    assert inputs.ids[1, : student_prompt + 2].tolist() == list(rollouts[1].ids)
    assert inputs.shift.tolist() == [shift, 0]
    assert inputs.start.tolist() == [student_prompt - 1] * 2
    assert inputs.has_context.tolist() == [1.0, 0.0]

    teacher = Teacher(policy.model, policy.chat, "reference", policy.pad_id, 1.0)
    batch = build_batch(rollouts, torch.zeros(2), policy.pad_id)
    batch = TrainBatch(
        batch.ids, batch.attention, batch.mask, batch.old_logp, batch.advantages, inputs
    )
    scores = teacher.scores(batch, first_target(batch.mask), logits=False)
    with torch.no_grad():
        full = torch.log_softmax(
            policy.model(input_ids=torch.tensor([prefix + replies[0]])).logits[0], -1
        )
    for k, token in enumerate(replies[0]):
        # student target P-1+k scores reply[k]; the teacher's position len(prefix)-1+k does
        expected = full[len(prefix) - 1 + k, token]
        assert abs(float(scores.logp[0, student_prompt - 1 + k]) - float(expected)) < 1e-5
    assert (scores.logp[0, : student_prompt - 1] == 0).all()
    assert scores.valid[0].tolist() == [0.0] * (student_prompt - 1) + [1.0] * 4
    assert (scores.valid[1] == 0).all() and (scores.logp[1] == 0).all()  # no feedback: no term


def test_multi_turn_rollouts_keep_every_sampled_id_after_the_feedback(policy: Policy) -> None:
    rollouts = _rollouts(policy)
    assert any(r.feedback and r.turns == 2 for r in rollouts)
    inputs = teacher_inputs(rollouts, policy.chat, "feedback", policy.pad_id)
    for row, rollout in enumerate(rollouts):
        prompt = rollout.policy_mask.index(1)
        shift = int(inputs.shift[row])
        length = len(rollout.ids) + shift
        assert int(inputs.attention[row].sum()) == length
        # replies, env messages and glue of every turn, id for id, after the teacher's prefix
        assert inputs.ids[row, prompt + shift : length].tolist() == list(rollout.ids[prompt:])
        assert float(inputs.has_context[row]) == float(bool(rollout.feedback))
        if rollout.feedback:  # the task, then the feedback, before the first reply
            text = policy.tokenizer.decode(inputs.ids[row, : prompt + shift].tolist())
            task = rollout.messages[1].content
            assert rollout.messages[1].role == "user" and rollout.messages[2].role == "assistant"
            assert 0 <= text.index(task) < text.index(rollout.feedback)


def test_the_none_objective_is_an_exact_no_op(policy: Policy) -> None:
    rollouts = _rollouts(policy, max_turns=1)
    distiller = Distiller(NoDistillation(DistillConfig()), NoTeacher())
    batch = build_batch(rollouts, torch.randn(len(rollouts)), policy.pad_id)
    batch = distiller.with_teacher_inputs(batch, rollouts)
    assert batch.teacher is None
    per_token = torch.randn(batch.mask.shape)
    out, metrics = distiller.advantages(
        TrainBatch(batch.ids, batch.attention, batch.mask, batch.old_logp, per_token)
    )
    assert torch.equal(out.advantages, per_token) and metrics == {}  # nothing to report
    scores = token_scores(policy.model, batch.ids, batch.attention, 1.0, mask=batch.mask)
    assert scores.logits is None  # the fast path keeps no logits
    loss = torch.randn(batch.mask.shape)
    combined, value = distiller.loss_tokens(loss, batch, scores)
    assert torch.equal(combined, loss) and value == {}


class _ConstantTerms:
    """An objective whose terms are ``row + 1`` on every target (3 rows -> 1, 2, 3)."""

    uses_teacher = True
    needs_logits = False

    def advantage(self, batch: TrainBatch, teacher: Any) -> torch.Tensor:
        return torch.arange(1.0, len(batch) + 1)[:, None].expand_as(batch.mask).clone()

    def loss(self, part: TrainBatch, student: Any, teacher: Any) -> torch.Tensor:
        return self.advantage(part, teacher)


def test_distill_metrics_average_over_the_rows_with_teacher_context() -> None:
    from rlvr.training.batch import TeacherInputs

    mask = torch.tensor([[0.0, 1.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 1.0]])  # 2, 1, 3 tokens
    ids = torch.zeros((3, 4), dtype=torch.long)
    teacher = TeacherInputs(
        ids, torch.ones_like(ids), torch.zeros(3), torch.zeros(3), torch.tensor([1.0, 0.0, 1.0])
    )
    zeros = torch.zeros(3, 3)
    batch = TrainBatch(ids, torch.ones_like(ids), mask, zeros, zeros, teacher)
    distiller = Distiller(_ConstantTerms(), NoTeacher(), coef=0.5)
    _, metrics = distiller.advantages(batch)
    # rows 0 and 2 have context: (2 * 0.5 * 1 + 3 * 0.5 * 3) / 5 = 1.1 (all rows: 1.0)
    assert metrics["distill/advantage"] == pytest.approx(1.1)
    assert metrics["distill/context"] == pytest.approx(2 / 3)
    _, loss_metrics = distiller.loss_tokens(torch.zeros(3, 3), batch, None)  # type: ignore[arg-type]
    assert loss_metrics == {"distill/loss": pytest.approx((2 * 1 + 3 * 3) / 5)}


def test_opd_advantage_is_teacher_minus_sampler_logprob(policy: Policy) -> None:
    rollouts = _rollouts(policy, max_turns=1)
    other = load_policy(ModelConfig(tiny=TinyModelConfig(**SMALL, seed=5)), device="cpu")
    teacher = Teacher(other.model, policy.chat, "none", policy.pad_id, 0.8)
    batch = _batch(policy, rollouts, teacher)
    distiller = Distiller(OPDAdvantage(DistillConfig()), teacher, coef=0.5, reward_weight=2.0)
    env_adv = torch.full(batch.mask.shape, 0.25)
    out, _ = distiller.advantages(
        TrainBatch(batch.ids, batch.attention, batch.mask, batch.old_logp, env_adv, batch.teacher)
    )
    teacher_logp = token_scores(other.model, batch.ids, batch.attention, 0.8, mask=batch.mask).logp
    expected = 2.0 * 0.25 + 0.5 * (teacher_logp - batch.old_logp) * batch.mask
    assert torch.allclose(out.advantages, expected, atol=1e-5)
    assert float(((out.advantages - 0.5) * batch.mask).abs().sum()) > 0.1  # a real signal


def test_a_teacher_with_another_tokenizer_is_refused() -> None:
    class Vocab:
        def __init__(self, vocab: dict[str, int]):
            self.vocab = vocab

        def get_vocab(self) -> dict[str, int]:
            return self.vocab

    check_shared_vocabulary(Vocab({"a": 0, "b": 1}), Vocab({"b": 1, "a": 0}), "t")
    with pytest.raises(ValueError, match="does not share the policy's tokenizer") as caught:
        check_shared_vocabulary(Vocab({"a": 0, "b": 1}), Vocab({"a": 0, "c": 1}), "t")
    assert "\n" not in str(caught.value)


def test_every_objective_is_registered() -> None:
    assert DISTILL_OBJECTIVES.names() == [
        "forward_ce",
        "forward_ce_topk",
        "none",
        "opd",
        "reverse_kl_sampled",
    ]


def test_a_horizon_generates_fewer_tokens(policy: Policy) -> None:
    collector = RolloutCollector(
        policy,
        EnvPool({"rlvr/Math-v0": {"difficulty": 0}}),
        limits=RolloutLimits(8, 400, 1),
        sampling=SamplingSettings(),
        env_workers=2,
        stop=False,  # every turn runs to its budget
    )
    specs = [GroupSpec("rlvr/Math-v0", 1, 0, 2)]
    full = collector.collect(specs, torch.Generator().manual_seed(0))
    cut = collector.collect(specs, torch.Generator().manual_seed(0), max_new_tokens=3)
    collector.close()
    assert [r.completion_tokens for r in full[0].rollouts] == [8, 8]
    assert [r.completion_tokens for r in cut[0].rollouts] == [3, 3]
    # the cut rollout is the prefix of the full one (same seed, same draws)
    first = full[0].rollouts[0]
    start = first.policy_mask.index(1)
    assert cut[0].rollouts[0].ids[: start + 3] == first.ids[: start + 3]


class FeedbackParityEnv(gym.Env[str, str]):
    """Pays 1 for a reply of even length and says how long the reply was (its feedback)."""

    observation_space = UnicodeText(100)
    action_space = UnicodeText(10_000)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        super().reset(seed=seed)
        return "Reply with an even number of characters.", {"system_prompt": "", "role": "user"}

    def step(self, action: str) -> Any:
        win = len(action) % 2 == 0
        info = {
            "success": win,
            "reward_components": {"even": float(win)},
            "feedback": f"The reply had {len(action)} characters; an even number wins.",
            "reference": "ab",
        }
        return "ok", float(win), True, False, info


gym.register("test/FeedbackParity-v0", entry_point=FeedbackParityEnv)

SCENARIO = {
    "model": {"name": "tiny", "tiny": SMALL},
    "envs": [{"id": "test/FeedbackParity-v0"}],
    "sft": {"steps": 0},
    "rollout": {"group_size": 2, "prompts_per_step": 2, "max_new_tokens": 8},
    "algorithm": {"lr": 1e-3, "updates_per_batch": 2, "minibatches": 2},
    "eval": {"episodes": 0},
    "run": {"steps": 2, "progress": False, "tensorboard": False, "plots": False},
}


def _scenario(tmp_path: Path) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(json.dumps(SCENARIO), encoding="utf-8")  # JSON is YAML
    return path


def _train(tmp_path: Path, name: str, *overrides: str) -> tuple[list[dict[str, Any]], Path]:
    from rlvr.training.trainer import train

    run = tmp_path / name
    train(load_config(_scenario(tmp_path), [f"run.output_dir={run}", *overrides]))
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines], run


def _weights(run: Path, step: int) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(run / "checkpoints" / f"step-{step:06d}" / "model" / "model.safetensors")


def _teacher_path() -> str:
    return str(ensure_tiny_model(seed=3, **SMALL))


@pytest.mark.parametrize(
    ("objective", "extra", "metric"),
    [
        ("opd", ["distill.teacher={teacher}"], "distill/advantage"),
        ("forward_ce", ["distill.context=feedback"], "distill/loss"),
        ("forward_ce_topk", ["distill.context=reference", "distill.topk=5"], "distill/loss"),
        ("reverse_kl_sampled", ["distill.context=feedback"], "distill/loss"),
    ],
)
def test_pure_distillation_trains_the_policy(
    tmp_path: Path, objective: str, extra: list[str], metric: str
) -> None:
    overrides = [f"distill.objective={objective}", "distill.reward_weight=0"]
    overrides += [item.format(teacher=_teacher_path()) for item in extra]
    records, run = _train(tmp_path, objective, *overrides)
    assert [r["step"] for r in records] == [1, 2]
    assert all(r[metric] != 0 for r in records) and all(r["grad_norm"] > 0 for r in records)
    assert all(r["distill/context"] == 1.0 for r in records)  # every episode had feedback
    before, after = _weights(run, 0), _weights(run, 2)
    assert any(not torch.equal(before[key], after[key]) for key in before)


def test_objective_none_is_the_plain_trainer_bit_for_bit(tmp_path: Path, monkeypatch: Any) -> None:
    """The default run equals a run whose loop never touches advantages or loss for
    distillation (a pass-through stands in for the distiller), weights bit for bit."""
    default, run = _train(tmp_path, "default")
    assert 0 < default[0]["reward"] < 1 and default[0]["loss"] != 0  # real gradients
    assert not any(key.startswith("distill/") and key != "distill/horizon" for key in default[0])

    class PassThrough:
        needs_logits = False

        def with_teacher_inputs(self, batch: TrainBatch, rollouts: Any) -> TrainBatch:
            return batch

        def advantages(self, batch: TrainBatch) -> tuple[TrainBatch, dict[str, float]]:
            return batch, {}

        def loss_tokens(self, loss: torch.Tensor, part: Any, scores: Any) -> tuple[Any, Any]:
            return loss, {}

    import rlvr.training.trainer as trainer

    monkeypatch.setattr(trainer, "build_distiller", lambda config, policy: PassThrough())
    plain, plain_run = _train(tmp_path, "plain")
    assert [r["loss"] for r in plain] == [r["loss"] for r in default]
    ours, theirs = _weights(run, 2), _weights(plain_run, 2)
    assert all(torch.equal(ours[key], theirs[key]) for key in ours)


def test_the_horizon_schedule_sets_each_steps_budget(tmp_path: Path) -> None:
    common = [
        "distill.objective=opd",
        f"distill.teacher={_teacher_path()}",
        "distill.reward_weight=0",
        "rollout.ignore_eos=true",  # every reply runs to its budget
        "run.steps=3",
    ]
    full, _ = _train(tmp_path, "full", *common)
    assert [r["distill/horizon"] for r in full] == [8, 8, 8]
    assert [r["generated_tokens"] for r in full] == [32, 32, 32]  # 4 rollouts x 8 tokens
    topd, _ = _train(
        tmp_path, "topd", *common, "distill.horizon={name: truncated, params: {fraction: 0.25}}"
    )
    assert [r["distill/horizon"] for r in topd] == [2, 2, 2]
    assert [r["generated_tokens"] for r in topd] == [8, 8, 8]
    popd, _ = _train(
        tmp_path,
        "popd",
        *common,
        "distill.horizon={name: doubling, params: {initial_fraction: 0.25, ramp_fraction: 1.0}}",
    )
    # H_0 = 2, two doublings over 3 steps: stage floor(step * 2 / 3) -> 2, 2, 4
    assert [r["distill/horizon"] for r in popd] == [2, 2, 4]
    assert [r["generated_tokens"] for r in popd] == [8, 8, 16]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["distill.objective=magic"], "unknown distillation objective 'magic'; known:"),
        (["distill.reward_weight=0"], "reward_weight 0 (pure distillation) needs an objective"),
        (["distill.reward_weight=0.5"], "reward_weight weighs rewards against an objective"),
        (["distill.context=feedback"], "teacher and context are unused with objective none"),
        (["distill.objective=opd"], "teacher self with context none is the student itself"),
        (
            ["distill.objective=opd", "distill.context=feedback", "distill.coef=0"],
            "distill.coef: Input should be greater than 0",
        ),
        (
            [
                "distill.objective=forward_ce",
                "distill.context=feedback",
                "distill.horizon={name: truncated}",
            ],
            "horizon truncated cuts replies short",
        ),
        (["distill.horizon={name: spiral}"], "unknown horizon schedule 'spiral'"),
        (
            ["distill.horizon={name: truncated, params: {fraction: 2}}"],
            "distill.horizon: horizon fraction must be in (0, 1], got 2",
        ),
        (
            [
                "distill.objective=opd",
                "distill.context=feedback",
                "distill.reward_weight=0",
                "rollout.group_filter=informative",
            ],
            "reward_weight 0 ignores rewards, so rollout.group_filter must be all",
        ),
        (["distill.context=hint"], "distill.context: Input should be 'none', 'feedback'"),
    ],
)
def test_bad_distill_sections_are_one_line_config_errors(
    tmp_path: Path, overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_scenario(tmp_path), overrides)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("name", ["opd", "topd", "popd", "distil", "sdpo"])
def test_distillation_scenarios_validate(name: str) -> None:
    config = load_config(ROOT / "scenarios" / f"{name}.yaml")
    assert config.distill.objective != "none"
