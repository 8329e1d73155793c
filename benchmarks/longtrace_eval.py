"""LongTraceRL's measures on ``rlvr/MultiHop-v0`` (context mode) for one agent, with the
training reward each variant of ``scenarios/longtrace.yaml`` would pay on its groups.

``--samples`` rollouts of each of ``--tasks`` held-out tasks, grouped per task as in training.
Printed: accuracy (the ``outcome`` component), entity recall (the ``rubric`` component: the
share of the gold hop entities named, less for entity stuffing), the share of rollouts that
give a readable answer and that name at least one hop entity; then, for each reward variant
(``positive_only``, ``rubric_for_all`` with ``--eta``, ``outcome`` only), the mean training
reward, the mean reward paid to wrong answers (the hacking signal) and the share of groups
whose rewards vary (a non-zero GRPO advantage somewhere).

    python benchmarks/longtrace_eval.py runs/warm/checkpoints/step-000000/model \\
        --tasks 16 --samples 8 --context-chars 300 --json runs/longtrace_eval.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym

import rlvr
from rlvr.agents.base import SamplingConfig
from rlvr.agents.evaluation import EpisodeRecord, evaluate
from rlvr.agents.registry import load_agent
from rlvr.rewards.transforms import ScoredGroup, make_reward_transform

gym.register_envs(rlvr)
ENV_ID = "rlvr/MultiHop-v0"
EVAL_SEED = 1 << 30
"""Held-out task seeds start here (the training draws never reach it)."""
VARIANTS = ("positive_only", "rubric_for_all", "outcome")


@dataclass(frozen=True)
class VariantStats:
    """The training reward one variant pays over all groups."""

    mean_reward: float
    reward_on_wrong: float
    """Mean reward of the rollouts whose answer is wrong (0 when none is wrong)."""
    groups_with_signal: float
    """Share of the groups whose rewards are not all equal."""


def variant_rewards(
    variant: str, components: Sequence[Mapping[str, float]], eta: float
) -> list[float]:
    """One group's training rewards under ``variant`` (group-normalised rubric, as trained)."""
    if variant == "outcome":
        return [float(c["outcome"]) for c in components]
    transform = make_reward_transform(variant, eta=eta, group_normalize=True)
    group = ScoredGroup(rewards=(0.0,) * len(components), components=tuple(components))
    return list(transform(group).rewards)


def variant_stats(
    variant: str, groups: Sequence[Sequence[Mapping[str, float]]], eta: float
) -> VariantStats:
    """:class:`VariantStats` of ``variant`` over the groups' components."""
    rewards: list[float] = []
    wrong: list[float] = []
    signal = 0
    for components in groups:
        paid = variant_rewards(variant, components, eta)
        rewards.extend(paid)
        wrong.extend(r for r, c in zip(paid, components, strict=True) if c["outcome"] < 1)
        signal += max(paid) - min(paid) > 1e-9
    return VariantStats(
        mean_reward=sum(rewards) / len(rewards),
        reward_on_wrong=sum(wrong) / len(wrong) if wrong else 0.0,
        groups_with_signal=signal / len(groups),
    )


def answered(record: EpisodeRecord) -> bool:
    """The reply gave one readable final answer (the env's verification says ``ok``)."""
    return record.verification.startswith("answer status ok")


def summarize(records: Sequence[EpisodeRecord], eta: float) -> dict[str, Any]:
    """Accuracy, entity recall, answer and entity shares, and each variant's rewards."""
    by_task: dict[int, list[Mapping[str, float]]] = {}
    for record in records:
        by_task.setdefault(record.task_index, []).append(record.components)
    groups = [by_task[i] for i in sorted(by_task)]
    n = len(records)
    return {
        "rollouts": n,
        "accuracy": sum(r.components["outcome"] for r in records) / n,
        "entity_recall": sum(r.components["rubric"] for r in records) / n,
        "answered": sum(answered(r) for r in records) / n,
        "names_a_hop_entity": sum(r.components["rubric"] > 0 for r in records) / n,
        "variants": {v: vars(variant_stats(v, groups, eta)) for v in VARIANTS},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("agent", help="a checkpoint folder, tiny, scripted, random...")
    parser.add_argument("--difficulty", type=int, default=0)
    parser.add_argument("--context-chars", type=int, default=300, help="as the scenario")
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--samples", type=int, default=8, help="rollouts per task (group size)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--eta", type=float, default=0.3)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    kwargs = {"mode": "context", "context_chars": args.context_chars}
    sampling = SamplingConfig(
        temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=args.sample_seed
    )
    agent = load_agent(args.agent, env_id=ENV_ID, sampling=sampling)
    report = evaluate(
        lambda: gym.make(ENV_ID, difficulty=args.difficulty, **kwargs),
        agent,
        env_id=ENV_ID,
        episodes=args.tasks,
        seed=EVAL_SEED,
        samples=args.samples,
        difficulty=args.difficulty,
        batch_size=args.batch_size,
    )
    agent.close()
    result = {"agent": args.agent, "difficulty": args.difficulty, **kwargs,
              **summarize(report.records, args.eta)}  # fmt: skip
    print(json.dumps(result, indent=1))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
