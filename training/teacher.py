"""The distillation teacher: its input ids for the student's rollouts, and its scores.

Token in, token out: the teacher scores exactly the ids the student sampled, never a
re-tokenization of the reply text. Row ``i`` of the teacher's batch is ::

    teacher ids = context prefix  +  student ids[p_i:]      (p_i: the student's prompt length)

where the context prefix (``distill.context``) is

* ``none``: the student's own prompt ids (the teacher sees what the student saw);
* ``feedback``: the student's first prompt messages with the episode's ``info["feedback"]``
  appended to the last user message, the task (:func:`rlvr.training.distill.teacher_context`;
  no second consecutive user message, which templates that alternate roles refuse), rendered
  with the generation prompt by the policy's :class:`~rlvr.training.chat_tokens.ChatTokens`,
  the renderer of the student's own prompt;
* ``reference``: the same with ``info["reference"]`` appended.

Everything after the prompt (the sampled turns and, in multi-turn episodes, the env's messages
and the template glue between turns) is copied id for id, so in a multi-turn episode the
feedback sits after the task and before the student's first reply [layout reconstructed; the
DistIL paper published no code]. With ``shift_i = len(prefix_i) - p_i`` the teacher's target
``t + shift_i`` scores the same token as the student's target ``t``.

A rollout with no feedback text (an episode cut by a budget before the env judged it) keeps
the student's own prompt and gets ``has_context = 0``: the objectives leave its tokens out of
the distillation term, and ``distill/context`` logs the fraction of rows that had context.

The teacher runs without gradient, in eval mode, at the rollout temperature, so a teacher
identical to the student scores the sampled tokens exactly as the sampler did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from rlvr.envs.types import Message
from rlvr.training.batch import TeacherInputs, TrainBatch
from rlvr.training.chat_tokens import ChatTokens
from rlvr.training.config import ModelConfig
from rlvr.training.distill import teacher_context
from rlvr.training.policy import Policy, load_policy
from rlvr.training.rollout import Rollout


@dataclass(frozen=True)
class TeacherScores:
    """The teacher's view of the student's targets, aligned with ``TrainBatch.mask``."""

    logp: Tensor
    """(N, L-1) the teacher's log-prob of the student's token at each target; 0 off ``valid``."""
    logits: Tensor | None
    """(N, L-1-first, V) the teacher's tempered float32 logits at the student's positions
    ``first .. L-2`` (when asked for); meaningless where ``valid`` is 0."""
    valid: Tensor
    """(N, L-1) float: 1 on targets after the student's prompt, of rows with context."""


class TeacherModel(Protocol):
    """What the distillation objectives need of a teacher."""

    def inputs(self, rollouts: Sequence[Rollout]) -> TeacherInputs | None: ...

    def scores(self, batch: TrainBatch, first: int, *, logits: bool) -> TeacherScores: ...


class NoTeacher:
    """The teacher of ``objective: none``: builds nothing, and cannot be asked for scores."""

    def inputs(self, rollouts: Sequence[Rollout]) -> TeacherInputs | None:
        return None

    def scores(self, batch: TrainBatch, first: int, *, logits: bool) -> TeacherScores:
        raise RuntimeError("this distillation objective has no teacher")


@dataclass(frozen=True)
class _Row:
    ids: list[int]
    shift: int
    start: int
    has_context: bool


def _prompt_messages(messages: Sequence[Message]) -> list[Message]:
    """The student's first prompt: the messages before its first reply."""
    replies = [i for i, m in enumerate(messages) if m.role == "assistant"]
    return list(messages[: replies[0]] if replies else messages)


def _teacher_row(rollout: Rollout, chat: ChatTokens, context: str) -> _Row:
    """One rollout's teacher sequence (see the module docstring)."""
    ids = list(rollout.ids)
    mask = rollout.policy_mask
    prompt = mask.index(1) if 1 in mask else len(ids)  # the student's prompt length
    start = max(prompt - 1, 0)  # the target position of the first sampled token
    if context == "none":
        return _Row(ids, 0, start, True)
    info = {"feedback": rollout.feedback, "reference": rollout.reference}
    try:
        messages = teacher_context(
            _prompt_messages(rollout.messages), info, with_reference=context == "reference"
        )
    except ValueError:  # no feedback: the episode ended before the env judged it
        return _Row(ids, 0, start, False)
    prefix = chat.prompt_ids(messages)
    return _Row(prefix + ids[prompt:], len(prefix) - prompt, start, True)


def teacher_inputs(
    rollouts: Sequence[Rollout], chat: ChatTokens, context: str, pad_id: int
) -> TeacherInputs:
    """Right-padded teacher sequences for ``rollouts`` (on the CPU)."""
    rows = [_teacher_row(rollout, chat, context) for rollout in rollouts]
    width = max(len(row.ids) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        ids[index, : len(row.ids)] = torch.tensor(row.ids)
        attention[index, : len(row.ids)] = 1
    return TeacherInputs(
        ids,
        attention,
        torch.tensor([row.shift for row in rows]),
        torch.tensor([row.start for row in rows]),
        torch.tensor([float(row.has_context) for row in rows]),
    )


class Teacher:
    """A causal LM (the policy itself, or a frozen model) scoring the student's tokens."""

    def __init__(self, model: Any, chat: ChatTokens, context: str, pad_id: int, temperature: float):
        self.model = model
        self.chat = chat
        self.context = context
        self.pad_id = pad_id
        self.temperature = temperature

    def inputs(self, rollouts: Sequence[Rollout]) -> TeacherInputs | None:
        return teacher_inputs(rollouts, self.chat, self.context, self.pad_id)

    @torch.no_grad()
    def scores(self, batch: TrainBatch, first: int, *, logits: bool) -> TeacherScores:
        """The teacher's log-probs of the student's targets ``first .. L-2`` (and logits).

        ``batch.teacher`` holds the teacher's sequences for ``batch``'s rows. Shapes: student
        ids (N, L), teacher ids (N, W) -> logp (N, L-1), logits (N, L-1-first, V).
        """
        inputs = batch.teacher
        if inputs is None:
            raise ValueError("the batch has no teacher inputs")
        n, length = batch.ids.shape
        device = batch.ids.device
        positions = torch.arange(first, length - 1, device=device)  # student targets (T,)
        end = batch.attention.sum(-1, keepdim=True) - 1  # (N, 1) past the last target
        valid = (positions >= inputs.start[:, None]) & (positions < end)
        valid = valid & inputs.has_context[:, None].bool()  # (N, T)
        width = inputs.ids.shape[1]
        # the LM head runs only from the earliest teacher position any row needs on
        low = int((inputs.start + inputs.shift).min().clamp(0, width - 2))
        was_training = self.model.training
        self.model.eval()
        try:
            out = self.model(
                input_ids=inputs.ids, attention_mask=inputs.attention, logits_to_keep=width - low
            )
        finally:
            self.model.train(was_training)
        scaled = out.logits[:, :-1, :].float() / self.temperature  # (N, W-1-low, V)
        where = (positions[None, :] + inputs.shift[:, None] - low).clamp(0, scaled.shape[1] - 1)
        rows = torch.arange(n, device=device)[:, None]  # (N, 1) with `where` (N, T)
        tokens = batch.ids[:, first + 1 :]  # (N, T) the student's targets
        logp = torch.log_softmax(scaled, dim=-1)[rows, where, tokens] * valid
        pad = torch.nn.functional.pad
        return TeacherScores(
            pad(logp, (first, 0)),
            scaled[rows, where] if logits else None,
            pad(valid.float(), (first, 0)),
        )


def check_shared_vocabulary(student: Any, teacher: Any, source: str) -> None:
    """Refuse a teacher whose tokenizer differs from the student's (one-line ``ValueError``)."""
    ours, theirs = student.get_vocab(), teacher.get_vocab()
    if ours != theirs:
        differ = len(set(ours.items()) ^ set(theirs.items()))
        raise ValueError(
            f"distill.teacher {source!r} does not share the policy's tokenizer ({len(theirs)} "
            f"vs {len(ours)} tokens, {differ} entries differ): the teacher must score the "
            "student's own token ids"
        )


def load_teacher(
    source: str,
    policy: Policy,
    model: ModelConfig,
    *,
    context: str,
    temperature: float,
    device: str,
    needs_logits: bool,
) -> Teacher:
    """The teacher named by ``distill.teacher``: ``self`` is the policy's own model (scored
    without gradient, so a stop-gradient copy of the current weights); anything else is
    loaded by :func:`rlvr.training.policy.load_policy` like the policy, frozen in eval mode."""
    if source == "self":
        return Teacher(policy.model, policy.chat, context, policy.pad_id, temperature)
    config = ModelConfig(name=source, dtype=model.dtype, chat_template=model.chat_template)
    loaded = load_policy(config, device=device)
    check_shared_vocabulary(policy.tokenizer, loaded.tokenizer, source)
    heads = (
        policy.model.get_output_embeddings().weight.shape[0],
        loaded.model.get_output_embeddings().weight.shape[0],
    )
    if needs_logits and heads[0] != heads[1]:
        raise ValueError(
            f"distill.teacher {source!r} has {heads[1]} output logits, the policy {heads[0]}: "
            "the forward-CE losses compare whole distributions and need the same size"
        )
    frozen = loaded.model.eval().requires_grad_(False)
    return Teacher(frozen, policy.chat, context, policy.pad_id, temperature)
