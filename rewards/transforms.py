"""Group-level reward transforms: one prompt's scored rollouts -> the rewards GRPO trains on.

A transform sees the whole group of ``G`` rollouts of one prompt, because the techniques here
compare rollouts with each other. Every transform has the same signature, so a training loop
can call whichever it is configured with, once per group, before the advantage (``rlvr train``
selects one through the ``transform`` reward source, :mod:`rlvr.training.reward_sources`)::

    transform = make_reward_transform(name, **params)     # once, when the loop is configured
    result = transform(ScoredGroup(rewards=..., components=..., criteria=..., answers=...))
    result.rewards   # tuple[float, ...], one per rollout
    result.metrics   # dict[str, float], to log (static rubric reward, strict completion...)
    transform.end_step()     # once per training step, after its groups (POW3R's EMA update)
    transform.state_dict()   # what a checkpoint keeps (POW3R's EMA; {} for the others)

Registered names (:data:`REWARD_TRANSFORMS`):

* ``none``: the env rewards unchanged;
* ``pow3r``: policy-aware rubric reweighting (POW3R, arXiv 2605.20164; reconstructed);
* ``cluster_vote``: label-free answer reward by cluster voting (EMPO share or TTRL majority);
* ``positive_only``: LongTraceRL's group-normalised positive-only rubric reward (arXiv
  2605.31584, read from THU-KEG/LongTraceRL), built on :mod:`rlvr.rewards.multihop`;
* ``rubric_for_all``: the ablation that pays the rubric to wrong answers too (reward hacking).

Pure Python, torch-free. Nothing returns 0 for "could not score": missing inputs raise.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from rlvr.rewards.math import answers_equivalent
from rlvr.rewards.multihop import (
    DEFAULT_ETA,
    normalize_group_rubrics,
    positive_only,
)


@dataclass(frozen=True)
class CriterionSpec:
    """What reweighting needs to know about one rubric criterion."""

    weight: float
    """Human importance ``h_k >= 0``."""
    category: str = "general"
    """Category whose total human weight POW3R preserves."""
    required: bool = True
    """Strict completion needs a score of 1 on every required criterion."""

    def __post_init__(self) -> None:
        if not math.isfinite(self.weight) or self.weight < 0:
            raise ValueError(f"criterion weight must be finite and >= 0, got {self.weight}")


def criteria_from_info(rubric: Mapping[str, Mapping[str, Any]]) -> dict[str, CriterionSpec]:
    """Read a rubric env's ``info["rubric"]`` (name -> weight, category, required, ...)."""
    return {
        name: CriterionSpec(
            weight=float(spec["weight"]),
            category=str(spec.get("category", "general")),
            required=bool(spec.get("required", True)),
        )
        for name, spec in rubric.items()
    }


@dataclass(frozen=True)
class ScoredGroup:
    """The ``G`` rollouts of one prompt, as the loop collects them from the terminal infos."""

    rewards: tuple[float, ...]
    """The env reward of each rollout."""
    components: tuple[Mapping[str, float], ...] = ()
    """Each rollout's ``info["reward_components"]`` (empty if the transform needs none)."""
    criteria: Mapping[str, CriterionSpec] = field(default_factory=dict)
    """Rubric envs: the criteria (:func:`criteria_from_info` of ``info["rubric"]``)."""
    answers: tuple[str | None, ...] = ()
    """Label-free RLIF: each rollout's extracted final answer (``None`` if it gave none)."""

    def __post_init__(self) -> None:
        size = len(self.rewards)
        if size == 0:
            raise ValueError("a scored group needs at least one rollout")
        for name in ("components", "answers"):
            length = len(getattr(self, name))
            if length not in (0, size):
                raise ValueError(f"{name} has {length} entries for {size} rollouts")


@dataclass(frozen=True)
class GroupRewards:
    """A transform's result for one group."""

    rewards: tuple[float, ...]
    """The training reward of each rollout, in rollout order."""
    metrics: Mapping[str, float] = field(default_factory=dict)
    """Group means to log (the objective a reweighting must not lose sight of)."""


class RewardTransform(Protocol):
    needs_components: ClassVar[bool]
    """Whether it reads ``group.components`` (a rollout the env never judged has none)."""

    def __call__(self, group: ScoredGroup) -> GroupRewards: ...

    def end_step(self) -> None:
        """Called once per training step after all its groups (a no-op for stateless ones)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must keep for an exact resume (``{}`` for stateless ones)."""
        ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


class _Stateless:
    """The step and checkpoint hooks of a transform that keeps nothing across calls."""

    def end_step(self) -> None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, got {sorted(state)}")


# A plain dict, not rlvr.training.registry.Registry: rlvr.rewards sits below rlvr.training in
# the dependency order (training -> rewards, and nothing but the CLI imports training;
# ARCHITECTURE.md), so it must not import rlvr.training. _register and make_reward_transform
# give the same duplicate-name and unknown-name errors as Registry.
REWARD_TRANSFORMS: dict[str, Callable[..., RewardTransform]] = {}
"""Name -> factory taking the transform's parameters as keywords."""


def _register(
    name: str,
) -> Callable[[Callable[..., RewardTransform]], Callable[..., RewardTransform]]:
    def add(factory: Callable[..., RewardTransform]) -> Callable[..., RewardTransform]:
        if name in REWARD_TRANSFORMS:
            raise ValueError(f"reward transform {name!r} is already registered")
        REWARD_TRANSFORMS[name] = factory
        return factory

    return add


def make_reward_transform(name: str, **params: Any) -> RewardTransform:
    """Build the transform ``name``; unknown names and parameters are a ``ValueError``."""
    if name not in REWARD_TRANSFORMS:
        known = ", ".join(sorted(REWARD_TRANSFORMS))
        raise ValueError(f"unknown reward transform {name!r}; known: {known}")
    try:
        return REWARD_TRANSFORMS[name](**params)
    except TypeError as error:
        raise ValueError(f"reward transform {name!r}: {error}") from None


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


@_register("none")
@dataclass(frozen=True)
class Identity(_Stateless):
    """The env rewards, unchanged."""

    needs_components: ClassVar[bool] = False

    def __call__(self, group: ScoredGroup) -> GroupRewards:
        return GroupRewards(tuple(group.rewards), {"reward": _mean(group.rewards)})


# --------------------------------------------------------------------------- POW3R


def _score_matrix(group: ScoredGroup, names: Sequence[str]) -> list[list[float]]:
    """``s[i][k]``, rollout ``i``'s score on criterion ``names[k]``; raises if one is missing."""
    if len(group.components) != len(group.rewards):
        raise ValueError("pow3r needs every rollout's reward_components")
    matrix = []
    for i, components in enumerate(group.components):
        missing = [n for n in names if n not in components]
        if missing:
            raise ValueError(f"rollout {i} has no score for criteria {missing}")
        matrix.append([float(components[n]) for n in names])
    return matrix


def criterion_contrast(scores: Sequence[Sequence[float]]) -> list[float]:
    """``c_k = std_i s_{ik}`` (population std; ``sqrt(p (1 - p))`` for binary scores):
    (G, K) -> (K,). Saturated or unreachable criteria have ``c_k = 0``."""
    size = len(scores)
    columns = list(zip(*scores, strict=True))
    out = []
    for column in columns:
        mean = sum(column) / size
        out.append(math.sqrt(sum((s - mean) ** 2 for s in column) / size))
    return out


def pow3r_weights(
    criteria: Mapping[str, CriterionSpec],
    contrast: Mapping[str, float],
    *,
    alpha: float,
    eps: float,
) -> dict[str, float]:
    """POW3R criterion weights (reconstructed, techniques.md section 3, steps 3-4).

    Within each category ``g`` of human mass ``H_g = sum_{k in g} h_k``::

        w~_k = H_g h_k (c_k + eps) / sum_{k' in g} h_k' (c_k' + eps)      (0 when H_g = 0)
        w_k  = (1 - alpha) h_k + alpha w~_k

    so every category keeps its human mass, ``sum_k w_k = sum_k h_k``, and ``(1 - alpha) h_k``
    is a floor on each criterion's weight.
    """
    raw = {n: c.weight * (contrast[n] + eps) for n, c in criteria.items()}
    mass: dict[str, float] = {}
    norm: dict[str, float] = {}
    for name, spec in criteria.items():
        mass[spec.category] = mass.get(spec.category, 0.0) + spec.weight
        norm[spec.category] = norm.get(spec.category, 0.0) + raw[name]
    weights = {}
    for name, spec in criteria.items():
        group_norm = norm[spec.category]
        tilde = mass[spec.category] * raw[name] / group_norm if group_norm > 0 else 0.0
        weights[name] = (1 - alpha) * spec.weight + alpha * tilde
    return weights


def weighted_rubric_reward(scores: Sequence[float], weights: Sequence[float]) -> float:
    """``sum_k w_k s_k / sum_k w_k``: the static rubric reward with human weights ``h``."""
    total = sum(weights)
    if total <= 0:
        raise ValueError("rubric weights must have a positive sum")
    return sum(w * s for w, s in zip(weights, scores, strict=True)) / total


def strict_completion(scores: Sequence[float], required: Sequence[bool]) -> bool:
    """Every required criterion scores 1."""
    return all(s >= 1.0 for s, r in zip(scores, required, strict=True) if r)


@dataclass(frozen=True)
class Pow3rConfig:
    """Parameters of :class:`Pow3r` (the paper gives none; these are the reconstruction's)."""

    alpha: float = 0.5
    """Mix between human (0) and contrast-adapted (1) weights; ``1 - alpha`` is the floor."""
    eps: float = 1e-3
    """Added to every contrast, so a criterion with no spread keeps a little weight."""
    ema: float | None = None
    """Decay ``beta`` of an exponential moving average of each criterion's contrast, keyed
    by criterion name and updated once per step (:meth:`Pow3r.end_step`) with the step's mean
    contrast (``None``: use each group's own contrast)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"pow3r alpha must lie in [0, 1], got {self.alpha}")
        if self.eps <= 0:
            raise ValueError(f"pow3r eps must be > 0, got {self.eps}")
        if self.ema is not None and not 0.0 <= self.ema < 1.0:
            raise ValueError(f"pow3r ema must lie in [0, 1), got {self.ema}")


@_register("pow3r")
class Pow3r:
    """POW3R, policy-aware rubric rewards ("Not Every Rubric Teaches Equally", Tyagi et al.,
    arXiv 2605.20164). Only the abstract was available: the algorithm below is a
    reconstruction (techniques.md section 3), not the paper's code.

    Per group: contrast ``c_k`` of each criterion over the rollouts (:func:`criterion_contrast`;
    with ``ema``, every group of a step uses instead the smoothed contrast as it stood before
    the step, and :meth:`end_step` folds the step's mean contrast into it), category-preserving
    weights with a floor on the human ones (:func:`pow3r_weights`), and the training reward
    ``r_i = sum_k w_k s_ik / sum_k w_k``. Logged: ``static_reward`` (human weights, the
    objective), ``strict_completion`` (rate) and ``reward`` (the training reward), group means.
    Needs ``group.components`` and ``group.criteria``.
    """

    needs_components: ClassVar[bool] = True

    def __init__(self, **params: Any) -> None:
        self.config = Pow3rConfig(**params)
        self._contrast: dict[str, float] = {}
        """The smoothed contrast as of the end of the last step (criterion name -> value)."""
        self._step: dict[str, list[float]] = {}
        """This step's group contrasts, per criterion, folded in by :meth:`end_step`."""

    def __call__(self, group: ScoredGroup) -> GroupRewards:
        if not group.criteria:
            raise ValueError("pow3r needs the rubric's criteria (info['rubric'])")
        names = list(group.criteria)
        scores = _score_matrix(group, names)
        contrast = self._smooth(dict(zip(names, criterion_contrast(scores), strict=True)))
        weights = pow3r_weights(
            group.criteria, contrast, alpha=self.config.alpha, eps=self.config.eps
        )
        w = [weights[n] for n in names]
        human = [group.criteria[n].weight for n in names]
        required = [group.criteria[n].required for n in names]
        rewards = tuple(weighted_rubric_reward(s, w) for s in scores)
        static = [weighted_rubric_reward(s, human) for s in scores]
        strict = [float(strict_completion(s, required)) for s in scores]
        metrics = {"reward": _mean(rewards), "static_reward": _mean(static)}
        metrics["strict_completion"] = _mean(strict)
        return GroupRewards(rewards, metrics)

    def _smooth(self, contrast: dict[str, float]) -> dict[str, float]:
        """The pre-step smoothed contrast of each criterion (the group's own for a criterion
        not seen in an earlier step); the group's contrast is kept for :meth:`end_step`."""
        if self.config.ema is None:
            return contrast
        for name, value in contrast.items():
            self._step.setdefault(name, []).append(value)
        return {name: self._contrast.get(name, value) for name, value in contrast.items()}

    def end_step(self) -> None:
        """``c_k <- beta c_k + (1 - beta) m_k``, ``m_k`` the mean contrast of criterion ``k``
        over the step's groups that have it; a criterion's first ``m_k`` is kept as is."""
        beta = self.config.ema
        if beta is not None:
            for name, values in self._step.items():
                mean = sum(values) / len(values)
                previous = self._contrast.get(name, mean)
                self._contrast[name] = beta * previous + (1 - beta) * mean
        self._step = {}

    def state_dict(self) -> dict[str, Any]:
        """The EMA state (criterion name -> smoothed contrast), for checkpoints (taken between
        steps, after :meth:`end_step`)."""
        return {"contrast": dict(self._contrast)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        contrast = state.get("contrast")
        if not isinstance(contrast, Mapping):
            raise ValueError("pow3r state needs a 'contrast' mapping")
        self._contrast = {str(k): float(v) for k, v in contrast.items()}


# --------------------------------------------------------------------------- cluster voting

Equivalence = Callable[[str, str], bool]
"""Whether two extracted answers are the same answer."""

_SPACE = re.compile(r"\s+")


def exact_equivalent(a: str, b: str) -> bool:
    """Equal after stripping, collapsing whitespace and case-folding."""
    return _SPACE.sub(" ", a.strip()).casefold() == _SPACE.sub(" ", b.strip()).casefold()


def math_equivalent(a: str, b: str) -> bool:
    """:func:`rlvr.rewards.math.answers_equivalent`; an undecided pair counts as different."""
    return answers_equivalent(a, b) is True


EQUIVALENCES: dict[str, Equivalence] = {"exact": exact_equivalent, "math": math_equivalent}


def cluster_answers(answers: Sequence[str | None], equivalent: Equivalence) -> list[int | None]:
    """Cluster id of each answer (``None`` for a missing or blank one).

    Greedy: an answer joins the first cluster whose first member it is equivalent to, else
    opens a new cluster. Clusters are numbered in order of first appearance.
    """
    heads: list[str] = []
    ids: list[int | None] = []
    for answer in answers:
        if answer is None or not answer.strip():
            ids.append(None)
            continue
        for index, head in enumerate(heads):
            if equivalent(answer, head):
                ids.append(index)
                break
        else:
            heads.append(answer)
            ids.append(len(heads) - 1)
    return ids


VoteMode = Literal["share", "majority"]


def cluster_vote(
    answers: Sequence[str | None], equivalent: Equivalence, mode: VoteMode = "share"
) -> list[float]:
    """Label-free answer reward from the group's agreement (techniques.md section 7a).

    * ``share`` (EMPO, arXiv 2504.05812, soft): ``r_i = |C(i)| / G``, the fraction of the
      group's ``G`` rollouts in rollout ``i``'s cluster;
    * ``majority`` (TTRL, arXiv 2504.16084, hard): ``r_i = 1`` if ``C(i)`` is the largest
      cluster, else 0; a tie goes to the cluster that appeared first.

    A rollout without an answer gets 0 and joins no cluster (it still counts in ``G``).
    """
    if mode not in ("share", "majority"):
        raise ValueError(f"cluster vote mode must be 'share' or 'majority', got {mode!r}")
    ids = cluster_answers(answers, equivalent)
    sizes: dict[int, int] = {}
    for cluster in ids:
        if cluster is not None:
            sizes[cluster] = sizes.get(cluster, 0) + 1
    if mode == "share":
        return [0.0 if c is None else sizes[c] / len(ids) for c in ids]
    winner = max(sizes, key=lambda c: (sizes[c], -c)) if sizes else None
    return [1.0 if c is not None and c == winner else 0.0 for c in ids]


@_register("cluster_vote")
@dataclass(frozen=True)
class ClusterVote(_Stateless):
    """Answer reward by cluster voting over ``group.answers`` (:func:`cluster_vote`).

    The multi-reward RLIF recipe ("Two is better than one", arXiv 2605.22620) pairs it with
    self-certainty and GDPO; its code was not available, so the reward follows EMPO (share,
    the default) or TTRL (majority). Logged: ``vote/clusters`` and ``vote/top_share``.
    """

    needs_components: ClassVar[bool] = False
    mode: VoteMode = "share"
    """``share`` (soft, EMPO) or ``majority`` (hard, TTRL)."""
    equivalence: str = "math"
    """``math`` (math-verify and sympy, :func:`math_equivalent`) or ``exact``."""

    def __post_init__(self) -> None:
        if self.mode not in ("share", "majority"):
            raise ValueError(f"cluster vote mode must be 'share' or 'majority', got {self.mode!r}")
        if self.equivalence not in EQUIVALENCES:
            known = ", ".join(sorted(EQUIVALENCES))
            raise ValueError(f"unknown equivalence {self.equivalence!r}; known: {known}")

    def __call__(self, group: ScoredGroup) -> GroupRewards:
        if len(group.answers) != len(group.rewards):
            raise ValueError("cluster_vote needs every rollout's extracted answer")
        equivalent = EQUIVALENCES[self.equivalence]
        rewards = tuple(cluster_vote(group.answers, equivalent, self.mode))
        ids = [c for c in cluster_answers(group.answers, equivalent) if c is not None]
        top = max((ids.count(c) for c in set(ids)), default=0)
        metrics = {"reward": _mean(rewards), "vote/clusters": float(len(set(ids)))}
        metrics["vote/top_share"] = top / len(group.answers)
        return GroupRewards(rewards, metrics)


# --------------------------------------------------------------------------- LongTraceRL


def rubric_for_all(outcome: float, rubric: float, eta: float = DEFAULT_ETA) -> float:
    """``(1 - eta) * outcome + eta * rubric`` for every answer, wrong ones included: the
    ablation of :func:`rlvr.rewards.multihop.positive_only` without its gate."""
    for name, value in (("outcome", outcome), ("rubric", rubric), ("eta", eta)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {value}")
    return (1 - eta) * outcome + eta * rubric


def rubric_for_all_group(
    outcomes: Sequence[float], rubrics: Sequence[float], eta: float = DEFAULT_ETA
) -> list[float]:
    """The "rubric for all" ablation: ``r = (1 - eta) r_o + eta r_r / max_group r_r`` for
    every answer, so a wrong answer that lists the gold entities is paid (the reward hacking
    that LongTraceRL's positive-only gate prevents)."""
    if len(outcomes) != len(rubrics):
        raise ValueError(f"{len(outcomes)} outcomes but {len(rubrics)} rubrics")
    scaled = normalize_group_rubrics(rubrics)
    return [rubric_for_all(o, r, eta) for o, r in zip(outcomes, scaled, strict=True)]


def _outcomes_and_rubrics(
    group: ScoredGroup, outcome_key: str, rubric_key: str
) -> tuple[list[float], list[float]]:
    if len(group.components) != len(group.rewards):
        raise ValueError("the rubric transforms need every rollout's reward_components")
    outcomes, rubrics = [], []
    for i, components in enumerate(group.components):
        if outcome_key not in components or rubric_key not in components:
            raise ValueError(f"rollout {i} lacks the {outcome_key!r}/{rubric_key!r} components")
        outcomes.append(float(components[outcome_key]))
        rubrics.append(float(components[rubric_key]))
    return outcomes, rubrics


@dataclass(frozen=True)
class _RubricCombination(_Stateless):
    needs_components: ClassVar[bool] = True
    eta: float = DEFAULT_ETA
    """Rubric weight ``eta`` (LongTraceRL trains with 0.3)."""
    group_normalize: bool = True
    """Scale the rubrics by the group's maximum first (the paper's group step)."""
    outcome_key: str = "outcome"
    """The ``reward_components`` key of the outcome ``r_o`` in {0, 1}."""
    rubric_key: str = "rubric"
    """The ``reward_components`` key of the rubric ``r_r`` in [0, 1]."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"eta must lie in [0, 1], got {self.eta}")

    def combine(self, outcome: float, rubric: float) -> float:
        """One rollout's reward from its outcome and its (group-scaled) rubric."""
        raise NotImplementedError

    def __call__(self, group: ScoredGroup) -> GroupRewards:
        outcomes, rubrics = _outcomes_and_rubrics(group, self.outcome_key, self.rubric_key)
        scaled = normalize_group_rubrics(rubrics) if self.group_normalize else rubrics
        rewards = [self.combine(o, r) for o, r in zip(outcomes, scaled, strict=True)]
        wrong = [r for r, o in zip(rewards, outcomes, strict=True) if o == 0]
        metrics = {"reward": _mean(rewards), "outcome": _mean(outcomes)}
        metrics["rubric"] = _mean(rubrics)
        metrics["reward_on_wrong"] = _mean(wrong)
        return GroupRewards(tuple(rewards), metrics)


@_register("positive_only")
@dataclass(frozen=True)
class PositiveOnlyRubric(_RubricCombination):
    """LongTraceRL's reward (techniques.md section 8, read from THU-KEG/LongTraceRL):
    ``r = 0`` for a wrong answer, else ``(1 - eta) r_o + eta r_r`` with ``r_r`` scaled by the
    group maximum (as :func:`rlvr.rewards.multihop.positive_only_group`). Logged:
    ``reward_on_wrong`` (always 0 here), mean ``outcome`` and ``rubric``."""

    def combine(self, outcome: float, rubric: float) -> float:
        return positive_only(outcome, rubric, self.eta)


@_register("rubric_for_all")
@dataclass(frozen=True)
class RubricForAll(_RubricCombination):
    """The ablation :func:`rubric_for_all_group`: the rubric is paid to wrong answers too.
    ``reward_on_wrong`` > 0 in the logs is the hacking signal."""

    def combine(self, outcome: float, rubric: float) -> float:
        return rubric_for_all(outcome, rubric, self.eta)
