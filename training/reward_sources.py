"""Reward sources: the step's rollout groups -> one reward per rollout and source, (B, G, K).

A scenario lists its rewards under ``algorithm.rewards``; each entry names a source of
:data:`REWARD_SOURCES`, a weight and the source's parameters::

    algorithm:
      advantage: gdpo
      rewards:
        - {name: transform, weight: 1.0, params: {transform: cluster_vote, mode: share}}
        - {name: self_certainty, weight: 1.0}

The loop calls the :class:`RewardMix` built from that list once per step and hands its
``rewards`` (B, G, K) and ``weights`` (K,) to the advantage estimator
(``estimator(rewards, weights) -> (B, G)``), so ``gdpo`` normalises each source within its
group before the weighted sum, and the scalar estimators sum first. The default,
``[{name: env, weight: 1.0}]``, is the episode return plus the DAPO overlong penalty: exactly
the rewards the trainer used before sources existed (``K = 1``, weight 1).

Registered sources (every one is a small class; ``label`` names its metrics):

* ``env``: the episode return (sum of the per-turn env rewards) plus the overlong penalty;
* ``component`` (``key``): ``info["reward_components"][key]`` of the last step;
* ``transform`` (``transform`` and that transform's parameters): a group-level transform of
  :mod:`rlvr.rewards.transforms` (``pow3r``, ``cluster_vote``, ``positive_only``,
  ``rubric_for_all``, ``none``), fed each group's returns, components, rubric and answers;
* ``self_certainty`` (``subtract_log_vocab``, ``rows_per_pass``): Intuitor's token-wise
  self-certainty of each completion under the rollout-time weights (label-free).

Each step logs ``rewards/<label>`` (the mean of the source's rewards) and the transforms'
own metrics as ``rewards/<label>/<metric>`` (POW3R's ``static_reward`` and
``strict_completion``, LongTraceRL's ``reward_on_wrong``, the vote's ``top_share``...).
Sources that keep state across steps (POW3R's EMA) save it in the checkpoints through
:meth:`RewardMix.state_dict`, so a resumed run continues exactly.

A source that reads ``info["reward_components"]`` (``component``, and ``transform`` with
``pow3r``, ``positive_only`` or ``rubric_for_all``) cannot score an episode the env never
judged (cut by ``rollout.max_total_tokens`` or ``max_turns``): before the step's rewards the
loop calls :meth:`RewardMix.mark_unscorable` on every group, and a group with such a rollout
is dropped like a group whose env failed (counted in ``groups_failed``, written to
``failures.jsonl`` with the reason), never scored 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import torch
from torch import Tensor

from rlvr.rewards.transforms import (
    RewardTransform,
    ScoredGroup,
    criteria_from_info,
    make_reward_transform,
)
from rlvr.training.batch import build_batch, group_rewards
from rlvr.training.registry import Registry
from rlvr.training.rewards_model import self_certainty
from rlvr.training.rollout import Rollout, RolloutGroup


@dataclass(frozen=True)
class OverlongPenalty:
    """DAPO's soft overlong punishment (``algorithm.overlong_*``; buffer 0 turns it off)."""

    max_tokens: int
    buffer: int = 0
    factor: float = 1.0


@dataclass(frozen=True)
class PolicyView:
    """The rollout policy, for sources that score completions with the model itself."""

    model: Any
    """The causal LM with the rollout-time weights (before this step's update)."""
    pad_id: int
    device: torch.device
    temperature: float
    """The sampling temperature: logits are divided by it, as the sampler did."""


@dataclass(frozen=True)
class RewardContext:
    """What a source may read about one step: ``B`` groups of ``G`` rollouts."""

    groups: Sequence[RolloutGroup]
    overlong: OverlongPenalty
    policy: PolicyView | None = None
    """``None`` outside a training run; sources that need the model then raise."""


@dataclass(frozen=True)
class SourceRewards:
    """One source's output for a step."""

    rewards: Tensor
    """(B, G) float32 on the CPU: one reward per rollout."""
    metrics: Mapping[str, Sequence[float]]
    """Metric name (below the source's label) -> values whose mean is logged."""


class RewardSource(Protocol):
    @property
    def label(self) -> str:
        """The metric name: ``env``, ``component:<key>``, ``transform:<name>``..."""
        ...

    def __call__(self, context: RewardContext) -> SourceRewards: ...

    def unscorable(self, rollout: Rollout) -> str | None:
        """Why the source cannot score ``rollout`` (``None`` if it can): its group is then
        dropped before the step's rewards, like a group whose env failed."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


REWARD_SOURCES: Registry[Callable[..., RewardSource]] = Registry("reward source")


class _Stateless:
    """Checkpoint hooks of a source that keeps nothing across steps."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, got {sorted(state)}")


def _unjudged(label: str) -> str:
    return (
        f"unscored: reward source {label} needs the terminal info['reward_components'], which "
        "the env never gave (the episode was cut by rollout.max_total_tokens or max_turns "
        "before the env judged it)"
    )


@REWARD_SOURCES.register("env")
@dataclass(frozen=True)
class EnvReturn(_Stateless):
    """The episode return ``sum_u r_u`` plus the DAPO overlong penalty on the episode length
    (:func:`rlvr.training.batch.group_rewards`): the trainer's reward before sources existed."""

    @property
    def label(self) -> str:
        return "env"

    def unscorable(self, rollout: Rollout) -> str | None:
        return None  # every episode has a return, cut or not

    def __call__(self, context: RewardContext) -> SourceRewards:
        overlong = context.overlong
        rewards = group_rewards(
            context.groups,
            max_tokens=overlong.max_tokens,
            overlong_buffer=overlong.buffer,
            overlong_factor=overlong.factor,
        )[..., 0]
        return SourceRewards(rewards, {})


@REWARD_SOURCES.register("component")
@dataclass(frozen=True)
class Component(_Stateless):
    """``info["reward_components"][key]`` of each rollout's last step (in [0, 1])."""

    key: str

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise ValueError(f"component key must be a non-empty string, got {self.key!r}")

    @property
    def label(self) -> str:
        return f"component:{self.key}"

    def unscorable(self, rollout: Rollout) -> str | None:
        return None if rollout.components else _unjudged(self.label)

    def __call__(self, context: RewardContext) -> SourceRewards:
        rows = []
        for group in context.groups:
            row = []
            for rollout in group.rollouts:
                if self.key not in rollout.components:
                    raise ValueError(
                        f"reward source {self.label}: env {rollout.env_id} gave no reward "
                        f"component {self.key!r}; it gives {sorted(rollout.components)}"
                    )
                row.append(float(rollout.components[self.key]))
            rows.append(row)
        return SourceRewards(torch.tensor(rows, dtype=torch.float), {})


def scored_group(group: RolloutGroup) -> ScoredGroup:
    """What a reward transform sees of a group: returns, components, rubric and answers."""
    rollouts = group.rollouts
    rubric: Mapping[str, Mapping[str, Any]] = next((r.rubric for r in rollouts if r.rubric), {})
    return ScoredGroup(
        rewards=tuple(r.reward for r in rollouts),
        components=tuple(r.components for r in rollouts),
        criteria=criteria_from_info(rubric),
        answers=tuple(r.answer for r in rollouts),
    )


@REWARD_SOURCES.register("transform")
class Transform:
    """A group-level reward transform of :mod:`rlvr.rewards.transforms`, run on every group.

    ``transform`` names it in ``REWARD_TRANSFORMS``; the other parameters are its own (POW3R's
    ``alpha``, ``eps``, ``ema``; the vote's ``mode`` and ``equivalence``; LongTraceRL's ``eta``).
    Its per-group metrics are logged as ``rewards/transform:<name>/<metric>``. After the step's
    groups it calls the transform's ``end_step`` once (POW3R folds the step's mean contrast into
    its EMA there, so every group of a step sees the same pre-step weights); that state goes
    into the checkpoints.
    """

    def __init__(self, transform: str, **params: Any) -> None:
        self.name = transform
        self.transform: RewardTransform = make_reward_transform(transform, **params)

    @property
    def label(self) -> str:
        return f"transform:{self.name}"

    def unscorable(self, rollout: Rollout) -> str | None:
        if self.transform.needs_components and not rollout.components:
            return _unjudged(self.label)
        return None

    def __call__(self, context: RewardContext) -> SourceRewards:
        rows: list[tuple[float, ...]] = []
        metrics: dict[str, list[float]] = {}
        for group in context.groups:
            result = self.transform(scored_group(group))
            rows.append(result.rewards)
            for key, value in result.metrics.items():
                if key != "reward":  # the source's own mean is logged under its label
                    metrics.setdefault(key, []).append(float(value))
        self.transform.end_step()
        return SourceRewards(torch.tensor(rows, dtype=torch.float), metrics)

    def state_dict(self) -> dict[str, Any]:
        return self.transform.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.transform.load_state_dict(state)


@REWARD_SOURCES.register("self_certainty")
@dataclass(frozen=True)
class SelfCertainty(_Stateless):
    """Completion-level self-certainty (Intuitor, arXiv 2505.19590, eq. 4; read from code, see
    :func:`rlvr.training.rewards_model.self_certainty`): the mean over each rollout's policy
    tokens of ``KL(U || pi_old(. | prefix))``, from the rollout-time weights at the sampling
    temperature, under no-grad. Label-free: no ground truth is read. Multi-turn rollouts
    average over the tokens of all their replies.
    """

    subtract_log_vocab: bool = True
    """``False`` gives Intuitor's code value (``log |V|`` larger; equal advantages)."""
    rows_per_pass: int = 8
    """Rollouts per forward pass (the logits are ``rows * length * vocabulary`` floats)."""

    def __post_init__(self) -> None:
        if not isinstance(self.subtract_log_vocab, bool):
            raise ValueError(f"subtract_log_vocab must be a bool, got {self.subtract_log_vocab!r}")
        if isinstance(self.rows_per_pass, bool) or not isinstance(self.rows_per_pass, int):
            raise ValueError(f"rows_per_pass must be an int, got {self.rows_per_pass!r}")
        if self.rows_per_pass < 1:
            raise ValueError(f"rows_per_pass must be >= 1, got {self.rows_per_pass}")

    @property
    def label(self) -> str:
        return "self_certainty"

    def unscorable(self, rollout: Rollout) -> str | None:
        return None  # any sampled completion has a self-certainty

    def __call__(self, context: RewardContext) -> SourceRewards:
        policy = context.policy
        if policy is None:
            raise ValueError("reward source self_certainty needs the policy (context.policy)")
        rollouts = [r for g in context.groups for r in g.rollouts]
        values = [
            self._score(policy, rollouts[start : start + self.rows_per_pass])
            for start in range(0, len(rollouts), self.rows_per_pass)
        ]
        flat = torch.cat(values) if values else torch.zeros(0)
        return SourceRewards(flat.reshape(len(context.groups), -1), {})

    @torch.no_grad()
    def _score(self, policy: PolicyView, rollouts: Sequence[Any]) -> Tensor:
        """Self-certainty of a chunk of rollouts: (n,) float32 on the CPU."""
        batch = build_batch(rollouts, torch.zeros(len(rollouts)), policy.pad_id)
        ids, attention = batch.ids.to(policy.device), batch.attention.to(policy.device)
        mask = batch.mask.to(policy.device)  # (n, L-1): the sampled targets
        # the LM head runs only from the first sampled target on (prompts need no logits)
        first = int(mask.any(0).nonzero()[0]) if bool(mask.any()) else 0
        keep = mask.shape[1] - first + 1
        model = policy.model
        was_training = model.training
        model.eval()  # no dropout: the rollout policy's own distribution
        try:
            out = model(input_ids=ids, attention_mask=attention, logits_to_keep=keep)
        finally:
            model.train(was_training)
        logits = out.logits[:, :-1, :].float() / policy.temperature  # (n, L-1-first, V)
        scores = self_certainty(logits, mask[:, first:], subtract_log_vocab=self.subtract_log_vocab)
        return scores.float().cpu()


class SourceChoice(Protocol):
    """One entry of ``algorithm.rewards`` (:class:`rlvr.training.config.RewardSourceConfig`)."""

    @property
    def name(self) -> str: ...

    @property
    def weight(self) -> float: ...

    @property
    def params(self) -> dict[str, Any]: ...


def build_source(name: str, params: Mapping[str, Any]) -> RewardSource:
    """The source ``name`` built with ``params``; a one-line ``ValueError`` if it cannot be."""
    factory = REWARD_SOURCES.get(name)
    try:
        return factory(**params)
    except TypeError as error:
        raise ValueError(f"bad parameters for reward source {name!r}: {error}") from None


@dataclass(frozen=True)
class MixedRewards:
    """The step's rewards, ready for ``ADVANTAGES``."""

    rewards: Tensor
    """(B, G, K) float32: source ``k``'s reward of rollout ``g`` of group ``b``."""
    weights: Tensor
    """(K,) float32: the sources' weights."""
    metrics: dict[str, list[float]]
    """``rewards/<label>`` and ``rewards/<label>/<metric>`` -> values to average."""


class RewardMix:
    """The sources of ``algorithm.rewards``, called together once per step."""

    def __init__(self, choices: Sequence[SourceChoice]) -> None:
        if not choices:
            raise ValueError("algorithm.rewards needs at least one source")
        self.sources = [build_source(c.name, c.params) for c in choices]
        self.weights = torch.tensor([float(c.weight) for c in choices], dtype=torch.float)
        labels = [s.label for s in self.sources]
        if len(set(labels)) != len(labels):
            raise ValueError(f"reward sources must differ, got {labels}")
        if not all(math.isfinite(w) for w in self.weights.tolist()):
            raise ValueError(f"reward weights must be finite, got {self.weights.tolist()}")
        if not bool((self.weights != 0).any()):
            raise ValueError("at least one reward weight must be nonzero")

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.sources]

    def mark_unscorable(self, group: RolloutGroup) -> RolloutGroup:
        """``group`` with ``error`` set on each rollout some source cannot score (an episode
        cut before the env judged it), so that ``group.failed`` drops it: a reward source
        never scores such a rollout 0 in silence."""
        rollouts = []
        for rollout in group.rollouts:
            reasons = (source.unscorable(rollout) for source in self.sources)
            reason = next((r for r in reasons if r is not None), None)
            rollouts.append(rollout if reason is None else replace(rollout, error=reason))
        return replace(group, rollouts=tuple(rollouts))

    def __call__(self, context: RewardContext) -> MixedRewards:
        """Every source on the step's groups: rewards (B, G, K), weights (K,), metrics."""
        if not context.groups:  # nothing collected: no source is called (no state moves)
            empty = torch.zeros((0, 0, len(self.sources)))
            return MixedRewards(empty, self.weights.clone(), {})
        shape = (len(context.groups), len(context.groups[0].rollouts))
        columns, metrics = [], {}
        for source in self.sources:
            result = source(context)
            if tuple(result.rewards.shape) != shape:
                raise ValueError(
                    f"reward source {source.label} gave shape {tuple(result.rewards.shape)}, "
                    f"expected (B, G) = {shape}"
                )
            columns.append(result.rewards.float())
            metrics[f"rewards/{source.label}"] = result.rewards.reshape(-1).tolist()
            for key, values in result.metrics.items():
                metrics[f"rewards/{source.label}/{key}"] = list(values)
        return MixedRewards(torch.stack(columns, dim=-1), self.weights.clone(), metrics)

    def state_dict(self) -> dict[str, Any]:
        """Each source's state, keyed by its label (for checkpoints)."""
        return {source.label: source.state_dict() for source in self.sources}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for source in self.sources:
            source.load_state_dict(state.get(source.label, {}))
