"""Whether POW3R has anything to reweight on ``rlvr/RubricQA-v0``, before any RL is run.

POW3R (:class:`rlvr.rewards.transforms.Pow3r`) moves weight between the criteria of one
category by how much they separate a group's rollouts. Its training reward can differ from
the static (human-weight) one only when (1) a category holds two or more weighted criteria,
and (2) the rollouts pass the integrity gates (a failed gate zeros every component) and
differ on those criteria. Two measures:

* ``structure`` (no model): per difficulty, the share of tasks with a category of two or more
  weighted criteria, i.e. the tasks where POW3R's weights can differ from the human ones.
* ``rollouts`` (any agent: a checkpoint folder, ``tiny``, ``scripted``): ``--samples``
  rollouts of each of ``--tasks`` held-out tasks, grouped per task as in training; the share
  of rollouts that pass every gate, the share of groups whose static reward varies (a
  non-zero GRPO advantage), and the share whose POW3R weights (the group's own contrast,
  ``--alpha``, ``--eps``) differ from the human weights by more than ``--rtol``.
* ``plateau`` (a ``benchmarks/compare_variants.py`` ``summary.json``): the issue's measure,
  the steps each variant takes to reach the static-weight plateau, i.e. the first step at
  which the ``--window``-step running mean of ``--metric`` (mean over seeds) reaches the
  static variant's mean over its last ``--window`` steps.

    python benchmarks/pow3r_plateau.py structure --difficulties 0 1 2 3 --tasks 200
    python benchmarks/pow3r_plateau.py rollouts runs/warm/checkpoints/step-000000/model \\
        --difficulty 1 --tasks 16 --samples 8 --json runs/pow3r_rollouts.json
    python benchmarks/pow3r_plateau.py plateau docs/results/pow3r/summary.json \
        --static static --metric env/rlvr/RubricQA-v0/reward
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym

import rlvr
from rlvr.agents.base import SamplingConfig
from rlvr.agents.evaluation import EpisodeRecord, evaluate
from rlvr.agents.registry import load_agent
from rlvr.rewards.transforms import (
    CriterionSpec,
    criteria_from_info,
    criterion_contrast,
    pow3r_weights,
    weighted_rubric_reward,
)

gym.register_envs(rlvr)
ENV_ID = "rlvr/RubricQA-v0"
EVAL_SEED = 1 << 30
"""Held-out task seeds start here (the training draws never reach it)."""

Rubric = Mapping[str, Mapping[str, Any]]
"""A RubricQA ``info["rubric"]``: criterion name -> weight, category, required, gate..."""


def can_reweight(criteria: Mapping[str, CriterionSpec]) -> bool:
    """Some category holds two or more criteria of positive weight; otherwise every POW3R
    weight equals its human weight whatever the rollouts (a lone criterion keeps its
    category's whole mass)."""
    counts = Counter(spec.category for spec in criteria.values() if spec.weight > 0)
    return any(count >= 2 for count in counts.values())


def gate_names(rubric: Rubric) -> list[str]:
    """The criteria marked as gates (weight 0; a failed one zeros the reward)."""
    return [name for name, spec in rubric.items() if spec.get("gate")]


def passes_gates(components: Mapping[str, float], gates: Sequence[str]) -> bool:
    """Every gate scores 1 (a gate absent from the components counts as failed)."""
    return all(components.get(gate, 0.0) >= 1.0 for gate in gates)


def weights_differ(
    criteria: Mapping[str, CriterionSpec],
    scores: Sequence[Mapping[str, float]],
    *,
    alpha: float,
    eps: float,
    rtol: float,
) -> bool:
    """POW3R's weights from this group's contrast differ from the human weights: some
    ``|w_k - h_k| > rtol * h_k`` over the criteria of positive human weight."""
    names = list(criteria)
    matrix = [[float(s[n]) for n in names] for s in scores]
    contrast = dict(zip(names, criterion_contrast(matrix), strict=True))
    weights = pow3r_weights(criteria, contrast, alpha=alpha, eps=eps)
    return any(
        abs(weights[n] - spec.weight) > rtol * spec.weight
        for n, spec in criteria.items()
        if spec.weight > 0
    )


@dataclass(frozen=True)
class Pow3rGroup:
    """What one task's group of rollouts offers POW3R."""

    rollouts: int
    gates_passed: int
    static_rewards: tuple[float, ...]
    reweighted: bool

    @property
    def has_signal(self) -> bool:
        """The static reward varies within the group (a non-zero advantage somewhere)."""
        return max(self.static_rewards) - min(self.static_rewards) > 1e-9


def group_stats(
    rubric: Rubric,
    components: Sequence[Mapping[str, float]],
    *,
    alpha: float = 0.5,
    eps: float = 1e-3,
    rtol: float = 0.01,
) -> Pow3rGroup:
    """Gate passes, static rewards and whether POW3R reweights, for one group."""
    criteria = criteria_from_info(rubric)
    names = list(criteria)
    human = [criteria[n].weight for n in names]
    gates = gate_names(rubric)
    static = tuple(weighted_rubric_reward([c[n] for n in names], human) for c in components)
    return Pow3rGroup(
        rollouts=len(components),
        gates_passed=sum(passes_gates(c, gates) for c in components),
        static_rewards=static,
        reweighted=weights_differ(criteria, components, alpha=alpha, eps=eps, rtol=rtol),
    )


def task_rubrics(difficulty: int, tasks: int, seed: int = EVAL_SEED) -> list[dict[str, Any]]:
    """``info["rubric"]`` of the tasks ``seed + i`` at ``difficulty`` (as :func:`evaluate`
    draws them)."""
    env = gym.make(ENV_ID, difficulty=difficulty)
    rubrics = []
    for index in range(tasks):
        _, info = env.reset(seed=seed + index, options={"difficulty": difficulty})
        rubrics.append(dict(info["rubric"]))
    env.close()
    return rubrics


def structure(difficulties: Sequence[int], tasks: int) -> dict[int, float]:
    """Per difficulty, the share of tasks on which POW3R can reweight at all."""
    return {
        level: sum(can_reweight(criteria_from_info(r)) for r in task_rubrics(level, tasks)) / tasks
        for level in difficulties
    }


def summarize(groups: Sequence[Pow3rGroup]) -> dict[str, float]:
    """Shares over the groups (and rollouts) of one evaluation."""
    rollouts = sum(g.rollouts for g in groups)
    return {
        "groups": float(len(groups)),
        "rollouts": float(rollouts),
        "gate_pass_rate": sum(g.gates_passed for g in groups) / rollouts,
        "mean_static_reward": sum(sum(g.static_rewards) for g in groups) / rollouts,
        "groups_with_signal": sum(g.has_signal for g in groups) / len(groups),
        "groups_reweighted": sum(g.reweighted for g in groups) / len(groups),
    }


def running_mean(values: Sequence[float], window: int) -> list[float]:
    """Mean of the last ``window`` values (fewer at the start) at each step."""
    return [
        sum(values[max(0, i + 1 - window) : i + 1]) / min(window, i + 1) for i in range(len(values))
    ]


def steps_to_reach(values: Sequence[float], level: float, window: int) -> int | None:
    """The first step (1-based) whose running mean reaches ``level``; ``None`` if none does."""
    for step, value in enumerate(running_mean(values, window), 1):
        if value >= level:
            return step
    return None


def plateau_steps(
    curves: Mapping[str, Sequence[Sequence[float]]], static: str, window: int
) -> dict[str, Any]:
    """Per variant, the steps to the static variant's plateau (``curves``: variant -> one
    curve per seed; each variant's curve is the mean over its seeds, cut to the shortest)."""
    means = {}
    for variant, runs in curves.items():
        length = min(len(run) for run in runs)
        means[variant] = [sum(run[i] for run in runs) / len(runs) for i in range(length)]
    tail = means[static][-window:]
    level = sum(tail) / len(tail)
    steps = {v: steps_to_reach(curve, level, window) for v, curve in means.items()}
    return {"plateau": level, "steps": steps}


def plateau(args: argparse.Namespace) -> dict[str, Any]:
    """:func:`plateau_steps` of a ``compare_variants.py`` summary."""
    results = json.loads(args.summary.read_text())["results"]
    curves = {v: [run["curves"][args.metric] for run in runs] for v, runs in results.items()}
    return {"metric": args.metric, **plateau_steps(curves, args.static, args.window)}


def rollouts(args: argparse.Namespace) -> dict[str, Any]:
    """Sample the agent on held-out tasks and summarize its groups."""
    sampling = SamplingConfig(
        temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=args.sample_seed
    )
    agent = load_agent(args.agent, env_id=ENV_ID, sampling=sampling)
    report = evaluate(
        lambda: gym.make(ENV_ID, difficulty=args.difficulty),
        agent,
        env_id=ENV_ID,
        episodes=args.tasks,
        seed=EVAL_SEED,
        samples=args.samples,
        difficulty=args.difficulty,
        batch_size=args.batch_size,
    )
    agent.close()
    by_task: dict[int, list[EpisodeRecord]] = {}
    for record in report.records:
        by_task.setdefault(record.task_index, []).append(record)
    rubrics = task_rubrics(args.difficulty, args.tasks)
    groups = [
        group_stats(rubrics[i], [r.components for r in records], alpha=args.alpha, eps=args.eps)
        for i, records in sorted(by_task.items())
    ]
    return {"agent": args.agent, "difficulty": args.difficulty, **summarize(groups),
            "per_group": [asdict(g) for g in groups]}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    shape = sub.add_parser("structure", help="tasks POW3R can reweight (no model)")
    shape.add_argument("--difficulties", type=int, nargs="+", default=[0, 1, 2, 3])
    shape.add_argument("--tasks", type=int, default=200)
    roll = sub.add_parser("rollouts", help="gate passes and reweighting on sampled groups")
    roll.add_argument("agent", help="a checkpoint folder, tiny, scripted, random...")
    roll.add_argument("--difficulty", type=int, default=1)
    roll.add_argument("--tasks", type=int, default=16)
    roll.add_argument("--samples", type=int, default=8, help="rollouts per task (group size)")
    roll.add_argument("--temperature", type=float, default=1.0)
    roll.add_argument("--max-new-tokens", type=int, default=384)
    roll.add_argument("--sample-seed", type=int, default=0)
    roll.add_argument("--batch-size", type=int, default=16)
    roll.add_argument("--alpha", type=float, default=0.5)
    roll.add_argument("--eps", type=float, default=1e-3)
    flat = sub.add_parser("plateau", help="steps to the static-weight plateau")
    flat.add_argument("summary", type=Path, help="a compare_variants.py summary.json")
    flat.add_argument("--static", default="static", help="the static-weight variant")
    flat.add_argument("--metric", default="env/rlvr/RubricQA-v0/reward")
    flat.add_argument("--window", type=int, default=5)
    for command in (shape, roll, flat):
        command.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    if args.command == "structure":
        result: dict[str, Any] = {"tasks": args.tasks, "can_reweight": structure(
            args.difficulties, args.tasks)}  # fmt: skip
    elif args.command == "plateau":
        result = plateau(args)
    else:
        result = rollouts(args)
    printable = {k: v for k, v in result.items() if k != "per_group"}
    print(json.dumps(printable, indent=1))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
