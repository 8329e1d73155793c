"""Distillation objectives as the training loop uses them, one registry: ``DISTILL_OBJECTIVES``.

Each objective gives the step two per-token terms, either of which may be zero, and the loop
combines them the same way whatever the objective (:class:`Distiller`)::

    advantages  = reward_weight * A_env + coef * objective.advantage(batch, teacher)  # (N, L-1)
    loss_tokens = loss_tokens       + coef * objective.loss(part, student, teacher)   # (n, L-1)

``A_env`` is the reward-based advantage after token credit; ``loss_tokens`` the clipped
policy loss of a minibatch (after the regularizer), before aggregation. The terms:

* ``none``: both zero, no teacher, no extra forward pass (``reward_weight`` must then be 1,
  so the step is exactly the plain trainer's);
* ``opd``: OPD advantage ``log pi_T(y_t) - log pi_S(y_t)`` (Thinking Machines,
  "On-Policy Distillation", 2025; read from the blog post), detached, on policy tokens, with
  ``log pi_S`` the sampler's log-probs (``TrainBatch.old_logp``), as in the post's loop. The
  teacher scores the whole batch once, with the weights that sampled it;
* ``forward_ce``, ``forward_ce_topk``, ``reverse_kl_sampled``: a per-token loss from
  :data:`rlvr.training.distill.DISTILLATION_LOSSES` (DistIL forward cross-entropy, full
  vocabulary or the teacher's top ``distill.topk``; the SDPO sampled-token reverse-KL
  baseline) between the student's logits and the teacher's at every student state, per
  minibatch (a ``self`` teacher is then the current weights, under stop-gradient).

Tokens of rollouts the teacher had no context for (``TeacherScores.valid``) get no term.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import torch
from torch import Tensor

from rlvr.training.batch import TrainBatch
from rlvr.training.config import TrainConfig
from rlvr.training.distill import DISTILLATION_LOSSES, DistillationLoss, DistillConfig
from rlvr.training.distill import opd_advantage as _opd_advantage
from rlvr.training.policy import Policy, TokenScores
from rlvr.training.registry import Registry
from rlvr.training.rollout import Rollout
from rlvr.training.teacher import NoTeacher, TeacherModel, load_teacher


class DistillObjective(Protocol):
    @property
    def uses_teacher(self) -> bool:
        """Whether a teacher is loaded for it."""

    @property
    def needs_logits(self) -> bool:
        """Whether :meth:`loss` reads the student's full logits (``TokenScores.logits``)."""

    def advantage(self, batch: TrainBatch, teacher: TeacherModel) -> Tensor: ...

    def loss(self, part: TrainBatch, student: TokenScores, teacher: TeacherModel) -> Tensor: ...


DISTILL_OBJECTIVES: Registry[Callable[[DistillConfig], DistillObjective]] = Registry(
    "distillation objective"
)


def first_target(mask: Tensor) -> int:
    """The first target position any row trains on (0 when none): where scoring starts."""
    return int(mask.any(0).nonzero()[0]) if bool(mask.any()) else 0


@dataclass(frozen=True)
class NoDistillation:
    """``none``: no teacher; both terms are zero."""

    config: DistillConfig
    uses_teacher: bool = False
    needs_logits: bool = False

    def advantage(self, batch: TrainBatch, teacher: TeacherModel) -> Tensor:
        return torch.zeros_like(batch.mask)

    def loss(self, part: TrainBatch, student: TokenScores, teacher: TeacherModel) -> Tensor:
        return torch.zeros_like(part.mask)


@dataclass(frozen=True)
class OPDAdvantage:
    """``opd``: the per-token reverse-KL advantage ``A_t = log pi_T(y_t) - log pi_S(y_t)``
    (detached, discount 0; Thinking Machines, "On-Policy Distillation", 2025, read from the
    post: ``log pi_S`` is the sampler's log-prob, ``old_logp``). Shapes: ``old_logp`` (N, L-1)
    and the teacher's log-probs of the same tokens (N, L-1) -> (N, L-1). No loss term."""

    config: DistillConfig
    uses_teacher: bool = True
    needs_logits: bool = False

    def advantage(self, batch: TrainBatch, teacher: TeacherModel) -> Tensor:
        scores = teacher.scores(batch, first_target(batch.mask), logits=False)
        return _opd_advantage(batch.old_logp, scores.logp, batch.mask * scores.valid)

    def loss(self, part: TrainBatch, student: TokenScores, teacher: TeacherModel) -> Tensor:
        return torch.zeros_like(part.mask)


@dataclass(frozen=True)
class DistillationLossTerm:
    """A ``DISTILLATION_LOSSES`` entry (DistIL forward CE, arXiv 2606.05152, objective from
    the project page, top-k variant reconstructed; SDPO sampled-token reverse KL, arXiv
    2601.20802, read from TRL) on the student's and the teacher's tempered logits at the
    student's states: (n, L-1-first, V) twice -> loss (n, L-1), zero before ``first``."""

    config: DistillConfig
    per_token: DistillationLoss
    uses_teacher: bool = True
    needs_logits: bool = True

    def advantage(self, batch: TrainBatch, teacher: TeacherModel) -> Tensor:
        return torch.zeros_like(batch.mask)

    def loss(self, part: TrainBatch, student: TokenScores, teacher: TeacherModel) -> Tensor:
        scores = teacher.scores(part, student.first, logits=True)
        if student.logits is None or scores.logits is None:
            raise ValueError("the distillation losses need the student's and teacher's logits")
        first = student.first
        mask = (part.mask * scores.valid)[:, first:]
        tokens = part.ids[:, first + 1 :]
        loss = self.per_token(student.logits, scores.logits, tokens, mask, self.config)
        return torch.nn.functional.pad(loss, (first, 0))


DISTILL_OBJECTIVES.register("none")(NoDistillation)
DISTILL_OBJECTIVES.register("opd")(OPDAdvantage)


def _loss_term(name: str) -> Callable[[DistillConfig], DistillObjective]:
    def build(config: DistillConfig) -> DistillObjective:
        return DistillationLossTerm(config, DISTILLATION_LOSSES.get(name))

    return build


for _name in DISTILLATION_LOSSES:
    DISTILL_OBJECTIVES.register(_name)(_loss_term(_name))


def _masked_mean(values: Tensor, mask: Tensor) -> float:
    return float((values.detach() * mask).sum() / mask.sum().clamp(min=1.0))


def _with_context(batch: TrainBatch) -> Tensor:
    """(N, L-1) float: the policy tokens of the rows the teacher had context for."""
    if batch.teacher is None:
        raise ValueError("the batch has no teacher inputs")
    return batch.mask * batch.teacher.has_context[:, None].to(batch.mask.dtype)


@dataclass(frozen=True)
class Distiller:
    """The objective, its teacher and the two weights; the one object the loop calls."""

    objective: DistillObjective
    teacher: TeacherModel
    coef: float = 1.0
    reward_weight: float = 1.0

    @property
    def needs_logits(self) -> bool:
        return self.objective.needs_logits

    def with_teacher_inputs(self, batch: TrainBatch, rollouts: Sequence[Rollout]) -> TrainBatch:
        """``batch`` (on the CPU) with the teacher's sequences for its rollouts attached."""
        return replace(batch, teacher=self.teacher.inputs(rollouts))

    def advantages(self, batch: TrainBatch) -> tuple[TrainBatch, dict[str, float]]:
        """``reward_weight * A_env + coef * A_distill``, per token (N, L-1), and the metrics
        the objective has: none without a teacher; else ``distill/advantage`` (the mean term
        over the policy tokens of rows with teacher context) and ``distill/context`` (the
        share of rows with context)."""
        term = self.coef * self.objective.advantage(batch, self.teacher)
        combined = self.reward_weight * batch.advantages + term
        metrics = {}
        if batch.teacher is not None:
            metrics["distill/advantage"] = _masked_mean(term, _with_context(batch))
            metrics["distill/context"] = float(batch.teacher.has_context.mean())
        return replace(batch, advantages=combined), metrics

    def loss_tokens(
        self, loss_tokens: Tensor, part: TrainBatch, student: TokenScores
    ) -> tuple[Tensor, dict[str, float]]:
        """``loss_tokens + coef * L_distill`` (n, L-1), and ``distill/loss`` (the mean term over
        the policy tokens of rows with teacher context; no metric without a teacher)."""
        term = self.objective.loss(part, student, self.teacher)
        metrics = {}
        if part.teacher is not None:
            metrics["distill/loss"] = _masked_mean(term, _with_context(part))
        return loss_tokens + self.coef * term, metrics


def build_distiller(config: TrainConfig, policy: Policy) -> Distiller:
    """The distiller of ``config.distill``; loads the teacher when the objective uses one."""
    settings = config.distill
    objective = DISTILL_OBJECTIVES.get(settings.objective)(DistillConfig(top_k=settings.topk))
    teacher: TeacherModel = NoTeacher()
    if objective.uses_teacher:
        teacher = load_teacher(
            settings.teacher,
            policy,
            config.model,
            context=settings.context,
            temperature=config.rollout.temperature,
            device=str(policy.device),
            needs_logits=objective.needs_logits,
        )
    return Distiller(objective, teacher, settings.coef, settings.reward_weight)
