"""Run a training scenario over several seeds and report held-out success before and after RL.

Each seed changes everything random in the run: the tiny model's initial weights
(``model.tiny.seed``), the warm-up's batches, the task seeds and the sampling
(``run.seed``). Evaluation seeds stay the same, so before/after differences are paired.

    python benchmarks/train_over_seeds.py scenarios/quickstart.yaml --seeds 0 1 2
    python benchmarks/train_over_seeds.py scenarios/math_retries.yaml --seeds 0 1 2 -- run.steps=40

Prints a markdown table (one row per seed, then mean and standard deviation of the gain) and
writes it with the per-seed ``eval.json`` summaries to ``--out`` (default
``runs/seeds/<scenario>/summary.json``). Runs that already finished are read back, not redone.
``--plot PATH`` draws the ``--metrics`` curves per step (mean over seeds, min-max band).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def run_seed(scenario: Path, seed: int, root: Path, overrides: list[str]) -> dict[str, Any]:
    out = root / f"seed{seed}"
    summary = out / "eval.json"
    if not (summary.exists() and "after" in json.loads(summary.read_text())):
        command = [
            sys.executable, "-m", "rlvr", "train", str(scenario),
            f"run.seed={seed}", f"model.tiny.seed={seed}", f"run.output_dir={out}",
            "run.progress=false", *overrides,
        ]  # fmt: skip
        start = time.perf_counter()
        subprocess.run(command, check=True)
        (out / "wall_seconds.txt").write_text(f"{time.perf_counter() - start:.1f}\n")
    data: dict[str, Any] = json.loads(summary.read_text())
    wall = out / "wall_seconds.txt"
    data["wall_seconds"] = float(wall.read_text()) if wall.exists() else None
    return data


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, help="where the runs go")
    parser.add_argument("--plot", type=Path, help="PNG of the training curves over seeds")
    parser.add_argument("--metrics", nargs="+", default=["success", "reward"],
                        help="metrics.jsonl keys to plot")  # fmt: skip
    parser.add_argument("overrides", nargs="*", help="scenario overrides (after --)")
    args = parser.parse_args(argv)
    root = args.out or Path("runs") / "seeds" / args.scenario.stem
    rows = []
    for seed in args.seeds:
        data = run_seed(args.scenario, seed, root, args.overrides)
        before, after = data["before"]["success_rate"], data["after"]["success_rate"]
        rows.append(
            {
                "seed": seed,
                "before": before,
                "after": after,
                "gain": after - before,
                "episodes": data["after"]["episodes"],
                "wall_seconds": data["wall_seconds"],
            }
        )
    print(f"\n{args.scenario} ({rows[0]['episodes']} held-out episodes per evaluation)\n")
    print("| seed | success before RL | success after RL | gain | wall time |")
    print("|---|---|---|---|---|")
    for row in rows:
        wall = f"{row['wall_seconds']:.0f} s" if row["wall_seconds"] else "n/a"
        print(f"| {row['seed']} | {row['before']:.3f} | {row['after']:.3f} | "
              f"{row['gain']:+.3f} | {wall} |")  # fmt: skip
    gains = [row["gain"] for row in rows]
    spread = statistics.stdev(gains) if len(gains) > 1 else float("nan")
    print(f"\nmean gain {statistics.mean(gains):+.3f}, std over seeds {spread:.3f}")
    root.mkdir(parents=True, exist_ok=True)
    summary = {"scenario": str(args.scenario), "rows": rows}
    (root / "summary.json").write_text(json.dumps(summary, indent=2))
    if args.plot:
        from compare_variants import curves, plot  # a sibling script of this one

        runs = [{"curves": curves(root / f"seed{seed}", args.metrics)} for seed in args.seeds]
        plot({args.scenario.stem: runs}, args.metrics, args.plot, f"{args.scenario} over seeds")


if __name__ == "__main__":
    main()
