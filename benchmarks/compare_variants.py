"""Run a scenario's variants over several seeds and compare their curves and held-out results.

Each variant is a named list of scenario overrides (its baseline is usually the scenario as
written); every variant runs with every seed (``run.seed``: task draws and sampling), so two
variants see the same tasks at the same step. ``--common`` overrides apply to every run (e.g.
``model.name=PATH sft.steps=0`` to start all of them from one saved warm-up).

    python benchmarks/compare_variants.py scenarios/delta.yaml --name delta \\
        --variant 'delta=' --variant "dapo=algorithm.token_credit={name: none}" \\
        --metrics success entropy --seeds 0 1 2 --common run.steps=30

Writes to ``--out`` (default ``docs/results/<name>``): ``curves.png`` (each metric per step,
mean over seeds with the min-max band), ``summary.json`` and ``summary.md`` (held-out success
before and after, and each metric averaged over the last ``--window`` steps, mean and standard
deviation over seeds; ``--held-out mean_reward components/NAME`` adds those held-out figures
before and after). Runs go to ``runs/compare/<name>/<variant>/seed<k>`` with the overrides
they ran with; a finished run with the same overrides is read back, not redone (its wall time
is that of the last invocation that trained it).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def parse_variant(text: str) -> tuple[str, list[str]]:
    name, _, overrides = text.partition("=")
    if not name:
        raise argparse.ArgumentTypeError(f"a variant is NAME=OVERRIDES, got {text!r}")
    return name, shlex.split(overrides)


def run(scenario: Path, out: Path, seed: int, overrides: list[str]) -> float:
    """Train one (variant, seed) unless it already finished; the wall time in seconds."""
    wall = out / "wall_seconds.txt"
    summary = out / "eval.json"
    recorded = out / "overrides.json"
    done = summary.exists() and "after" in json.loads(summary.read_text()) and wall.exists()
    if done and recorded.exists() and json.loads(recorded.read_text()) == overrides:
        return float(wall.read_text())
    if out.exists() and not (recorded.exists() and json.loads(recorded.read_text()) == overrides):
        raise SystemExit(f"{out} holds a run with other overrides; remove it to rerun")
    out.mkdir(parents=True, exist_ok=True)
    recorded.write_text(json.dumps(overrides))
    command = [
        sys.executable, "-m", "rlvr", "train", str(scenario), f"run.seed={seed}",
        f"run.output_dir={out}", "run.progress=false", "run.resume=true", *overrides,
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True)
    seconds = time.perf_counter() - start
    wall.write_text(f"{seconds:.1f}\n")
    return seconds


def curves(out: Path, metrics: list[str]) -> dict[str, list[float]]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line]
    return {m: [float(r.get(m, float("nan"))) for r in rows] for m in metrics}


def held_out(evaluation: dict[str, Any], phase: str, key: str) -> float:
    """A held-out figure of ``eval.json``'s ``phase`` (``before`` or ``after``): ``mean_reward``
    or ``components/NAME``, averaged over the envs that report it (NaN where none does)."""
    values = []
    for figures in evaluation[phase]["per_env"].values():
        if key.startswith("components/"):
            value = figures.get("components", {}).get(key.removeprefix("components/"))
        else:
            value = figures.get(key)
        if isinstance(value, int | float):
            values.append(float(value))
    return statistics.mean(values) if values else float("nan")


def _mean_sd(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if np.isfinite(v)]
    if not finite:
        return float("nan"), float("nan")
    return statistics.mean(finite), statistics.stdev(finite) if len(finite) > 1 else 0.0


def summarize(
    results: dict[str, list[dict[str, Any]]],
    metrics: list[str],
    window: int,
    figures: Sequence[str] = (),
) -> str:
    header = [
        "variant",
        "held-out before",
        "held-out after",
        *[f"held-out {key} {phase}" for key in figures for phase in ("before", "after")],
        *[f"{m} (last {window})" for m in metrics],
        "wall s",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for variant, runs in results.items():
        cells = [variant]
        for key in ("before", "after"):
            mean, sd = _mean_sd([r[key] for r in runs])
            cells.append(f"{mean:.3f} ± {sd:.3f}")
        for key in figures:
            for phase in ("before", "after"):
                mean, sd = _mean_sd([r["held_out"][key][phase] for r in runs])
                cells.append(f"{mean:.3f} ± {sd:.3f}")
        for metric in metrics:
            mean, sd = _mean_sd([float(np.nanmean(r["curves"][metric][-window:])) for r in runs])
            cells.append(f"{mean:.3f} ± {sd:.3f}")
        cells.append(f"{statistics.mean(r['wall_seconds'] for r in runs):.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    seeds = len(next(iter(results.values())))
    lines.append(f"\nmean ± standard deviation over {seeds} seeds")
    return "\n".join(lines)


def plot(
    results: dict[str, list[dict[str, Any]]], metrics: list[str], path: Path, title: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for variant, runs in results.items():
            length = min(len(r["curves"][metric]) for r in runs)
            values = np.array([r["curves"][metric][:length] for r in runs])
            steps = np.arange(1, length + 1)
            ax.plot(steps, np.nanmean(values, axis=0), label=variant)
            ax.fill_between(steps, np.nanmin(values, axis=0), np.nanmax(values, axis=0), alpha=0.2)
        ax.set_xlabel("step")
        ax.set_title(metric, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", type=Path)
    parser.add_argument("--name", required=True, help="the experiment's name")
    parser.add_argument("--variant", type=parse_variant, action="append", required=True,
                        help="NAME=OVERRIDES (shell-quoted, may be empty)")  # fmt: skip
    parser.add_argument("--metrics", nargs="+", default=["success"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--common", nargs="*", default=[], help="overrides for every run")
    parser.add_argument("--held-out", nargs="*", default=[],
                        help="held-out figures: mean_reward, components/NAME")  # fmt: skip
    parser.add_argument("--window", type=int, default=10, help="last steps averaged")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    out = args.out or Path("docs") / "results" / args.name
    results: dict[str, list[dict[str, Any]]] = {}
    for variant, overrides in args.variant:
        results[variant] = []
        for seed in args.seeds:
            folder = Path("runs") / "compare" / args.name / variant / f"seed{seed}"
            wall = run(args.scenario, folder, seed, [*args.common, *overrides])
            evaluation = json.loads((folder / "eval.json").read_text())
            results[variant].append(
                {
                    "seed": seed,
                    "before": evaluation["before"]["success_rate"],
                    "after": evaluation["after"]["success_rate"],
                    "wall_seconds": wall,
                    "held_out": {
                        key: {
                            phase: held_out(evaluation, phase, key) for phase in ("before", "after")
                        }
                        for key in args.held_out
                    },
                    "curves": curves(folder, args.metrics),
                }
            )
    out.mkdir(parents=True, exist_ok=True)
    table = summarize(results, args.metrics, args.window, args.held_out)
    command = " ".join(
        shlex.quote(a)
        for a in ["python", "benchmarks/compare_variants.py", *(argv or sys.argv[1:])]
    )
    (out / "summary.md").write_text(f"{table}\n\nRerun: `{command}`\n")
    (out / "summary.json").write_text(
        json.dumps({"scenario": str(args.scenario), "results": results}, indent=1)
    )
    plot(results, args.metrics, out / "curves.png", f"{args.name}: {args.scenario}")
    print(table)


if __name__ == "__main__":
    main()
