"""The trainer end to end on a tiny model: rollouts, token faithfulness, runs, resume, DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import torch
from conftest import SMALL

import rlvr
from rlvr.envs.spaces import UnicodeText
from rlvr.training.config import (
    ConfigError,
    EnvConfig,
    SFTConfig,
    load_config,
    parse_config,
)
from rlvr.training.generation import SamplingSettings
from rlvr.training.policy import Policy, sequence_logprobs
from rlvr.training.rollout import EnvPool, GroupSpec, RolloutCollector, RolloutLimits

gym.register_envs(rlvr)

pytestmark = pytest.mark.usefixtures("tiny_cache")


def _collector(policy: Policy, kwargs: dict[str, Any], **limits: int) -> RolloutCollector:
    budget = {"max_new_tokens": 12, "max_total_tokens": 400, "max_turns": 5, **limits}
    return RolloutCollector(
        policy,
        EnvPool({env_id: options for env_id, options in kwargs.items()}),
        limits=RolloutLimits(**budget),
        sampling=SamplingSettings(),
        env_workers=4,
    )


def _turn_ids(rollout: Any, turn: int) -> list[int]:
    return [t for t, i in zip(rollout.ids, rollout.turn_index, strict=True) if i == turn]


def test_multi_turn_rollouts_are_token_faithful(policy: Policy) -> None:
    collector = _collector(policy, {"rlvr/Math-v0": {"max_turns": 3, "difficulty": 0}})
    specs = [GroupSpec("rlvr/Math-v0", seed, 0, 3) for seed in (1, 2)]
    groups = collector.collect(specs, torch.Generator().manual_seed(0))
    collector.close()
    assert [len(g.rollouts) for g in groups] == [3, 3]
    chat = policy.chat
    for group in groups:
        # one task per group: every rollout starts from the same prompt ids
        prompts = {r.ids[: r.policy_mask.index(1)] for r in group.rollouts}
        assert len(prompts) == 1
        for rollout in group.rollouts:
            assert rollout.turns == 3 and not rollout.truncated  # the tiny model never solves
            assert len(rollout.ids) == len(rollout.policy_mask) == len(rollout.old_logprobs)
            # rebuild the sequence from its parts: prompt, sampled turns, env messages
            expected = chat.prompt_ids(list(rollout.messages[:2]))
            for turn in range(rollout.turns):
                sampled = [
                    t for t, i in zip(rollout.ids, rollout.turn_index, strict=True) if i == turn
                ]
                expected += sampled
                if turn < rollout.turns - 1:
                    env_message = rollout.messages[3 + 2 * turn]
                    expected += chat.close_ids(sampled) + chat.append_ids([env_message])
            assert list(rollout.ids) == expected
            # only sampled ids carry loss, and they decode to the replies the env saw
            for turn in range(rollout.turns):
                sampled = [
                    t for t, i in zip(rollout.ids, rollout.turn_index, strict=True) if i == turn
                ]
                text = policy.tokenizer.decode(
                    [t for t in sampled if t not in policy.stop_ids], skip_special_tokens=True
                )
                assert rollout.messages[2 + 2 * turn].content == text
            assert sum(rollout.policy_mask) == sum(1 for i in rollout.turn_index if i >= 0)


def test_rollout_logprobs_equal_a_fresh_forward_pass(policy: Policy) -> None:
    """The KV cache kept across turns (with padding inside rows) changes no log-prob."""
    collector = _collector(
        policy, {"rlvr/Math-v0": {"max_turns": 3, "difficulty": 0}, "test/Parity-v0": {}}
    )
    # Parity episodes end after one turn: their rows leave the cache while Math's go on
    specs = [GroupSpec("rlvr/Math-v0", s, 0, 2) for s in (5, 6, 7)]
    specs += [GroupSpec("test/Parity-v0", s, 0, 2) for s in (1, 2)]
    groups = collector.collect(specs, torch.Generator().manual_seed(1))
    assert {r.turns for g in groups for r in g.rollouts} == {1, 3}
    collector.close()
    for rollout in (r for g in groups for r in g.rollouts):
        ids = torch.tensor([rollout.ids])
        logp, _ = sequence_logprobs(policy.model, ids, torch.ones_like(ids), 1.0, entropy=False)
        mask = torch.tensor(rollout.policy_mask[1:], dtype=torch.bool)
        recorded = torch.tensor(rollout.old_logprobs[1:])
        assert torch.allclose(logp[0][mask], recorded[mask], atol=1e-4)


def test_budgets_truncate_episodes(policy: Policy) -> None:
    collector = _collector(
        policy, {"rlvr/Math-v0": {"max_turns": 5}}, max_new_tokens=8, max_total_tokens=120
    )
    groups = collector.collect([GroupSpec("rlvr/Math-v0", 3, 0, 2)], torch.Generator())
    collector.close()
    for rollout in groups[0].rollouts:
        assert rollout.truncated and not rollout.terminated
        assert len(rollout.ids) <= 120
        for turn in range(rollout.turns):
            assert sum(1 for i in rollout.turn_index if i == turn) <= 8


class FlakyEnv(gym.Env[str, str]):
    """Raises in ``step`` for odd seeds: an env failure the trainer must not hide."""

    observation_space = UnicodeText(100)
    action_space = UnicodeText(100)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        super().reset(seed=seed)
        self._seed = seed or 0
        return "Say anything.", {"system_prompt": "Be brief.", "role": "user"}

    def step(self, action: str) -> Any:
        if self._seed % 2:
            raise RuntimeError("the sandbox died")
        return "done", 1.0, True, False, {"success": True, "reward_components": {"answer": 1.0}}


def test_a_failing_env_marks_its_group(policy: Policy) -> None:
    gym.register("test/Flaky-v0", entry_point=FlakyEnv)
    try:
        collector = _collector(policy, {"test/Flaky-v0": {}})
        groups = collector.collect(
            [GroupSpec("test/Flaky-v0", s, 0, 2) for s in (2, 3)], torch.Generator()
        )
        collector.close()
    finally:
        gym.registry.pop("test/Flaky-v0")
    assert not groups[0].failed and groups[0].rollouts[0].reward == 1.0
    assert groups[1].failed and len(groups[1].rollouts) == 2
    assert "the sandbox died" in groups[1].errors[0]


SCENARIO = {
    "model": {"name": "tiny", "tiny": SMALL},
    "envs": [{"id": "rlvr/Math-v0", "difficulty": 0, "kwargs": {"families": ["arithmetic"]}}],
    "sft": {"steps": 3, "episodes": 16, "batch_size": 4},
    "rollout": {
        "group_size": 2,
        "prompts_per_step": 2,
        "max_new_tokens": 8,
        "max_total_tokens": 160,
    },
    "eval": {"episodes": 4, "batch_size": 4},
    "run": {"steps": 3, "save_every": 1, "progress": False, "sample_every": 1},
}


def _scenario(tmp_path: Path, **sections: dict[str, Any]) -> Path:
    data = json.loads(json.dumps(SCENARIO))
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    path = tmp_path / "scenario.yaml"
    path.write_text(json.dumps(data), encoding="utf-8")  # JSON is YAML
    return path


def _rlvr(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rlvr", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "RLVR_DEBUG": ""},
    )


def _metrics(run: Path) -> list[dict[str, Any]]:
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_a_run_writes_every_artifact(tmp_path: Path) -> None:
    from rlvr.training.trainer import train

    config = load_config(
        _scenario(tmp_path), [f"run.output_dir={tmp_path / 'run'}", "algorithm.beta=0.04"]
    )
    summary = train(config)
    run = tmp_path / "run"
    assert set(summary["before"]) >= {"success_rate"} and set(summary["after"]) >= {"success_rate"}
    assert json.loads((run / "eval.json").read_text())["after"] == summary["after"]
    components = summary["after"]["per_env"]["rlvr/Math-v0"]["components"]
    assert set(components) == {"answer", "format"} and all(0 <= v <= 1 for v in components.values())
    records = _metrics(run)
    assert [r["step"] for r in records] == [1, 2, 3]
    for key in (
        "reward",
        "success",
        "kl",
        "entropy",
        "clip_fraction",
        "completion_tokens",
        "env/rlvr/Math-v0/reward",
        "env/rlvr/Math-v0/components/answer",
        "time/rollout",
    ):
        assert key in records[-1], key
    assert records[-1]["kl"] >= 0.0 and records[-1]["entropy"] > 0.0
    assert (run / "plots" / "reward.png").stat().st_size > 0
    assert list((run / "tensorboard").iterdir())
    assert (run / "samples" / "step-000003.jsonl").exists()
    saved = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert saved == ["step-000000", "step-000001", "step-000002", "step-000003"]
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(run / "checkpoints" / "step-000003" / "model")
    assert model.config.hidden_size == SMALL["hidden_size"]
    written = {p: p.read_bytes() for p in (run / "config.yaml", run / "metrics.jsonl")}
    with pytest.raises(ValueError, match="already holds a run"):
        other = [f"run.output_dir={run}", "run.resume=false", "algorithm.lr=0.5"]
        train(load_config(_scenario(tmp_path), other))
    assert {p: p.read_bytes() for p in written} == written  # the refusal wrote nothing


def test_lora_and_sequence_level_loss_train(tmp_path: Path) -> None:
    from rlvr.training.trainer import train

    overrides = [
        f"run.output_dir={tmp_path / 'run'}",
        "model.lora={r: 4, alpha: 8}",
        "algorithm.policy_loss=sequence",
        "algorithm.aggregation=dr_grpo",
        "algorithm.beta=0.1",
        "sft.steps=0",
        "algorithm.updates_per_batch=2",
        "algorithm.minibatches=2",
        "eval.episodes=0",
        "run.steps=2",
    ]
    with pytest.raises(ConfigError, match="KL reference of a LoRA run is the base model"):
        load_config(_scenario(tmp_path), [*overrides, "sft.steps=3"])
    before = None
    summary = train(load_config(_scenario(tmp_path), overrides))
    assert summary["after"] is before  # no evaluation asked for
    records = _metrics(tmp_path / "run")
    assert len(records) == 2 and all(r["grad_norm"] >= 0 for r in records)
    adapter = tmp_path / "run" / "checkpoints" / "step-000002" / "model" / "adapter_config.json"
    assert adapter.exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("rollout.gruop_size=4", "rollout.gruop_size: Extra inputs are not permitted"),
        ("algorithm.advantage=ppo", "unknown advantage estimator 'ppo'; known: dr_grpo"),
        ("rollout.group_size=many", "rollout.group_size: Input should be a valid integer"),
        ("rollout.group_size=1", "rollout.group_size: Input should be greater than or equal to 2"),
        ("rollout.max_new_tokens=500", "max_new_tokens must be below rollout.max_total_tokens"),
        ("envs.0.id=rlvr/Nope-v0", "unknown env id 'rlvr/Nope-v0'"),
        ("envs.3.id=x", "'3' is not an index below 1"),
        ("rollout", "override 'rollout' is not key=value"),
        ("envs.0.solver={worked: 2}", "worked must be a share in [0, 1], got 2"),
        ("envs.0.solver={steps: 2}", "unexpected keyword argument 'steps'"),
    ],
)
def test_bad_scenarios_fail_in_one_line_before_compute(
    tmp_path: Path, override: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_scenario(tmp_path), [override])
    assert message in str(caught.value) and "\n" not in str(caught.value)
    result = _rlvr("train", str(_scenario(tmp_path)), override, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("rlvr: error:") and message in result.stderr
    assert not (tmp_path / "runs").exists()  # nothing ran


def test_scenarios_in_the_repository_validate() -> None:
    for path in sorted(Path(__file__).resolve().parents[1].glob("scenarios/*.yaml")):
        assert load_config(path).envs, path


def test_resume_after_kill_is_exact(tmp_path: Path) -> None:
    """A run killed with SIGKILL mid-step and resumed logs the same steps as one that was
    never interrupted: no step lost, none logged twice."""
    scenario = _scenario(tmp_path, run={"steps": 5, "save_every": 2}, eval={"episodes": 0})
    whole = _rlvr("train", str(scenario), f"run.output_dir={tmp_path / 'whole'}", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    run = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "rlvr", "train", str(scenario), f"run.output_dir={run}"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    # kill once step 3 is logged but its checkpoint (step 4) is not written yet
    while time.monotonic() < deadline and process.poll() is None:
        metrics = run / "metrics.jsonl"
        if metrics.exists() and metrics.read_text(encoding="utf-8").count("\n") >= 3:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    resumed = _rlvr("train", str(scenario), f"run.output_dir={run}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr

    def comparable(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        timing = ("time/", "completions_per_s")
        return [{k: v for k, v in r.items() if not k.startswith(timing)} for r in records]

    assert comparable(_metrics(run)) == comparable(_metrics(tmp_path / "whole"))


def test_two_processes_train_with_ddp(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, run={"steps": 2}, eval={"episodes": 2})
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "rlvr", "train", str(scenario), f"run.output_dir={tmp_path / 'run'}",
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        start_new_session=True,  # so a hang can be killed with the workers
    )
    try:
        output, _ = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    assert process.returncode == 0, output[-3000:]
    summary = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert summary["replicas_identical"] is True
    records = _metrics(tmp_path / "run")
    assert [r["step"] for r in records] == [1, 2]
    assert records[-1]["rollouts"] == 4  # both processes' groups are in the metrics


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["sft.hand_over_optimizer=true", "algorithm.optimizer=sgd"],
            "sft.hand_over_optimizer hands the warm-up's AdamW moments to RL: it needs",
        ),
        (
            ["sft.hand_over_optimizer=true", "sft.steps=0"],
            "sft.hand_over_optimizer hands the warm-up's AdamW moments to RL: it needs",
        ),
        (
            ["envs.0.solver={worked: 0.3}", "sft.steps=0"],
            "envs[].solver of ['rlvr/Math-v0'] only shapes the warm-up's scripted transcripts",
        ),
        (
            ["envs.0.solver={worked: 0.3}", "sft.data=chats.jsonl"],
            "envs[].solver of ['rlvr/Math-v0'] only shapes the warm-up's scripted transcripts",
        ),
        (
            ["sft.successful_only=false", "sft.steps=0"],
            "sft.successful_only=false only shapes the warm-up's scripted transcripts: it needs",
        ),
        (
            ["sft.env_kwargs={max_turns: 1}", "sft.data=chats.jsonl"],
            "sft.env_kwargs only shapes the warm-up's scripted transcripts: it needs",
        ),
        (
            [
                "algorithm.token_credit={name: turn}",
                "algorithm.rewards=[{name: component, params: {key: answer}}]",
            ],
            "token_credit turn reads the env's per-turn rewards only",
        ),
    ],
)
def test_settings_the_run_would_ignore_are_refused(
    tmp_path: Path, overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_scenario(tmp_path), overrides)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    load_config(_scenario(tmp_path), overrides[:1])  # valid alone (sft.steps 3, adamw, env)


def test_parse_config_defaults_are_valid() -> None:
    config = parse_config({"envs": [{"id": "rlvr/Math-v0"}]})
    assert config.rollout.group_size == 8 and config.algorithm.aggregation == "dapo"
    assert str(config.output_dir) == "runs/run"


def test_overrides_reach_nested_fields_and_list_items() -> None:
    from rlvr.training.config import apply_overrides

    data = {"envs": [{"id": "rlvr/Math-v0"}], "algorithm": {"lr": 1.0}}
    apply_overrides(data, ["envs.0.weight=2", "algorithm.lr=3e-5", "sft.data=null", "run.name=x"])
    assert data == {
        "envs": [{"id": "rlvr/Math-v0", "weight": 2}],
        "algorithm": {"lr": 3e-5},  # a YAML 1.2 float, not the string PyYAML would make
        "sft": {"data": None},
        "run": {"name": "x"},
    }


def test_nucleus_keeps_the_smallest_set_reaching_top_p() -> None:
    from rlvr.training.generation import _nucleus

    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(_nucleus(logits, 0.7))
    assert kept.tolist() == [[True, True, False, False]]  # 0.5 < 0.7 <= 0.5 + 0.3
    assert torch.isfinite(_nucleus(logits, 1.0)).all()


def test_logprobs_from_the_first_target_on_equal_the_full_pass(policy: Policy) -> None:
    ids = torch.tensor([[1, 5, 9, 12, 7, 4], [1, 6, 8, 4, 0, 0]])
    attention = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [0, 0, 1, 1, 0]], dtype=torch.float)
    full, full_entropy = sequence_logprobs(policy.model, ids, attention, 0.7)
    cut, cut_entropy = sequence_logprobs(policy.model, ids, attention, 0.7, mask=mask)
    assert full.shape == cut.shape == (2, 5)
    assert torch.allclose(full[:, 2:], cut[:, 2:], atol=1e-6)
    assert (cut[:, :2] == 0).all()
    assert full_entropy is not None and cut_entropy is not None
    assert torch.allclose(full_entropy[:, 2:], cut_entropy[:, 2:], atol=1e-6)


class ParityEnv(gym.Env[str, str]):
    """Pays 1 for a reply of even length: rewards vary within a group even for a random model."""

    observation_space = UnicodeText(100)
    action_space = UnicodeText(10_000)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        super().reset(seed=seed)
        return "Reply with an even number of characters.", {"system_prompt": "", "role": "user"}

    def step(self, action: str) -> Any:
        win = len(action) % 2 == 0
        info = {"success": win, "reward_components": {"even": float(win)}}
        return "ok", float(win), True, False, info


gym.register("test/Parity-v0", entry_point=ParityEnv)


def _parity_run(tmp_path: Path, name: str, *overrides: str) -> list[dict[str, Any]]:
    from rlvr.training.trainer import train

    scenario = _scenario(tmp_path, sft={"steps": 0}, eval={"episodes": 0})
    base = [
        "envs=[{id: test/Parity-v0}]",
        "rollout.group_size=4",
        "run.steps=2",
        "algorithm.updates_per_batch=2",
        "algorithm.lr=1e-3",
        f"run.output_dir={tmp_path / name}",
    ]
    train(load_config(scenario, [*base, *overrides]))
    return _metrics(tmp_path / name)


def test_token_credit_and_regularizers_are_chosen_in_the_scenario(tmp_path: Path) -> None:
    plain = _parity_run(tmp_path, "plain")
    assert 0 < plain[0]["reward"] < 1  # the groups carry signal
    same = _parity_run(
        tmp_path,
        "flat",
        "algorithm.token_credit={name: delta, params: {lambda_min: 1, lambda_max: 1}}",
    )
    assert [r["loss"] for r in same] == [r["loss"] for r in plain]  # DelTA reduces exactly
    delta = _parity_run(
        tmp_path,
        "delta",
        "algorithm.token_credit={name: delta, params: {lambda_min: 0.2, lambda_max: 1.8}}",
    )
    assert delta[0]["loss"] != plain[0]["loss"]
    kl_cov = _parity_run(
        tmp_path, "klcov", "algorithm.regularizer={name: kl_cov, params: {ratio: 0.5}}"
    )
    assert kl_cov[-1]["loss"] != plain[-1]["loss"]


def test_bad_technique_parameters_fail_validation(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"algorithm\.token_credit: need 0 <= lambda_min"):
        load_config(
            _scenario(tmp_path),
            ["algorithm.token_credit={name: delta, params: {lambda_min: 2, lambda_max: 1}}"],
        )
    with pytest.raises(ConfigError, match="bad parameters for regularizer 'kl_cov'"):
        load_config(_scenario(tmp_path), ["algorithm.regularizer={name: kl_cov, params: {k: 1}}"])
    with pytest.raises(ConfigError, match="unknown token credit 'magic'"):
        load_config(_scenario(tmp_path), ["algorithm.token_credit={name: magic}"])


def test_per_step_deltas_feed_relex(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    from rlvr.training.deltas import DeltaTrajectory

    records = _parity_run(tmp_path, "deltas", "run.save_deltas=true", "run.steps=3")
    assert len(records) == 3
    run = tmp_path / "deltas"
    trajectory = DeltaTrajectory(run)
    assert trajectory.steps == [0, 1, 2, 3]
    saved = AutoModelForCausalLM.from_pretrained(run / "checkpoints" / "step-000003" / "model")
    rebuilt = trajectory.state_at(3)
    for name, parameter in saved.named_parameters():
        assert torch.allclose(rebuilt[name], parameter.detach(), atol=1e-4), name
    result = _rlvr(
        "relex", str(run), "--observe", "4", "--target-step", "6", "--from-deltas", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    predicted = AutoModelForCausalLM.from_pretrained(run / "relex" / "step-000006")
    assert predicted.config.hidden_size == SMALL["hidden_size"]


@pytest.mark.parametrize(
    ("top_p", "expected"), [(1.0, [0.6, 0.3, 0.1]), (0.8, [2 / 3, 1 / 3, 0.0])]
)
def test_sampling_draws_from_the_tempered_nucleus(top_p: float, expected: list[float]) -> None:
    """The Gumbel-max draw matches the distribution; log-probs are the full softmax's."""
    from rlvr.training.generation import TurnSampler

    sampler = TurnSampler.__new__(TurnSampler)
    sampler.settings = SamplingSettings(temperature=0.5, top_p=top_p)
    sampler._noise = torch.Generator().manual_seed(0)
    probs = torch.tensor([0.6, 0.3, 0.1])
    logits = (probs.log() * 0.5).expand(40_000, 3)  # softmax(logits / 0.5) == probs
    token, logp = sampler._draw(logits)
    frequencies = torch.bincount(token, minlength=3).float() / len(token)
    assert torch.allclose(frequencies, torch.tensor(expected), atol=0.01)
    assert torch.allclose(logp, probs.log()[token], atol=1e-5)


def test_dapo_token_mean_under_ddp_equals_one_process() -> None:
    """Each rank divides by the global token count times the world size; DDP averages the
    ranks' gradients, which gives back the one-process token mean."""
    from rlvr.training.losses import AGGREGATIONS, AggregationContext

    loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0], [1.0, 1.0, 1.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 1]], dtype=torch.float)
    dapo = AGGREGATIONS.get("dapo")
    whole = dapo(loss, mask, AggregationContext(3))
    assert whole == pytest.approx((1 + 2 + 4 + 7 + 8 + 9 + 1) / 7)
    context = AggregationContext(3, global_active_tokens=7.0, world_size=2)
    ranks = [dapo(loss[:2], mask[:2], context), dapo(loss[2:], mask[2:], context)]
    assert (ranks[0] + ranks[1]) / 2 == pytest.approx(float(whole))


def test_hand_over_copies_adam_moments_and_keeps_the_rl_learning_rate():
    from rlvr.training.run import _hand_over

    weight = torch.nn.Parameter(torch.ones(3))
    warm_up = torch.optim.AdamW([weight], lr=1e-2)
    weight.grad = torch.tensor([1.0, -2.0, 0.5])
    warm_up.step()
    rl = torch.optim.AdamW([weight], lr=5e-5, weight_decay=0.0)
    _hand_over(warm_up, rl)
    assert rl.param_groups[0]["lr"] == 5e-5 and rl.param_groups[0]["weight_decay"] == 0.0
    # after one step, v = (1 - beta2) g^2 = 0.001 * [1, 4, 0.25]
    assert torch.allclose(rl.state[weight]["exp_avg_sq"], torch.tensor([1e-3, 4e-3, 2.5e-4]))
    assert float(rl.state[weight]["step"]) == 1.0


def test_remove_partial_restores_a_step_retired_by_a_killed_re_save(tmp_path: Path) -> None:
    from rlvr.training.checkpoint import list_checkpoints, remove_partial

    folder = tmp_path / "checkpoints"
    # step 4 re-saved, killed between the renames: the old copy retired, the new one staged
    for name, content in [
        (".tmp-retired-step-000004-77", b"old 4"),
        (".tmp-step-000004-77", b"new 4"),
        ("step-000002", b"kept 2"),
        (".tmp-retired-step-000002-77", b"stale 2"),  # its new copy did arrive
        (".tmp-step-000006-78", b"half-written 6"),
    ]:
        (folder / name).mkdir(parents=True)
        (folder / name / "trainer.pt").write_bytes(content)
    remove_partial(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["step-000002", "step-000004"]
    assert [c.step for c in list_checkpoints(tmp_path)] == [2, 4]
    assert (folder / "step-000004" / "trainer.pt").read_bytes() == b"old 4"
    assert (folder / "step-000002" / "trainer.pt").read_bytes() == b"kept 2"


def test_warm_up_transcripts_follow_the_solver_and_sft_settings() -> None:
    from rlvr.training.sft import scripted_chats

    envs = [
        EnvConfig(
            id="rlvr/Math-v0",
            difficulty=0,
            kwargs={"families": ["arithmetic"], "max_turns": 3},
            solver={"boxed": 0.0},
        )
    ]
    # with retries, the solver recovers after the env's hint: two-turn winning transcripts
    chats = scripted_chats(envs, SFTConfig(steps=1, episodes=6))
    assert len(chats) == 6
    assert all([m.role for m in chat][-3:] == ["assistant", "user", "assistant"] for chat in chats)
    assert all(
        "\\boxed" not in chat[-3].content and "\\boxed" in chat[-1].content for chat in chats
    )
    # single-shot episodes: every prose answer loses, and only successful_only=false keeps them
    single = {"max_turns": 1}
    with pytest.raises(ValueError, match="won no episode"):
        scripted_chats(envs, SFTConfig(steps=1, episodes=6, env_kwargs=single))
    chats = scripted_chats(
        envs, SFTConfig(steps=1, episodes=6, env_kwargs=single, successful_only=False)
    )
    assert len(chats) == 6
    assert all(chat[-1].role == "assistant" and "\\boxed" not in chat[-1].content for chat in chats)
    assert all(sum(m.role == "assistant" for m in chat) == 1 for chat in chats)
