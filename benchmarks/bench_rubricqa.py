"""Benchmark ``rlvr/RubricQA-v0``: solver strict completion, cheating rewards, scoring speed.

Section 1: the scripted solver (``RubricQASolver``, reading only the observation) plays
``--episodes`` seeded episodes per level; prints strict completion (every required criterion
met) with a Wilson 95% interval, and the mean reward.

Section 2: every cheating strategy of :mod:`rlvr.envs.rubricqa.cheats` (plus an enormous
answer: a good answer repeated to 39,000 characters) on the same tasks, levels 0-3; prints its
mean and max reward with the env's rubric, side by side with the same rubric stripped of the
integrity gates (the ablation that shows what the gates buy).

Section 3: scoring throughput, answers/s of ``Rubric.score`` on the reference answers
(median of ``--repeats`` runs), and episodes/s of reset + solver + step.

    python benchmarks/bench_rubricqa.py            # about 30 s on 2 cores
    python benchmarks/bench_rubricqa.py --quick    # a few seconds
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import gymnasium as gym

import rlvr
from rlvr.agents.evaluation import wilson_interval
from rlvr.agents.scripted.rubricqa import RubricQASolver
from rlvr.envs import play
from rlvr.envs.rubricqa import RubricQAEnv
from rlvr.envs.rubricqa.cheats import STRATEGIES, enormous
from rlvr.rewards.rubric import Rubric

gym.register_envs(rlvr)
ENV_ID = "rlvr/RubricQA-v0"


def solver_section(levels: range, episodes: int) -> None:
    print(f"\n1. Scripted solver, {episodes} episodes per level (seeds 0..{episodes - 1})")
    print(f"{'level':>5}  {'strict completion':>17}  {'95% interval':>15}  {'mean reward':>11}")
    solver = RubricQASolver()
    for level in levels:
        env = gym.make(ENV_ID, difficulty=level)
        runs = [play(env, solver, seed=seed) for seed in range(episodes)]
        wins = sum(run.success for run in runs)
        low, high = wilson_interval(wins, episodes)
        reward = statistics.fmean(run.total_reward for run in runs)
        print(f"{level:>5}  {wins / episodes:>17.1%}  {low:>7.1%}-{high:>6.1%}  {reward:>11.3f}")


def ungated(rubric: Rubric) -> Rubric:
    return Rubric(tuple(c for c in rubric.criteria if not c.gate))


def cheat_section(episodes: int) -> None:
    print(f"\n2. Cheating strategies, levels 0-3, {episodes} tasks (mean / max reward)")
    env = RubricQAEnv(difficulty=(0, 3))
    tasks = []
    for seed in range(episodes):
        observation, _ = env.reset(seed=seed)
        tasks.append((observation, env.rubric, env.oracle_action() or ""))
    print(f"{'strategy':>18}  {'with gates':>15}  {'without gates':>15}")
    for name in [*STRATEGIES, "enormous"]:
        gated, plain = [], []
        for observation, rubric, reference in tasks:
            answer = enormous(reference) if name == "enormous" else STRATEGIES[name](observation)
            gated.append(rubric.score(answer, prompt=observation).reward)
            plain.append(ungated(rubric).score(answer, prompt=observation).reward)
        print(
            f"{name:>18}  {statistics.fmean(gated):>7.3f} / {max(gated):.3f}  "
            f"{statistics.fmean(plain):>7.3f} / {max(plain):.3f}"
        )


def speed_section(repeats: int, episodes: int) -> None:
    print(f"\n3. Speed (median of {repeats} runs)")
    env = RubricQAEnv(difficulty=(0, 3))
    tasks = []
    for seed in range(episodes):
        observation, _ = env.reset(seed=seed)
        tasks.append((observation, env.rubric, env.oracle_action() or ""))
    score_times, episode_times = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        for observation, rubric, reference in tasks:
            rubric.score(reference, prompt=observation)
        score_times.append(time.perf_counter() - start)
        made = gym.make(ENV_ID)
        start = time.perf_counter()
        for seed in range(episodes):
            play(made, RubricQASolver(), seed=seed)
        episode_times.append(time.perf_counter() - start)
    print(
        f"  Rubric.score on reference answers: {episodes / statistics.median(score_times):,.0f}/s"
    )
    print(
        f"  episodes (reset + solver + step):  {episodes / statistics.median(episode_times):,.0f}/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=500, help="episodes per level")
    parser.add_argument("--levels", type=int, default=6, help="levels 0..N-1")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="50 episodes, 3 repeats")
    args = parser.parse_args()
    if args.quick:
        args.episodes, args.repeats = 50, 3
    print(f"rlvr/RubricQA-v0 benchmark · Python {platform.python_version()} · {platform.machine()}")
    solver_section(range(args.levels), args.episodes)
    cheat_section(args.episodes)
    speed_section(args.repeats, min(args.episodes, 200))


if __name__ == "__main__":
    main()
