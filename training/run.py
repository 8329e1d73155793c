"""Everything around the loop: start or resume a run, warm up, evaluate, save, finish.

:func:`start_run` leaves a :class:`RunState` that the loop in :mod:`rlvr.training.trainer`
drives. A fresh run loads the policy, runs the SFT warm-up, saves checkpoint 0 and evaluates
it ("before"); a resumed run loads its newest checkpoint, rewinds the logs to that step and
reads "before" back from ``eval.json``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm.auto import tqdm

from rlvr.envs.curriculum import Curriculum
from rlvr.training.batch import TrainBatch
from rlvr.training.checkpoint import (
    list_checkpoints,
    remove_partial,
    restore_rng,
    save_checkpoint,
)
from rlvr.training.config import TrainConfig
from rlvr.training.deltas import DeltaRecorder
from rlvr.training.distributed import (
    DistInfo,
    barrier,
    broadcast_object,
    gather_objects,
    init_distributed,
    wrap,
)
from rlvr.training.generation import SamplingSettings
from rlvr.training.policy import Policy, Reference, load_policy, resolve_model_source
from rlvr.training.remote_generation import WeightSync, completions_backend, no_weight_sync
from rlvr.training.reward_sources import RewardMix
from rlvr.training.rollout import (
    EnvPool,
    Rollout,
    RolloutCollector,
    RolloutGroup,
    RolloutLimits,
    SamplerFactory,
)
from rlvr.training.runlog import RunLog, plot_metrics
from rlvr.training.sft import batches, sft_examples, sft_loss


@dataclass
class RunState:
    """The live objects of a run (built by :func:`start_run`)."""

    config: TrainConfig
    root: Path
    dist: DistInfo
    device: torch.device
    policy: Policy
    trainable: Any
    """The module the loss runs through (DDP-wrapped under torchrun)."""
    parameters: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    collector: RolloutCollector
    reference: Reference | None
    log: RunLog | None
    rewards: RewardMix
    """The reward sources of ``algorithm.rewards`` (their state is checkpointed)."""
    curricula: dict[str, Curriculum] = field(default_factory=dict)
    step: int = 0
    before: dict[str, Any] | None = None
    deltas: DeltaRecorder | None = None
    """Records each step's parameter change when ``run.save_deltas`` is on (main process)."""
    weight_sync: WeightSync = no_weight_sync
    """Makes the rollout sampler use the current weights (a push to the inference server)."""

    def sync_weights(self) -> None:
        """Hand the current policy to the sampler (main process), then wait for everyone."""
        if self.dist.is_main:
            self.weight_sync(self.policy.model, self.policy.tokenizer)
        barrier(self.dist)

    def close(self) -> None:
        """Release threads, envs and log writers (after a failure; :func:`finish_run` does it
        on success)."""
        self.collector.close()
        if self.log is not None:
            self.log.close()

    def record_delta(self, step: int) -> None:
        """Append this step's parameter change to ``deltas/`` (when recording)."""
        if self.deltas is not None:
            self.deltas.record(self.policy.model.named_parameters(), step)

    def reference_logprobs(self, batch: TrainBatch, temperature: float) -> torch.Tensor | None:
        """Reference log-probs of the batch's targets, (N, L-1); ``None`` without a KL term."""
        if self.reference is None:
            return None
        return self.reference.logprobs(batch.ids, batch.attention, temperature, batch.mask)

    def report_failures(self, step: int, groups: list[RolloutGroup]) -> None:
        """Groups whose env failed: raised (``on_env_error: raise``) or logged."""
        if self.config.rollout.on_env_error == "raise" and groups:
            raise RuntimeError(f"an env failed at step {step + 1}: {groups[0].errors[0]}")
        self.log_failures(step, groups)

    def log_failures(self, step: int, groups: list[RolloutGroup]) -> None:
        """Write dropped groups to ``failures.jsonl`` (each rollout's ``error`` says why)."""
        if self.log is not None and groups:
            self.log.failures(step + 1, [r for g in groups for r in g.rollouts])

    def log_step(self, step: int, metrics: dict[str, Any], rollouts: list[Rollout]) -> None:
        if self.log is None:
            return
        self.log.log(step, metrics)
        run = self.config.run
        if step % run.sample_every == 0 and run.samples_per_step and rollouts:
            self.log.samples(step, rollouts[: run.samples_per_step])


def _curricula(config: TrainConfig) -> dict[str, Curriculum]:
    out = {}
    for index, env in enumerate(config.envs):
        if env.curriculum is not None:
            c = env.curriculum
            out[env.id] = Curriculum(
                start=c.start,
                episodes_per_check=c.episodes_per_check,
                accuracy_threshold=c.accuracy_threshold,
                window=c.window,
                seed=config.run.seed * 7919 + index,
            )
    return out


def _optimizer(
    config: TrainConfig, parameters: list[torch.nn.Parameter]
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    algo = config.algorithm
    optimizer: torch.optim.Optimizer = (
        torch.optim.AdamW(parameters, lr=algo.lr, weight_decay=algo.weight_decay)
        if algo.optimizer == "adamw"
        else torch.optim.SGD(
            parameters, lr=algo.lr, momentum=algo.sgd_momentum, weight_decay=algo.weight_decay
        )
    )
    warmup = algo.warmup_steps

    def factor(step: int) -> float:
        return min(1.0, (step + 1) / warmup) if warmup else 1.0

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def start_run(config: TrainConfig) -> RunState:
    """Set up (or resume) the run described by ``config``."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    info, device = init_distributed(config.model.device)
    if config.rollout.prompts_per_step % info.world_size:
        raise ValueError(
            f"rollout.prompts_per_step ({config.rollout.prompts_per_step}) must be a multiple "
            f"of the number of processes ({info.world_size})"
        )
    root = config.output_dir
    # refuse before anything is written: the folder's run (config.yaml, logs) stays as it was
    if not config.run.resume and list_checkpoints(root):
        raise ValueError(
            f"{root} already holds a run; resume it (run.resume=true) or choose a new "
            "run.output_dir"
        )
    log = None
    if info.is_main:
        root.mkdir(parents=True, exist_ok=True)
        remove_partial(root)
        (root / "config.yaml").write_text(
            yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), encoding="utf-8"
        )
        log = RunLog(root, tensorboard=config.run.tensorboard)
        # build the tiny model once, before the others load
        resolve_model_source(config.model, envs=config.envs)
    barrier(info)
    checkpoints = list_checkpoints(root) if config.run.resume else []
    latest = checkpoints[-1] if checkpoints else None
    policy = load_policy(
        config.model, device=str(device), source=_source(config, latest), envs=config.envs
    )
    parameters = [p for p in policy.model.parameters() if p.requires_grad]
    optimizer, scheduler = _optimizer(config, parameters)
    trainable = wrap(info, policy.model, device)
    curricula = _curricula(config)
    sampler_factory, weight_sync = _backend(config)
    state = RunState(
        config=config,
        root=root,
        dist=info,
        device=device,
        policy=policy,
        trainable=trainable,
        parameters=parameters,
        optimizer=optimizer,
        scheduler=scheduler,
        collector=_collector(config, policy, sampler_factory),
        reference=None,
        log=log,
        rewards=RewardMix(config.algorithm.rewards),
        curricula=curricula,
        weight_sync=weight_sync,
    )
    if latest is None:
        _warm_up(state)
        state.before = evaluate_policy(state)
        if log is not None:  # before checkpoint 0: a resumed run always finds "before"
            log.write_json("eval.json", {"before": state.before})
        save_state(state)
    else:
        _resume(state, latest.trainer_state())
    state.reference = Reference(policy) if config.algorithm.beta > 0 else None
    if state.reference is not None and latest is not None:
        state.reference.load_from(checkpoints[0].model_dir)
    if config.run.save_deltas and info.is_main:
        state.deltas = DeltaRecorder(root, policy.model.named_parameters(), state.step)
    if latest is not None or config.sft.steps > 0 or config.model.lora is not None:
        state.sync_weights()  # the server holds the model source, not these weights/adapters
    barrier(info)
    return state


def _source(config: TrainConfig, latest: Any) -> str | None:
    if latest is None or config.model.lora is not None:
        return None  # LoRA adapters are loaded onto the base in _resume
    return str(latest.model_dir)


def _backend(config: TrainConfig) -> tuple[SamplerFactory | None, WeightSync]:
    """Where rollouts are sampled: in process (no factory, nothing to push) or on a server."""
    rollout = config.rollout
    if rollout.backend == "local" or rollout.server_url is None:
        return None, no_weight_sync
    return completions_backend(
        rollout.server_url,
        model=rollout.server_model,
        reload_path=rollout.server_reload_path,
        weights_dir=rollout.server_weights_dir,
    )


def _collector(
    config: TrainConfig, policy: Policy, sampler_factory: SamplerFactory | None = None
) -> RolloutCollector:
    rollout = config.rollout
    pool = EnvPool({env.id: env.kwargs for env in config.envs})
    return RolloutCollector(
        policy,
        pool,
        limits=RolloutLimits(rollout.max_new_tokens, rollout.max_total_tokens, rollout.max_turns),
        sampling=SamplingSettings(rollout.temperature, rollout.top_p),
        env_workers=rollout.env_workers,
        stop=not rollout.ignore_eos,
        sampler_factory=sampler_factory,
    )


def _resume(state: RunState, saved: dict[str, Any]) -> None:
    state.step = int(saved["step"])
    state.optimizer.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict(saved["scheduler"])
    for env_id, curriculum in state.curricula.items():
        curriculum.load_state_dict(saved["curricula"][env_id])
    # one reward-source state per process (POW3R's EMA sees only its own groups)
    reward_states = saved.get("rewards") or [{}]
    state.rewards.load_state_dict(reward_states[state.dist.rank % len(reward_states)])
    if state.config.model.lora is not None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        adapter = state.root / "checkpoints" / f"step-{state.step:06d}" / "model"
        set_peft_model_state_dict(
            state.policy.model, load_file(adapter / "adapter_model.safetensors")
        )
    restore_rng(saved["rng"])
    if state.log is not None:
        state.log.rewind(state.step)
        state.before = (state.log.read_json("eval.json") or {}).get("before")


def save_state(state: RunState) -> None:
    """Checkpoint the run (main process), then wait for everyone."""
    reward_states = gather_objects(state.dist, state.rewards.state_dict())
    if state.dist.is_main:
        trainer_state = {
            "optimizer": state.optimizer.state_dict(),
            "scheduler": state.scheduler.state_dict(),
            "curricula": {k: c.state_dict() for k, c in state.curricula.items()},
            "rewards": reward_states,
            "world_size": state.dist.world_size,
        }
        save_checkpoint(
            state.root,
            state.step,
            model=state.policy.model,
            tokenizer=state.policy.tokenizer,
            trainer_state=trainer_state,
            keep=state.config.run.keep_checkpoints,
        )
    barrier(state.dist)


def _warm_up(state: RunState) -> None:
    """Supervised warm-up (``sft.steps`` optimizer steps) before RL."""
    config, policy = state.config, state.policy
    sft = config.sft
    if sft.steps == 0:
        return
    examples = sft_examples(policy.chat, config.envs, sft)
    generator = torch.Generator().manual_seed(config.run.seed * 31 + state.dist.rank)
    stream = batches(examples, min(sft.batch_size, len(examples)), policy.pad_id, generator)
    optimizer = torch.optim.AdamW(state.parameters, lr=sft.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / sft.steps))
    )
    policy.model.train()
    progress = tqdm(
        range(sft.steps),
        desc="sft",
        disable=not (state.dist.is_main and config.run.progress),
        dynamic_ncols=True,
    )
    losses = []
    for _ in progress:
        ids, attention, mask = (t.to(state.device) for t in next(stream))
        loss = sft_loss(state.trainable, ids, attention, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(state.parameters, 1.0)
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        progress.set_postfix(loss=f"{losses[-1]:.3f}")
    if sft.hand_over_optimizer and isinstance(state.optimizer, torch.optim.AdamW):
        _hand_over(optimizer, state.optimizer)
    if state.log is not None:
        tail = losses[-max(1, len(losses) // 10) :]
        state.log.write_json(
            "sft.json",
            {"examples": len(examples), "steps": sft.steps, "final_loss": sum(tail) / len(tail)},
        )


def _hand_over(source: torch.optim.Optimizer, target: torch.optim.Optimizer) -> None:
    """Copy ``source``'s per-parameter state (AdamW moments and step counts) into ``target``,
    keeping ``target``'s hyperparameters (learning rate, weight decay)."""
    groups = [dict(group) for group in target.state_dict()["param_groups"]]
    saved = source.state_dict()
    target.load_state_dict({"state": saved["state"], "param_groups": groups})


def evaluate_policy(state: RunState) -> dict[str, Any] | None:
    """Greedy held-out evaluation of the policy on every training env (main process)."""
    config = state.config
    result = None
    if state.dist.is_main and config.eval.episodes > 0:
        result = _evaluate(state)
    return broadcast_object(state.dist, result)


def _evaluate(state: RunState) -> dict[str, Any]:
    import gymnasium as gym

    from rlvr.agents.base import SamplingConfig
    from rlvr.agents.evaluation import evaluate
    from rlvr.agents.hf import HFAgent

    config, policy = state.config, state.policy
    max_new = config.eval.max_new_tokens or config.rollout.max_new_tokens
    agent = HFAgent.from_model(
        policy.model,
        policy.tokenizer,
        sampling=SamplingConfig(temperature=0.0, max_new_tokens=max_new),
        batch_size=config.eval.batch_size,
        chat_template=config.model.chat_template,
    )
    per_env, successes, episodes = {}, 0.0, 0
    for env in config.envs:
        report = evaluate(
            lambda env=env: gym.make(env.id, **env.kwargs),
            agent,
            env_id=env.id,
            episodes=config.eval.episodes,
            seed=config.eval.seed,
            difficulty=env.difficulty if env.curriculum is None else env.curriculum.start,
            batch_size=config.eval.batch_size,
            max_turns=config.rollout.max_turns,
        )
        per_env[env.id] = {
            "success_rate": report.success_rate,
            "ci_low": report.ci_low,
            "ci_high": report.ci_high,
            "mean_reward": report.mean_reward,
            "components": report.mean_components,
            "episodes": report.episodes,
        }
        successes += report.success_rate * report.episodes
        episodes += report.episodes
    return {"success_rate": successes / episodes, "episodes": episodes, "per_env": per_env}


def _replicas_identical(state: RunState) -> bool:
    """Whether every process ends with the same weights (DDP keeps replicas in sync)."""
    with torch.no_grad():
        flat = torch.cat([p.detach().float().flatten().cpu() for p in state.parameters])
    fingerprint = (float(flat.sum()), float(flat.abs().sum()), float((flat * flat).sum()))
    return len(set(gather_objects(state.dist, fingerprint))) == 1


def finish_run(state: RunState) -> dict[str, Any]:
    """Evaluate "after", write ``eval.json`` and the plots, close everything."""
    after = evaluate_policy(state)
    summary = {"before": state.before, "after": after, "steps": state.step}
    if state.dist.enabled:
        summary["replicas_identical"] = _replicas_identical(state)
    if state.log is not None:
        state.log.write_json("eval.json", summary)
        if state.config.run.plots:
            plot_metrics(state.root)
        state.log.close()
    state.collector.close()
    return summary
