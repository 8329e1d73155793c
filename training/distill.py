"""On-policy distillation: the OPD reverse-KL advantage and the DistIL forward cross-entropy.

Notation as in :mod:`rlvr.training.losses`: ``N`` sequences of ``T`` completion tokens sampled
from the student, mask ``m`` ``(N, T)`` (1 on student tokens), vocabulary ``V``. The teacher
scores the *same* sampled tokens, so teacher and student must share a tokenizer and the
teacher's logits are aligned with the student's, position for position.

**OPD** (Thinking Machines, "On-Policy Distillation", 2025; the base of TOPD/POPD, arXiv
2605.31490). The per-token reverse-KL sample ``k_t = log pi_S(y_t) - log pi_T(y_t)`` becomes
the advantage ``A_t = -k_t`` (detached, discount 0), which goes through the usual policy loss
(``POLICY_LOSSES``) in place of the reward-based advantage, with ``beta_KL = 0``. Read from the
blog post; the rollout horizon schedules are in :mod:`rlvr.training.horizons`.

**DistIL** (Agrawal, Fein-Ashley, Rashidinejad, "Reinforcement Learning from Rich Feedback with
Distributional DAgger", arXiv 2606.05152). The teacher is the model itself with the env's rich
feedback in its context, under stop-gradient; the loss is the forward cross-entropy
``H(sg pi_E, pi_theta) = -sum_v pi_E(v) log pi_theta(v)`` at every student state (forward KL
plus a constant). The objective is from the paper's project page; no code was published, so
the top-k approximation and the teacher-context layout here are reconstructed, and the paper's
sequence-level term (future disagreement as a cost-to-go) is not implemented.

One registry, ``DISTILLATION_LOSSES``, every entry with the same signature::

    loss(student_logits[N, T, V], teacher_logits[N, T, V], tokens[N, T], mask[N, T],
         config) -> loss[N, T]     # 0 where mask is 0; reduce with an AGGREGATIONS entry
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from rlvr.envs.types import Message, Role
from rlvr.training.registry import Registry

FEEDBACK_TEMPLATE = (
    "Feedback on an earlier attempt at this task:\n\n{feedback}\n\n"
    "Use this feedback to answer the task correctly."
)
"""How :func:`teacher_context` presents ``info["feedback"]`` to the teacher."""

REFERENCE_TEMPLATE = "\n\nA reference solution:\n\n{reference}"
"""Appended to the feedback message when the reference solution is included."""


@dataclass(frozen=True)
class DistillConfig:
    """Parameters of the distillation losses (each loss reads the fields it needs)."""

    top_k: int = 20
    """``forward_ce_topk``: how many of the teacher's most likely tokens carry the loss."""

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ValueError(f"distillation top_k must be >= 1, got {self.top_k}")


class DistillationLoss(Protocol):
    def __call__(
        self,
        student_logits: Tensor,
        teacher_logits: Tensor,
        tokens: Tensor,
        mask: Tensor,
        config: DistillConfig,
    ) -> Tensor: ...


DISTILLATION_LOSSES: Registry[DistillationLoss] = Registry("distillation loss")


def _check_logits(student_logits: Tensor, teacher_logits: Tensor, mask: Tensor) -> None:
    if student_logits.ndim != 3 or student_logits.shape != teacher_logits.shape:
        raise ValueError(
            "student and teacher logits must both be (N, T, V), got "
            f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}"
        )
    if mask.shape != student_logits.shape[:2]:
        raise ValueError(f"mask must be (N, T) = {tuple(student_logits.shape[:2])}")


def opd_advantage(logp: Tensor, teacher_logp: Tensor, mask: Tensor) -> Tensor:
    """OPD per-token advantage ``A_t = -(log pi_S(y_t) - log pi_T(y_t))``, detached, masked.

    Thinking Machines OPD blog: the negative per-token reverse-KL sample with discount 0 (no
    reward-to-go). Positive where the teacher likes the sampled token more than the student.
    Shapes: ``logp`` (N, T) student log-probs of the sampled tokens, ``teacher_logp`` (N, T)
    teacher log-probs of the same tokens, ``mask`` (N, T) -> (N, T).
    """
    if not logp.shape == teacher_logp.shape == mask.shape:
        raise ValueError(
            "logp, teacher_logp and mask must have one (N, T) shape, got "
            f"{tuple(logp.shape)}, {tuple(teacher_logp.shape)}, {tuple(mask.shape)}"
        )
    return ((teacher_logp - logp) * mask).detach()


def reverse_kl_full(student_logits: Tensor, teacher_logits: Tensor, mask: Tensor) -> Tensor:
    """Exact reverse KL per position, ``sum_v pi_S(v) (log pi_S(v) - log pi_T(v))``, masked.

    The full-vocabulary quantity whose on-policy sample :func:`opd_advantage` estimates; use it
    to evaluate distillation (TOPD's held-out reverse KL). Computed in float32.
    Shapes: (N, T, V), (N, T, V), (N, T) -> (N, T) nats.
    """
    _check_logits(student_logits, teacher_logits, mask)
    logp_s = torch.log_softmax(student_logits.float(), dim=-1)
    logp_t = torch.log_softmax(teacher_logits.float(), dim=-1)
    return (logp_s.exp() * (logp_s - logp_t)).sum(-1) * mask


@DISTILLATION_LOSSES.register("forward_ce")
def forward_ce_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    tokens: Tensor,
    mask: Tensor,
    config: DistillConfig,
) -> Tensor:
    """DistIL forward cross-entropy, full vocabulary (arXiv 2606.05152, project-page objective):
    ``L_t = -sum_v sg(pi_E(v | x, f, y_<t)) log pi_theta(v | x, y_<t)``.

    Its gradient in the student's logits is ``pi_theta - pi_E``, so a step never moves a
    state's probability away from the teacher's where there are two actions. The teacher gets
    no gradient. ``tokens`` is unused (the loss covers every token of the vocabulary).
    Shapes: (N, T, V), (N, T, V), (N, T), (N, T) -> (N, T).
    """
    _check_logits(student_logits, teacher_logits, mask)
    teacher_p = torch.softmax(teacher_logits.detach().float(), dim=-1)
    student_logp = torch.log_softmax(student_logits.float(), dim=-1)
    return -(teacher_p * student_logp).sum(-1) * mask


@DISTILLATION_LOSSES.register("forward_ce_topk")
def forward_ce_topk_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    tokens: Tensor,
    mask: Tensor,
    config: DistillConfig,
) -> Tensor:
    """DistIL forward cross-entropy on the teacher's top-k tokens [approximation reconstructed]:
    ``L_t = -sum_{v in topk(pi_E)} p~_E(v) log pi_theta(v)``, with ``p~_E`` the teacher's top-k
    probabilities renormalized to sum to 1 and ``log pi_theta`` the student's full-vocabulary
    log-probs. For black-box teachers that return only their top-k (a vLLM server's
    ``logprobs``); ``k >= V`` equals ``forward_ce``. Shapes as ``forward_ce``.
    """
    _check_logits(student_logits, teacher_logits, mask)
    k = min(config.top_k, teacher_logits.shape[-1])
    top_logits, top_ids = torch.topk(teacher_logits.detach().float(), k, dim=-1)  # (N, T, k)
    teacher_p = torch.softmax(top_logits, dim=-1)  # renormalized over the top k
    student_logp = torch.log_softmax(student_logits.float(), dim=-1).gather(-1, top_ids)
    return -(teacher_p * student_logp).sum(-1) * mask


@DISTILLATION_LOSSES.register("reverse_kl_sampled")
def reverse_kl_sampled_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    tokens: Tensor,
    mask: Tensor,
    config: DistillConfig,
) -> Tensor:
    """SDPO self-distillation baseline (arXiv 2601.20802; TRL ``experimental/sdpo``,
    ``distillation_mode="sampled_token"``, ``distillation_alpha=1``):
    ``L_t = sg(log pi_theta(y_t) - log pi_E(y_t)) * log pi_theta(y_t)``.

    A REINFORCE estimate of the per-token reverse KL on the sampled token ``y_t``: its expected
    gradient is that of ``KL(pi_theta || pi_E)`` at the state. DistIL's claim is that this
    family can raise the probability of worse actions. Shapes: (N, T, V), (N, T, V), (N, T)
    token ids, (N, T) -> (N, T).
    """
    _check_logits(student_logits, teacher_logits, mask)
    index = tokens.long().unsqueeze(-1)
    logp = torch.log_softmax(student_logits.float(), dim=-1).gather(-1, index).squeeze(-1)
    teacher_logits = teacher_logits.detach().float()
    teacher_logp = torch.log_softmax(teacher_logits, dim=-1).gather(-1, index).squeeze(-1)
    return (logp - teacher_logp).detach() * logp * mask


def teacher_context(
    messages: Sequence[Message],
    info: Mapping[str, Any],
    *,
    with_reference: bool = False,
    role: Role = "user",
) -> list[Message]:
    """The DistIL teacher's context: the student's dialogue with the feedback added.

    ``messages`` is the dialogue up to the student turn being distilled (what the student
    saw); ``info`` is the episode's terminal info. The text ``info["feedback"]`` (and
    ``info["reference"]`` when ``with_reference`` and the env has one) is appended, after a
    blank line, to the last message when it is a ``role`` message (the task), so chat
    templates that require alternating roles still render it; otherwise it becomes a new
    ``role`` message. The teacher scores the student's reply after seeing the feedback
    [layout reconstructed; SDPO's reprompt template is similar]. Raises ``ValueError`` when
    the info has no feedback text.
    """
    feedback = info.get("feedback")
    if not isinstance(feedback, str) or not feedback.strip():
        raise ValueError("info has no 'feedback' text to condition the teacher on")
    text = FEEDBACK_TEMPLATE.format(feedback=feedback.strip())
    reference = info.get("reference")
    if with_reference and isinstance(reference, str) and reference.strip():
        text += REFERENCE_TEMPLATE.format(reference=reference.strip())
    if messages and messages[-1].role == role:
        last = messages[-1]
        return [*messages[:-1], Message(role=role, content=f"{last.content}\n\n{text}")]
    return [*messages, Message(role=role, content=text)]
