"""Benchmark the math verifier against math-verify, and the Math env against reasoning-gym.

Section 1 (answer checks): on the labelled pairs in ``rewards/data/math_answer_pairs.jsonl``,
``rlvr.rewards.math.check_math_reply`` vs ``math_verify.parse`` + ``math_verify.verify``
called directly (math-verify's defaults, main thread). Both see the same strings: the gold
as ``\\boxed{gold}``, the prediction as ``\\boxed{pred}`` (or the full reply for ``reply*``
kinds). One untimed pass warms both up (interpreter-level tables of sympy and the LaTeX
parser), then the caches of parsed answers and verdicts of both are emptied before every
timed pass, so each pass times cold checks.
Prints checks/s (median of the repeats) and the ratio, the verdict agreement, and the false
positive / false negative counts of each against the labels.

Section 2 (episodes): ``gym.make("rlvr/Math-v0")`` reset + step with the oracle reply (the
gold answer boxed) vs reasoning-gym's comparable generators (generate + ``score_answer`` on
the gold answer), in episodes/s.

    python benchmarks/bench_math.py            # full run (about a minute on 2 cores)
    python benchmarks/bench_math.py --quick    # a few seconds
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "rewards" / "data" / "math_answer_pairs.jsonl"
RG_DATASETS = (
    "basic_arithmetic",
    "fraction_simplification",
    "simple_equations",
    "polynomial_equations",
    "simple_integration",
    "intermediate_integration",
)


@dataclass(frozen=True)
class Pair:
    """One labelled pair: ``reply`` is what both verifiers read as the prediction."""

    reply: str
    gold: str
    equivalent: bool
    kind: str


def load_pairs(path: Path = DATA) -> list[Pair]:
    """The labelled pairs, with the prediction boxed unless it is a whole reply."""
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        pred = row["pred"] if row["kind"].startswith("reply") else f"\\boxed{{{row['pred']}}}"
        pairs.append(Pair(pred, row["gold"], bool(row["equivalent"]), row["kind"]))
    return pairs


def run_ours(pairs: list[Pair]) -> tuple[float, list[bool], int]:
    """Seconds for one cold pass of ``check_math_reply``, its verdicts, and how many of them
    were decided in-process (without the math-verify worker)."""
    from rlvr.rewards.math import check_math_reply, clear_caches

    clear_caches()
    start = time.perf_counter()
    verdicts = [check_math_reply(p.reply, p.gold) for p in pairs]
    seconds = time.perf_counter() - start
    in_process = sum(not v.detail.startswith(_WORKER_DETAILS) for v in verdicts)
    return seconds, [v.correct for v in verdicts], in_process


_WORKER_DETAILS = ("math-verify", "rational functions", "all ", "boxed answers")
"""Verdict details that (may) come from the worker; counted as not decided in-process."""


def run_math_verify(pairs: list[Pair]) -> tuple[float, list[bool]]:
    """Seconds for one cold pass of math-verify's ``parse`` + ``verify``, and its verdicts."""
    from math_verify import parse, verify
    from math_verify import parser as mv_parser

    for cached in (mv_parser.parse_latex_cached, mv_parser.parse_expr_cached):
        cached.cache_clear()
    start = time.perf_counter()
    verdicts = [bool(verify(parse(f"\\boxed{{{p.gold}}}"), parse(p.reply))) for p in pairs]
    return time.perf_counter() - start, verdicts


def errors(pairs: list[Pair], verdicts: list[bool]) -> tuple[int, int]:
    """(false positives, false negatives) of ``verdicts`` against the labels."""
    fp = sum(v and not p.equivalent for p, v in zip(pairs, verdicts, strict=True))
    fn = sum(p.equivalent and not v for p, v in zip(pairs, verdicts, strict=True))
    return fp, fn


def bench_checks(repeats: int) -> None:
    """Section 1: checks/s, agreement and FP/FN of ours vs math-verify."""
    from rlvr.rewards.math import warm_up

    pairs = load_pairs()
    warm_up()
    run_ours(pairs)  # untimed: lets sympy and the LaTeX parser build their internal tables
    run_math_verify(pairs)
    ours_t, mv_t = [], []
    for _ in range(repeats):
        seconds, ours, in_process = run_ours(pairs)
        ours_t.append(seconds)
        seconds, mv = run_math_verify(pairs)
        mv_t.append(seconds)
    ours_rate = len(pairs) / statistics.median(ours_t)
    mv_rate = len(pairs) / statistics.median(mv_t)
    positives = sum(p.equivalent for p in pairs)
    negatives = len(pairs) - positives
    answers = [i for i, p in enumerate(pairs) if not p.kind.startswith("reply")]
    print(f"\n== Answer checks: {len(pairs)} labelled pairs ({positives} equivalent), ", end="")
    print(f"median of {repeats} passes with cold caches ==")
    print(f"{'verifier':34} {'checks/s':>9} {'FP':>8} {'FN':>8}   answer-only FP/FN")
    for name, rate, verdicts in (
        ("rlvr check_math_reply", ours_rate, ours),
        ("math-verify parse+verify", mv_rate, mv),
    ):
        fp, fn = errors(pairs, verdicts)
        sub = [pairs[i] for i in answers]
        afp, afn = errors(sub, [verdicts[i] for i in answers])
        print(f"{name:34} {rate:9.0f} {fp:>4}/{negatives:<3} {fn:>4}/{positives:<3}   {afp}/{afn}")
    print(f"ratio (ours / math-verify checks/s): {ours_rate / mv_rate:.2f}x")
    print(f"decided in-process by rlvr's fast paths: {in_process}/{len(pairs)}")
    print(f"per-pass seconds, ours: {_fmt(ours_t)}; math-verify: {_fmt(mv_t)}")
    _print_disagreements(pairs, ours, mv)


def _fmt(values: list[float]) -> str:
    return " ".join(f"{v:.3f}" for v in values)


def _print_disagreements(pairs: list[Pair], ours: list[bool], mv: list[bool]) -> None:
    """Agreement count, and every pair on which the two verifiers differ."""
    differ = [i for i in range(len(pairs)) if ours[i] != mv[i]]
    with_us = sum(ours[i] == pairs[i].equivalent for i in differ)
    print(
        f"verdict agreement: {len(pairs) - len(differ)}/{len(pairs)}; of the {len(differ)} ", end=""
    )
    print(f"disagreements the label sides with rlvr on {with_us}, with math-verify on ", end="")
    print(f"{len(differ) - with_us}")
    for i in differ:
        p = pairs[i]
        print(f"  [{p.kind}] {p.reply!r} vs {p.gold!r}: label={p.equivalent} ours={ours[i]}")


def time_episodes(step: Callable[[int], bool], count: int, repeats: int) -> tuple[float, float]:
    """Median episodes/s of ``step(i)`` over ``count`` episodes, and the share that succeeded."""
    rates, solved = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        solved = sum(step(i) for i in range(count))
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates), solved / count


def rlvr_episodes(count: int, repeats: int) -> tuple[float, float]:
    """``rlvr/Math-v0``: reset(seed=i), then step with the gold answer boxed."""
    import gymnasium as gym

    import rlvr
    from rlvr.rewards.math import clear_caches

    gym.register_envs(rlvr)
    env = gym.make("rlvr/Math-v0")

    def episode(i: int) -> bool:
        if i == 0:
            clear_caches()
        env.reset(seed=i)
        reply = env.unwrapped.oracle_action()  # type: ignore[attr-defined]
        _, reward, terminated, _, info = env.step(reply)
        return bool(terminated and reward == 1.0 and info["success"])

    return time_episodes(episode, count, repeats)


def reasoning_gym_episodes(name: str, count: int, repeats: int) -> tuple[float, float]:
    """A reasoning-gym dataset: generate ``count`` items and score each gold answer."""
    import reasoning_gym

    state: dict[str, object] = {}

    def episode(i: int) -> bool:
        if i == 0:
            state["ds"] = reasoning_gym.create_dataset(name, size=count, seed=1234)
        ds = state["ds"]
        entry = ds[i]  # type: ignore[index]
        return float(ds.score_answer(entry["answer"], entry)) == 1.0  # type: ignore[attr-defined]

    return time_episodes(episode, count, repeats)


def bench_episodes(count: int, repeats: int) -> None:
    """Section 2: episodes/s of the Math env vs reasoning-gym generators."""
    print(f"\n== Episodes/s: generate + score the correct answer, {count} episodes, ", end="")
    print(f"median of {repeats} ==")
    print(f"{'env':42} {'episodes/s':>11} {'solved':>7}")
    runs: list[tuple[str, Callable[[], tuple[float, float]]]] = [
        ("rlvr/Math-v0 (reset + step)", lambda: rlvr_episodes(count, repeats))
    ]
    for name in RG_DATASETS:
        runs.append(
            (f"reasoning_gym {name}", lambda n=name: reasoning_gym_episodes(n, count, repeats))
        )
    for label, run in runs:
        try:
            rate, solved = run()
        except Exception as exc:  # a missing env or dataset is reported, not fatal
            print(f"{label:42} skipped: {type(exc).__name__}: {exc}")
            continue
        print(f"{label:42} {rate:11.1f} {solved:7.2f}")


def main(argv: list[str] | None = None) -> None:
    """Parse the flags and run the sections."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and episodes")
    parser.add_argument("--repeats", type=int, default=None, help="passes per measurement")
    parser.add_argument("--episodes", type=int, default=None, help="episodes per env")
    parser.add_argument("--section", choices=("all", "checks", "episodes"), default="all")
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 5)
    episodes = args.episodes or (30 if args.quick else 200)
    logging.disable(logging.WARNING)
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    if args.section in ("all", "checks"):
        bench_checks(repeats)
    if args.section in ("all", "episodes"):
        bench_episodes(episodes, repeats)


if __name__ == "__main__":
    sys.exit(main())
