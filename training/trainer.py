"""The training loop: rollouts in groups -> rewards -> advantages -> loss -> optimizer step.

:func:`train` reads top to bottom. Techniques are looked up by name once (reward sources,
advantage estimator, policy loss, aggregation, KL estimator, token credit, regularizer, group
filter, distillation objective and horizon) and called; the loop never asks which one it has.
Setup that is not the loop itself (loading, warm-up, evaluation, checkpoint state) lives in
:mod:`rlvr.training.run`.

One step, per process (under ``torchrun`` each process plays ``prompts_per_step / N`` groups):

1. draw group specs from generators seeded by ``(seed, step, rank)``; collect the groups
   (:class:`~rlvr.training.rollout.RolloutCollector`), each turn cut at the step's horizon
   (``distill.horizon``; ``full`` keeps ``rollout.max_new_tokens``); drop groups whose env
   failed or that a reward source cannot score (an episode cut before the env judged it;
   logged)
   and, with ``group_filter: informative``, zero-variance groups, refilling up to
   ``max_sampling_rounds`` rounds;
2. rewards ``(B, G, K)`` from the sources of ``algorithm.rewards`` (default: the env return
   with the overlong penalty, ``K = 1``) and their weights ``(K,)`` -> advantages ``(B, G)``
   -> per-token credit ``(N, T)`` (``algorithm.token_credit``: ``none`` broadcasts, ``delta``
   is DelTA, ``turn`` replaces them with per-turn advantages) -> ``reward_weight * A + coef *
   A_distill`` (``distill.objective``: the OPD advantage, or zero);
3. ``updates_per_batch`` passes of ``minibatches`` optimizer steps: log-probs of the sampled
   tokens, clipped policy loss with importance ratios against the rollout log-probs, plus
   ``beta`` times the KL estimate to the reference, rewritten by ``algorithm.regularizer``
   (``kl_cov``, ``clip_cov``), plus ``coef`` times the distillation loss (DistIL forward CE,
   the SDPO reverse KL, or zero), aggregated over the policy tokens;
4. ``state.sync_weights()``: the rollout sampler gets the new weights (a push to the
   inference server with ``rollout.backend: openai``, nothing for the in-process sampler);
5. curricula, metrics, samples, checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from rlvr.training.advantages import ADVANTAGES
from rlvr.training.batch import (
    RolloutStats,
    build_batch,
    distinct_advantages,
    rollout_metrics,
    to_device,
    turn_tensors,
)
from rlvr.training.config import TrainConfig
from rlvr.training.credit import TOKEN_CREDIT, CreditInputs, credit_scale_spread
from rlvr.training.distill_objectives import build_distiller
from rlvr.training.distributed import all_min, all_sum, gather_objects, shutdown
from rlvr.training.horizons import HORIZONS, HorizonConfig
from rlvr.training.losses import (
    AGGREGATIONS,
    KL_ESTIMATORS,
    POLICY_LOSSES,
    AggregationContext,
    ClipConfig,
)
from rlvr.training.policy import last_hidden_states, token_scores
from rlvr.training.regularizers import REGULARIZERS, RegularizerInputs
from rlvr.training.reward_sources import OverlongPenalty, PolicyView, RewardContext
from rlvr.training.rollout import GroupSpec, RolloutGroup
from rlvr.training.run import RunState, finish_run, save_state, start_run
from rlvr.training.sampling import GROUP_FILTERS


def _seed(*parts: int) -> int:
    """A 63-bit seed mixed from ``parts`` (numpy's SeedSequence)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(2, np.uint64)[0] >> np.uint64(1))


def _group_specs(state: RunState, step: int, round_: int, count: int) -> list[GroupSpec]:
    """``count`` group specs for this process, from generators seeded by (seed, step, rank)."""
    config = state.config
    rng = np.random.default_rng([config.run.seed, step, state.dist.rank, round_])
    weights = np.array([env.weight for env in config.envs])
    specs = []
    for _ in range(count):
        env = config.envs[int(rng.choice(len(config.envs), p=weights / weights.sum()))]
        curriculum = state.curricula.get(env.id)
        # the level comes from this step's generator (not the curriculum's own RNG), so every
        # rank and every resume draws the same levels whatever the number of sampling rounds
        level = (
            int(rng.integers(curriculum.state.low, curriculum.state.high + 1))
            if curriculum is not None
            else env.difficulty
        )
        seed = int(rng.integers(0, 1 << 30))
        specs.append(GroupSpec(env.id, seed, level, config.rollout.group_size))
    return specs


def _collect(
    state: RunState, step: int, max_new_tokens: int
) -> tuple[list[RolloutGroup], dict[str, float]]:
    """This process's groups for the step (``max_new_tokens`` per turn), failed and filtered
    groups dropped."""
    config = state.config
    wanted = config.rollout.prompts_per_step // state.dist.world_size
    keep_group = GROUP_FILTERS.get(config.rollout.group_filter)
    kept: list[RolloutGroup] = []
    counts = {"groups_failed": 0.0, "groups_filtered": 0.0, "sampling_rounds": 0.0}
    for round_ in range(config.rollout.max_sampling_rounds):
        generator = torch.Generator().manual_seed(
            _seed(config.run.seed, step, state.dist.rank, round_)
        )
        specs = _group_specs(state, step, round_, wanted)
        groups = state.collector.collect(specs, generator, max_new_tokens=max_new_tokens)
        counts["sampling_rounds"] += 1
        failed = [g for g in groups if g.failed]
        state.report_failures(step, failed)
        # groups a reward source cannot score (an episode cut before the env judged it)
        marked = [state.rewards.mark_unscorable(g) for g in groups if not g.failed]
        unscorable = [g for g in marked if g.failed]
        state.log_failures(step, unscorable)
        counts["groups_failed"] += len(failed) + len(unscorable)
        healthy = [g for g in marked if not g.failed]
        if healthy:
            rewards = torch.tensor([[r.reward for r in g.rollouts] for g in healthy])
            keep = keep_group(rewards).tolist()
            counts["groups_filtered"] += keep.count(False)
            kept += [g for g, k in zip(healthy, keep, strict=True) if k]
        if len(kept) >= wanted:
            break
    return kept[:wanted], counts


def train(config: TrainConfig) -> dict[str, Any]:
    """Run (or resume) a scenario; returns the evaluation summary written to ``eval.json``."""
    state = start_run(config)
    algo = config.algorithm
    estimate_advantages = ADVANTAGES.get(algo.advantage)
    policy_loss = POLICY_LOSSES.get(algo.policy_loss)
    aggregate = AGGREGATIONS.get(algo.aggregation)
    kl_estimate = KL_ESTIMATORS.get(algo.kl_estimator)
    credit = TOKEN_CREDIT.get(algo.token_credit.name)(**algo.token_credit.params)
    regularize = REGULARIZERS.get(algo.regularizer.name)(**algo.regularizer.params)
    clip = ClipConfig(algo.eps_low, algo.eps_high, algo.delta)
    horizon_schedule = HORIZONS.get(config.distill.horizon.name)
    horizon_config = HorizonConfig(**config.distill.horizon.params)
    temperature = config.rollout.temperature
    device, info = state.device, state.dist
    overlong = OverlongPenalty(
        config.rollout.max_total_tokens, algo.overlong_buffer, algo.overlong_factor
    )
    policy_view = PolicyView(state.policy.model, state.policy.pad_id, device, temperature)
    progress = tqdm(
        range(state.step, config.run.steps),
        initial=state.step,
        total=config.run.steps,
        desc="rl",
        disable=not (info.is_main and config.run.progress),
        dynamic_ncols=True,
    )
    state.policy.model.train()  # the same mode fresh, resumed, with or without warm-up
    try:
        distiller = build_distiller(config, state.policy)  # objective none: no teacher
        for step in progress:
            step_number = step + 1
            timer = time.perf_counter()

            # 1. rollouts, each turn cut at the step's horizon (rollout.max_new_tokens unless a
            # TOPD/POPD schedule shortens it)
            horizon = horizon_schedule(
                step, config.run.steps, config.rollout.max_new_tokens, horizon_config
            )
            groups, counts = _collect(state, step, horizon)
            rollouts = [r for g in groups for r in g.rollouts]
            rollout_time = time.perf_counter() - timer

            # 2. rewards -> advantages
            timer = time.perf_counter()
            # (B, G, K) from the sources, at the rollout-time weights (before the update)
            mixed = state.rewards(RewardContext(groups, overlong, policy_view))
            group_advantages = (
                estimate_advantages(mixed.rewards, mixed.weights) if groups else torch.zeros(0, 1)
            )
            advantages = group_advantages.reshape(-1)

            # 3. policy update: every process takes the same number of optimizer steps
            stats: dict[str, list[float]] = {
                **mixed.metrics,
                "advantage_distinct": [distinct_advantages(group_advantages)] if groups else [],
                # pass@G: the share of groups with at least one success among their G samples
                "pass_at_group": [
                    float(np.mean([any(r.success for r in g.rollouts) for g in groups]))
                ]
                if groups
                else [],
                "loss": [],
                "kl": [],
                "entropy": [],
                "clip_fraction": [],
                "grad_norm": [],
            }
            minibatches = all_min(info, min(algo.minibatches, len(rollouts)), device)
            if minibatches > 0:
                batch = build_batch(rollouts, advantages, state.policy.pad_id)
                batch = to_device(distiller.with_teacher_inputs(batch, rollouts), device)
                ref_logp = state.reference_logprobs(batch, temperature)
                # per-token credit, from the rollout-time weights (DelTA needs their hidden states)
                hidden = (
                    last_hidden_states(state.policy.model, batch.ids, batch.attention)
                    if credit.needs_hidden
                    else None
                )
                turn_rewards, turn_mask, turn_index = turn_tensors(rollouts, batch.ids.shape[1])
                credit_inputs = CreditInputs(
                    batch.mask,
                    batch.old_logp.exp(),
                    hidden,
                    group_size=config.rollout.group_size,
                    turn_rewards=turn_rewards.to(device),
                    turn_mask=turn_mask.to(device),
                    turn_index=turn_index.to(device),
                )
                credited = credit(batch.advantages, credit_inputs)
                stats["credit/scale_std"] = [
                    credit_scale_spread(batch.advantages, credited, batch.mask)
                ]
                batch = replace(batch, advantages=credited)
                # reward_weight * A_env + coef * A_distill (OPD: the teacher scores the batch)
                batch, distill_metrics = distiller.advantages(batch)
                for key, value in distill_metrics.items():
                    stats.setdefault(key, []).append(value)
                update_generator = torch.Generator().manual_seed(
                    _seed(config.run.seed, step, 1 << 20)
                )
                for _ in range(algo.updates_per_batch):
                    order = torch.randperm(len(batch), generator=update_generator)
                    for index in torch.tensor_split(order, minibatches):
                        part = batch.select(index)
                        tokens = all_sum(info, float(part.mask.sum()), device)
                        context = AggregationContext(
                            max_completion_length=config.rollout.max_total_tokens,
                            global_active_tokens=tokens,
                            world_size=info.world_size,
                        )
                        scores = token_scores(
                            state.trainable,
                            part.ids,
                            part.attention,
                            temperature,
                            mask=part.mask,
                            logits=distiller.needs_logits,
                        )
                        logp, entropy = scores.logp, scores.entropy
                        loss_tokens, clipped = policy_loss(
                            logp, part.old_logp, part.advantages, part.mask, clip
                        )
                        # no reference (beta = 0): the policy is its own reference, KL = 0
                        reference = (
                            logp.detach() if ref_logp is None else ref_logp[index, : logp.shape[1]]
                        )
                        kl = kl_estimate(logp, reference)
                        loss_tokens = regularize(
                            loss_tokens,
                            RegularizerInputs(
                                logp,
                                part.old_logp,
                                part.advantages,
                                part.mask,
                                clipped,
                                update_generator,
                            ),
                        )
                        # + coef * L_distill (DistIL forward CE, SDPO reverse KL; 0 otherwise)
                        loss_tokens, distill_loss = distiller.loss_tokens(loss_tokens, part, scores)
                        for key, value in distill_loss.items():
                            stats.setdefault(key, []).append(value)
                        loss = aggregate(loss_tokens + algo.beta * kl, part.mask, context)
                        state.optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                        grad_norm = torch.nn.utils.clip_grad_norm_(
                            state.parameters, algo.max_grad_norm
                        )
                        state.optimizer.step()
                        state.scheduler.step()
                        active = part.mask.sum().clamp(min=1.0)
                        stats["loss"].append(float(loss.detach()))
                        stats["kl"].append(float((kl.detach() * part.mask).sum() / active))
                        stats["entropy"].append(
                            float((entropy * part.mask).sum() / active)
                            if entropy is not None
                            else float("nan")
                        )
                        stats["clip_fraction"].append(
                            float((clipped.float() * part.mask).sum() / active)
                        )
                        stats["grad_norm"].append(float(grad_norm))
                state.sync_weights()
            update_time = time.perf_counter() - timer

            # 4. curricula, metrics, samples, checkpoint
            gathered = gather_objects(info, ([RolloutStats.of(r) for r in rollouts], counts, stats))
            all_stats = [s for part_stats, _, _ in gathered for s in part_stats]
            for record in all_stats:
                curriculum = state.curricula.get(record.env_id)
                if curriculum is not None and record.difficulty is not None:
                    curriculum.record(record.difficulty, record.success)
            metrics: dict[str, Any] = rollout_metrics(all_stats)
            for key in counts:
                metrics[key] = sum(c[key] for _, c, _ in gathered)
            for key in sorted({k for _, _, s in gathered for k in s}):
                values = [v for _, _, s in gathered for v in s.get(key, [])]
                metrics[key] = float(np.mean(values)) if values else float("nan")
            metrics["lr"] = state.scheduler.get_last_lr()[0]
            metrics["distill/horizon"] = horizon
            metrics["generated_tokens"] = sum(s.completion_tokens for s in all_stats)
            for env_id, curriculum in sorted(state.curricula.items()):
                metrics[f"env/{env_id}/curriculum_high"] = curriculum.state.high
            metrics["time/rollout"] = rollout_time
            metrics["time/update"] = update_time
            metrics["completions_per_s"] = len(all_stats) / max(rollout_time, 1e-9)
            state.log_step(step_number, metrics, rollouts)
            state.record_delta(step_number)
            progress.set_postfix(
                reward=f"{metrics['reward']:.3f}", success=f"{metrics['success']:.2f}"
            )
            state.step = step_number
            if step_number % config.run.save_every == 0 or step_number == config.run.steps:
                save_state(state)
    except BaseException:
        state.close()
        shutdown(info)
        raise
    progress.close()
    summary = finish_run(state)
    shutdown(info)
    return summary
