"""Benchmark GRPO training throughput and memory: rlvr's trainer vs TRL's ``GRPOTrainer``.

Both trainers get the same :class:`Settings`: the same tiny local model, the same prompts
(``rlvr/Math-v0`` at difficulty 0, episodes ``seed .. seed + prompts_per_step * steps - 1``,
scored by ``rlvr.integrations.trl.reward_functions``), the same group size ``G``, prompts per
step, completion length, steps, learning rate, temperature (top-p 1, no top-k) and seed, on
CPU with ``threads`` torch threads. Every completion runs to ``max_completion_length`` tokens
(EOS is suppressed until then), so both trainers generate and train on exactly the same
number of tokens whatever the random model samples.

Each run is its own subprocess, so the peak RSS it reports (``ru_maxrss`` of the child,
model and trainer included) belongs to that trainer alone. ``completions/s`` is
``steps * prompts_per_step * G`` over the wall time of the training steps only (model
loading and trainer construction excluded). Every trainer runs ``--repeats`` times; the
script prints the medians and the ratio rlvr / TRL.

TRL side: ``GRPOConfig`` with ``beta=0`` (no reference model, TRL's default), one optimizer
step per generation batch, activation checkpointing off, ``use_vllm=False``, no bf16/fp16,
no evaluation, no saving, no logging, ``report_to=[]``.

    python benchmarks/bench_trainer.py                  # defaults below, 3 repeats
    python benchmarks/bench_trainer.py --only trl --repeats 5 --steps 4
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

ENV_ID = "rlvr/Math-v0"
DIFFICULTY = 0
RESULT_TAG = "BENCH_RESULT "


@dataclass(frozen=True)
class Settings:
    """What both trainers are given; one JSON object on the child's command line."""

    model_dir: str
    """The tiny model (``rlvr.agents.tiny.ensure_tiny_model``); both trainers load it."""
    group_size: int = 8
    """G: completions sampled per prompt."""
    prompts_per_step: int = 4
    """Prompts per optimizer step (a step trains on ``prompts_per_step * G`` completions)."""
    max_completion_length: int = 64
    """Tokens per completion; every completion has exactly this many (EOS suppressed before)."""
    steps: int = 4
    """Optimizer steps timed."""
    lr: float = 1e-5
    """AdamW learning rate (constant)."""
    temperature: float = 1.0
    """Sampling temperature (top-p 1.0, top-k off)."""
    seed: int = 0
    """Torch seed and the first episode seed of the prompts."""
    threads: int = 1
    """torch.set_num_threads in the child."""

    @property
    def completions(self) -> int:
        return self.steps * self.prompts_per_step * self.group_size


def prompt_rows(settings: Settings) -> list[dict[str, Any]]:
    """The prompts both trainers use, in order: conversational ``prompt``, ``seed``,
    ``task_id`` (rows of :func:`rlvr.integrations.trl.make_dataset`)."""
    from rlvr.integrations.trl import make_dataset

    n = settings.prompts_per_step * settings.steps
    return make_dataset(ENV_ID, n, settings.seed, difficulty=DIFFICULTY).to_list()


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def run_rlvr(settings: Settings) -> dict[str, float]:
    """Train with ``rlvr.training.train``; returns ``{"seconds", "completions"}`` of the timed
    steps: the rollout and update phases the trainer itself times (``time/rollout`` and
    ``time/update`` in its metrics), so model loading, logging and the final checkpoint are
    excluded as TRL's construction is. The trainer draws its own task seeds: the same env and
    level as TRL's prompts, not the same problems."""
    from rlvr.training.config import parse_config
    from rlvr.training.trainer import train

    torch_seed(settings.seed)
    run_dir = tempfile.mkdtemp(prefix="bench-rlvr-")
    config = parse_config(
        {
            "model": {"name": settings.model_dir},
            "envs": [{"id": ENV_ID, "difficulty": DIFFICULTY}],
            "rollout": {
                "group_size": settings.group_size,
                "prompts_per_step": settings.prompts_per_step,
                "max_new_tokens": settings.max_completion_length,
                "max_total_tokens": 4 * settings.max_completion_length + 512,
                "temperature": settings.temperature,
                "ignore_eos": True,
            },
            "algorithm": {"lr": settings.lr, "beta": 0.0},
            "eval": {"episodes": 0},
            "run": {
                "steps": settings.steps,
                "seed": settings.seed,
                "output_dir": run_dir,
                "save_every": 10**6,
                "tensorboard": False,
                "plots": False,
                "progress": False,
                "samples_per_step": 0,
            },
        }
    )
    train(config)
    with open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    records = [json.loads(line) for line in lines]
    seconds = sum(r["time/rollout"] + r["time/update"] for r in records)
    completions = sum(r["rollouts"] for r in records)
    if len(records) != settings.steps or completions != settings.completions:
        raise RuntimeError(f"rlvr ran {len(records)} steps and {completions} completions")
    return {"seconds": seconds, "completions": float(completions)}


def torch_seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def run_trl(settings: Settings) -> dict[str, float]:
    """Train with TRL's ``GRPOTrainer``; returns ``{"seconds", "completions"}`` of the timed
    steps (``trainer.train()``; model loading and trainer construction are not timed)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from rlvr.integrations.trl import reward_functions, reward_weights

    torch.manual_seed(settings.seed)
    model = AutoModelForCausalLM.from_pretrained(settings.model_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(settings.model_dir)
    funcs = reward_functions(ENV_ID, difficulty=DIFFICULTY)
    config = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="bench-trl-"),  # nothing is saved there
        per_device_train_batch_size=settings.prompts_per_step * settings.group_size,
        gradient_accumulation_steps=1,
        num_generations=settings.group_size,
        max_completion_length=settings.max_completion_length,
        max_steps=settings.steps,
        learning_rate=settings.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        temperature=settings.temperature,
        top_p=1.0,
        top_k=0,
        generation_kwargs={"min_new_tokens": settings.max_completion_length},
        beta=0.0,
        seed=settings.seed,
        shuffle_dataset=False,
        gradient_checkpointing=False,
        use_vllm=False,
        bf16=False,
        fp16=False,
        use_cpu=True,
        eval_strategy="no",
        save_strategy="no",
        logging_strategy="no",
        report_to=[],
        disable_tqdm=True,
        reward_weights=reward_weights(funcs),
    )
    trainer = GRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=funcs,
        args=config,
        train_dataset=Dataset.from_list(prompt_rows(settings)),
    )
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    if trainer.state.global_step != settings.steps:
        raise RuntimeError(f"TRL ran {trainer.state.global_step} steps, not {settings.steps}")
    return {"seconds": seconds, "completions": float(settings.completions)}


TRAINERS = {"rlvr": run_rlvr, "trl": run_trl}


def child(trainer: str, settings: Settings) -> None:
    """Run one trainer once and print its figures as one tagged JSON line."""
    import torch

    torch.set_num_threads(settings.threads)
    try:
        figures: dict[str, Any] = dict(TRAINERS[trainer](settings))
    except NotImplementedError as error:
        figures = {"error": f"not implemented: {error}"}
    figures["peak_rss_mib"] = peak_rss_mib()
    print(RESULT_TAG + json.dumps(figures), flush=True)


def run_once(trainer: str, settings: Settings) -> dict[str, Any]:
    """One run of ``trainer`` in a fresh subprocess."""
    command = [sys.executable, __file__, "--child", trainer, "--settings"]
    command.append(json.dumps(dataclasses.asdict(settings)))
    env = {**os.environ, "TRL_EXPERIMENTAL_SILENCE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            result: dict[str, Any] = json.loads(line[len(RESULT_TAG) :])
            return result
    tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
    raise RuntimeError(f"{trainer} run failed (exit {done.returncode}): " + " | ".join(tail))


def summarize(runs: list[dict[str, Any]]) -> dict[str, float] | None:
    """Medians over the runs: completions/s, seconds and peak RSS; None if not implemented."""
    if any("error" in run for run in runs):
        return None
    return {
        "completions_per_s": statistics.median(r["completions"] / r["seconds"] for r in runs),
        "seconds": statistics.median(r["seconds"] for r in runs),
        "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in runs),
    }


def report(settings: Settings, medians: dict[str, dict[str, float] | None], repeats: int) -> None:
    print(
        f"GRPO on {ENV_ID} d{DIFFICULTY}: G={settings.group_size}, "
        f"{settings.prompts_per_step} prompts/step, {settings.steps} steps, "
        f"{settings.max_completion_length} tokens/completion, {settings.threads} thread(s); "
        f"median of {repeats} runs ({platform.machine()}, Python {platform.python_version()})"
    )
    print(f"{'trainer':<8} {'completions/s':>14} {'train s':>9} {'peak RSS MiB':>13}")
    for name, figures in medians.items():
        if figures is None:
            print(f"{name:<8} {'not implemented':>14}")
            continue
        print(
            f"{name:<8} {figures['completions_per_s']:>14.2f} {figures['seconds']:>9.2f} "
            f"{figures['peak_rss_mib']:>13.0f}"
        )
    ours, theirs = medians.get("rlvr"), medians.get("trl")
    if ours and theirs:
        speed = ours["completions_per_s"] / theirs["completions_per_s"]
        memory = ours["peak_rss_mib"] / theirs["peak_rss_mib"]
        print(f"rlvr / TRL: completions/s x{speed:.2f}, peak RSS x{memory:.2f}")
    else:
        print("rlvr / TRL: n/a (a side is not implemented)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--child", choices=sorted(TRAINERS), help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=sorted(TRAINERS), help="run one trainer")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model-dir", help="default: the cached tiny model")
    defaults = Settings(model_dir="")
    for field in dataclasses.fields(Settings):
        if field.name != "model_dir":
            flag = "--" + field.name.replace("_", "-")
            value = getattr(defaults, field.name)
            parser.add_argument(flag, type=type(value), default=value)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, Settings(**json.loads(args.settings)))
        return
    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    from rlvr.agents.tiny import ensure_tiny_model

    model_dir = args.model_dir or str(ensure_tiny_model())
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(Settings)}
    settings = Settings(**{**values, "model_dir": model_dir})
    names = [args.only] if args.only else ["rlvr", "trl"]
    medians: dict[str, dict[str, float] | None] = {}
    for name in names:
        runs = []
        for _ in range(args.repeats):
            runs.append(run_once(name, settings))
            if "error" in runs[-1]:
                break
        medians[name] = summarize(runs)
    report(settings, medians, args.repeats)


if __name__ == "__main__":
    main()
