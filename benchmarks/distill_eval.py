"""Held-out reverse KL of a distillation run's checkpoints to their teacher (full rollouts).

TOPD's measure (techniques.md, section 4): however short the horizon a run trained with, each
saved student samples complete replies (up to ``--max-new-tokens``) to held-out problems, and
the exact full-vocabulary reverse KL ``sum_v pi_S(v) (log pi_S(v) - log pi_T(v))`` to the
teacher is averaged over every sampled token. Printed per checkpoint with the student tokens
the run had generated and its wall time by then (from ``metrics.jsonl``).

    python benchmarks/distill_eval.py runs/compare/opd/*/seed0 \\
        --teacher runs/warm/checkpoints/step-000000/model --episodes 64 \\
        --plot docs/results/opd/reverse_kl.png

Writes ``distill_eval.json`` into each run folder (read back instead of recomputed when the
teacher, episodes, length, seed and checkpoints are the same),
and with ``--plot`` one figure: held-out reverse KL against the student tokens generated and
against the wall time, one line per run (labelled by its folder's parent, the variant).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import torch
import yaml

import rlvr  # noqa: F401  (registers the envs)
from rlvr.training.distill import reverse_kl_full

EVAL_SEED = 1 << 30


def prompts(
    env_id: str, kwargs: dict[str, Any], episodes: int, difficulty: int
) -> list[list[dict[str, str]]]:
    chats = []
    for index in range(episodes):
        env = gym.make(env_id, **kwargs)
        observation, _ = env.reset(seed=EVAL_SEED + index, options={"difficulty": difficulty})
        system = cast(Any, env.unwrapped).system_prompt()
        chats.append(
            [{"role": "system", "content": system}, {"role": "user", "content": observation}]
        )
        env.close()
    return chats


@torch.no_grad()
def held_out_reverse_kl(
    student: Any,
    teacher: Any,
    tokenizer: Any,
    chats: list[list[dict[str, str]]],
    max_new_tokens: int,
    seed: int,
) -> float:
    """Mean exact reverse KL (nats per sampled token) over the student's samples of ``chats``."""
    torch.manual_seed(seed)
    total, tokens = 0.0, 0.0
    for chat in chats:
        prompt = tokenizer.apply_chat_template(
            chat, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )["input_ids"]
        ids = student.generate(
            prompt,
            do_sample=True,
            temperature=1.0,
            top_p=1.0,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
        )
        mask = torch.zeros(1, ids.shape[1] - 1)
        mask[:, prompt.shape[1] - 1 :] = 1.0  # positions that predict the sampled tokens
        kl = reverse_kl_full(student(ids).logits[:, :-1], teacher(ids).logits[:, :-1], mask)
        total += float(kl.sum())
        tokens += float(mask.sum())
    return total / max(tokens, 1.0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", type=Path, help="where to write the figure")
    args = parser.parse_args(argv)
    results = {}
    for run in args.runs:
        saved = run / "distill_eval.json"
        key = {
            "teacher": args.teacher,
            "episodes": args.episodes,
            "max_new_tokens": args.max_new_tokens,
            "seed": args.seed,
            "checkpoints": sorted(p.name for p in (run / "checkpoints").glob("step-*")),
        }
        if saved.exists() and json.loads(saved.read_text()).get("key") == key:
            results[run] = json.loads(saved.read_text())["rows"]
            continue
        print(run)
        results[run] = evaluate_run(run, args)
        saved.write_text(json.dumps({"key": key, "rows": results[run]}, indent=1))
    if args.plot:
        plot(results, args.plot)


def plot(results: dict[Path, list[dict[str, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for run, rows in results.items():
        label = f"{run.parent.name}/{run.name}"
        kl = [r["reverse_kl"] for r in rows]
        axes[0].plot([r["student_tokens"] for r in rows], kl, marker="o", label=label)
        axes[1].plot([r["seconds"] for r in rows], kl, marker="o", label=label)
    axes[0].set_xlabel("student tokens generated")
    axes[1].set_xlabel("training time (s: rollouts + updates)")
    for ax in axes:
        ax.set_ylabel("held-out reverse KL (nats/token)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def evaluate_run(run: Path, args: argparse.Namespace) -> list[dict[str, float]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = yaml.safe_load((run / "config.yaml").read_text())
    env = config["envs"][0]
    chats = prompts(env["id"], env.get("kwargs") or {}, args.episodes, env.get("difficulty") or 0)
    teacher = AutoModelForCausalLM.from_pretrained(args.teacher).eval()
    metrics = [
        json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line
    ]
    rows = []
    for checkpoint in sorted((run / "checkpoints").glob("step-*")):
        step = int(checkpoint.name.split("-")[1])
        student = AutoModelForCausalLM.from_pretrained(checkpoint / "model").eval()
        tokenizer = AutoTokenizer.from_pretrained(checkpoint / "model")
        done = [m for m in metrics if m["step"] <= step]
        rows.append(
            {
                "step": step,
                "reverse_kl": held_out_reverse_kl(
                    student, teacher, tokenizer, chats, args.max_new_tokens, args.seed
                ),
                "student_tokens": sum(m["completion_tokens"] * m["rollouts"] for m in done),
                "seconds": sum(m["time/rollout"] + m["time/update"] for m in done),
            }
        )
        row = rows[-1]
        print(
            f"step {step:4d}  reverse KL {row['reverse_kl']:.4f} nats/token  "
            f"student tokens {row['student_tokens']:.0f}  time {row['seconds']:.1f} s"
        )
    return rows


if __name__ == "__main__":
    main()
