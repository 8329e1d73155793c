"""RELEX on a finished run: extrapolate from its first checkpoints and compare with the real ones.

For each target step, ``rlvr relex RUN --observe K --target-step S`` predicts a checkpoint from
the first ``K`` snapshots; this script then measures, against the real checkpoint of step ``S``
(where the run saved one):

* the weight-space error ``||theta_pred - theta_S|| / ||theta_S - theta_0||`` (over all
  tensors), next to the same error for simply keeping the last observed checkpoint;
* held-out success (greedy, ``--episodes`` problems of the run's scenario, evaluated through
  ``rlvr train ... run.steps=0``) of the predicted and of the real checkpoints.

    python benchmarks/relex_experiment.py runs/relex-grpo --scenario scenarios/warmup.yaml \\
        --observe 4 --targets 10 20 40 80 160 --out docs/results/relex

Overrides after ``--`` go to every evaluation (``-- 'envs.0.solver={}'`` for a scenario whose
warm-up settings do not apply to a saved model). Writes ``summary.json``, ``summary.md`` and
``relex.png`` to ``--out``. Evaluations already made (``RUN/eval-relex-S``,
``RUN/eval-real-S``) are read back.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file


def checkpoint(run: Path, step: int) -> Path:
    return run / "checkpoints" / f"step-{step:06d}" / "model"


def distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return float(sum(((a[k].float() - b[k].float()) ** 2).sum() for k in a) ** 0.5)


def held_out(scenario: Path, model: Path, out: Path, episodes: int, overrides: list[str]) -> float:
    summary = out / "eval.json"
    if not summary.exists():
        command = [
            sys.executable, "-m", "rlvr", "train", str(scenario), f"model.name={model}",
            "sft.steps=0", "run.steps=0", f"eval.episodes={episodes}", "run.progress=false",
            f"run.output_dir={out}", *overrides,
        ]  # fmt: skip
        subprocess.run(command, check=True)
    return float(json.loads(summary.read_text())["before"]["success_rate"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--scenario", type=Path, required=True)
    parser.add_argument("--observe", type=int, required=True)
    parser.add_argument("--targets", type=int, nargs="+", required=True)
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("overrides", nargs="*", help="scenario overrides for the evaluations")
    args = parser.parse_intermixed_args(argv)
    steps = sorted(int(p.name.split("-")[1]) for p in (args.run / "checkpoints").glob("step-*"))
    observed = steps[: args.observe]
    base = load_file(str(checkpoint(args.run, observed[0]) / "model.safetensors"))
    last = load_file(str(checkpoint(args.run, observed[-1]) / "model.safetensors"))
    rows = []
    for step in args.targets:
        predicted_dir = args.run / "relex" / f"step-{step:06d}"
        command = [sys.executable, "-m", "rlvr", "relex", str(args.run), "--observe",
                   str(args.observe), "--target-step", str(step), "--quiet"]  # fmt: skip
        subprocess.run(command, check=True)
        predicted = load_file(str(predicted_dir / "model.safetensors"))
        row: dict[str, float | int | None] = {
            "step": step,
            "relex_success": held_out(
                args.scenario,
                predicted_dir,
                args.run / f"eval-relex-{step}",
                args.episodes,
                args.overrides,
            ),
            "real_success": None,
            "relex_error": None,
            "keep_last_error": None,
        }
        if step in steps:
            real = load_file(str(checkpoint(args.run, step) / "model.safetensors"))
            moved = distance(real, base)
            row["relex_error"] = distance(predicted, real) / moved
            row["keep_last_error"] = distance(last, real) / moved
            row["real_success"] = held_out(
                args.scenario, checkpoint(args.run, step), args.run / f"eval-real-{step}",
                args.episodes, args.overrides,
            )  # fmt: skip
        rows.append(row)
    write(args, observed, rows)


def _cell(value: float | int | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def write(args: argparse.Namespace, observed: list[int], rows: list[dict]) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    lines = [
        f"observed steps {observed}; errors relative to the real distance moved since step "
        f"{observed[0]}",
        "",
        "| target step | held-out, RELEX | held-out, real | weight error, RELEX | "
        "weight error, keep last observed |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['step']} | {_cell(row['relex_success'])} | {_cell(row['real_success'])} | "
            f"{_cell(row['relex_error'])} | {_cell(row['keep_last_error'])} |"
        )
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    (args.out / "summary.json").write_text(
        json.dumps({"observed": observed, "rows": rows}, indent=1)
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    axes[0].plot([r["step"] for r in rows], [r["relex_success"] for r in rows], "o-", label="RELEX")
    real = [r for r in rows if r["real_success"] is not None]
    axes[0].plot([r["step"] for r in real], [r["real_success"] for r in real], "s-", label="real")
    axes[0].set_ylabel("held-out success")
    axes[1].plot([r["step"] for r in real], [r["relex_error"] for r in real], "o-", label="RELEX")
    axes[1].plot([r["step"] for r in real], [r["keep_last_error"] for r in real], "s-",
                 label=f"keep step {observed[-1]}")  # fmt: skip
    axes[1].set_ylabel("weight error / distance moved")
    for ax in axes:
        ax.set_xlabel("step")
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "relex.png", dpi=90)
    plt.close(fig)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
