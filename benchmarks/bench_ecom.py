"""Benchmark ``rlvr/Ecom-v0``: scripted episodes/s and steps/s on one core.

For difficulties 0, 3, 5 and 8 it plays, on one CPU core (``sched_setaffinity`` where the OS
has it), ``--episodes`` episodes of the mixed-family env with

* ``solver``: the dialogue-only :class:`~rlvr.agents.scripted.ecom.EcomSolver` (the figure the
  issue's goal is about: >= 200 episodes/s at difficulty 3);
* ``oracle``: the env's own ``oracle_action`` (env cost without the solver's parsing);
* ``reset``: ``env.reset`` alone (world and goal generation).

Each figure is the median of ``--runs`` runs over the same seeds. No peer runs here: Ecom-RLVE
and tau-bench need an LLM user simulator (Ollama, GPT) and FAISS, so their episode rate is
bounded by LLM calls (seconds per turn), which is not a like-for-like comparison; see
docs/ecom.md.

    python benchmarks/bench_ecom.py            # about a minute
    python benchmarks/bench_ecom.py --quick    # a few seconds
    python benchmarks/bench_ecom.py --success 200   # also: solver success per family, d 0-5
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import time
from collections.abc import Callable

from rlvr.agents.scripted.ecom import EcomSolver
from rlvr.agents.scripted.ecom_probes import PROBE_FAMILIES, PROBES
from rlvr.envs import dialogue_from, extend_dialogue, play
from rlvr.envs.ecom import FAMILIES, EcomEnv

LEVELS = (0, 3, 5, 8)


def pin_one_core() -> str:
    """Run on one core where the OS allows it; returns what was done."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        return "pinned to one core"
    return "not pinned (no sched_setaffinity)"


def play_solver(env: EcomEnv, solver: EcomSolver, seed: int) -> int:
    observation, info = env.reset(seed=seed)
    dialogue = dialogue_from(observation, info)
    steps = 0
    while True:
        action = solver.act(dialogue)
        observation, _, terminated, truncated, info = env.step(action)
        steps += 1
        if terminated or truncated or steps >= 200:
            return steps
        dialogue = extend_dialogue(dialogue, action, observation, info)


def play_oracle(env: EcomEnv, seed: int) -> int:
    env.reset(seed=seed)
    steps = 0
    while True:
        action = env.oracle_action()
        assert action is not None
        _, _, terminated, truncated, _ = env.step(action)
        steps += 1
        if terminated or truncated or steps >= 200:
            return steps


def reset_only(env: EcomEnv, seed: int) -> int:
    env.reset(seed=seed)
    return 0


def rate(run: Callable[[int], int], seeds: range, runs: int) -> tuple[float, float]:
    """Median episodes/s and steps/s of ``run`` over ``seeds``, across ``runs`` runs."""
    episode_rates, step_rates = [], []
    for _ in range(runs):
        start = time.perf_counter()
        steps = sum(run(seed) for seed in seeds)
        elapsed = time.perf_counter() - start
        episode_rates.append(len(seeds) / elapsed)
        step_rates.append(steps / elapsed)
    return statistics.median(episode_rates), statistics.median(step_rates)


def success_table(episodes: int) -> None:
    """The solver's success rate per family at levels 0-5 (``episodes`` seeds each)."""
    print(f"scripted solver success, {episodes} episodes per family and level")
    print(f"{'family':>13} | " + " ".join(f"{f'd={d}':>6}" for d in range(6)))
    for family in FAMILIES:
        cells = []
        for level in range(6):
            env = EcomEnv(family=family, difficulty=level)
            solver = EcomSolver()
            wins = 0
            for seed in range(episodes):
                play_solver(env, solver, seed)
                wins += env.turn > 0 and bool(env.last_outcome and env.last_outcome.success)
            cells.append(f"{100 * wins / episodes:>5.1f}%")
        print(f"{family:>13} | " + " ".join(cells))


def probe_table(episodes: int) -> None:
    """Mean reward of every reward-hacking probe, in the mixed env and in each family it
    attacks, at levels 0/3/5/8/10 (``episodes`` seeds each)."""
    levels = (0, 3, 5, 8, 10)
    print(f"probe mean reward, {episodes} seeds per cell")
    print(f"{'probe':>24} {'family':>13} | " + " ".join(f"{f'd={d}':>6}" for d in levels))
    for name, make_probe in PROBES.items():
        for family in ("mixed", *PROBE_FAMILIES.get(name, ())):
            cells = []
            for level in levels:
                env = EcomEnv(family=family, difficulty=level)
                total = 0.0
                for seed in range(episodes):
                    total += play(env, make_probe(), seed=seed, max_turns=400).total_reward
                cells.append(f"{total / episodes:>6.3f}")
            print(f"{name:>24} {family:>13} | " + " ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="60 episodes, 3 runs")
    parser.add_argument("--success", type=int, default=0, help="also the success table")
    parser.add_argument("--probes", type=int, default=0, help="also the probe table (seeds)")
    args = parser.parse_args()
    episodes, runs = (60, 3) if args.quick else (args.episodes, args.runs)
    pinned = pin_one_core()
    print(
        f"rlvr/Ecom-v0 benchmark: {episodes} episodes x {runs} runs (medians), {pinned}, "
        f"Python {platform.python_version()}, {platform.machine()}"
    )
    header = (
        f"{'level':>5} | {'solver ep/s':>11} {'steps/s':>9} | {'oracle ep/s':>11} "
        f"{'steps/s':>9} | {'reset/s':>8}"
    )
    print(header)
    print("-" * len(header))
    for level in LEVELS:
        env = EcomEnv(difficulty=level)
        solver = EcomSolver()
        seeds = range(10_000, 10_000 + episodes)
        play_solver(env, solver, 0)  # warm caches (regexes, schemas)
        s_eps, s_steps = rate(functools.partial(play_solver, env, solver), seeds, runs)
        o_eps, o_steps = rate(functools.partial(play_oracle, env), seeds, runs)
        r_eps, _ = rate(functools.partial(reset_only, env), seeds, runs)
        print(
            f"{level:>5} | {s_eps:>11.0f} {s_steps:>9.0f} | {o_eps:>11.0f} {o_steps:>9.0f} | "
            f"{r_eps:>8.0f}"
        )
    print("goal: >= 200 solver episodes/s at level 3")
    if args.success:
        success_table(args.success)
    if args.probes:
        probe_table(args.probes)


if __name__ == "__main__":
    main()
