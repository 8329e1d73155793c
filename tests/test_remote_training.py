"""The trainer on an env served by another process (``rlvr serve`` + ``rlvr/Remote-v0``)."""

from __future__ import annotations

import gymnasium as gym
import pytest
from served import running

import rlvr
from rlvr.envs.remote import ServerConfig

gym.register_envs(rlvr)


def test_the_trainer_plays_a_served_env(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The trainer's collector runs episodes on another process's env through RemoteEnv,
    and they are the episodes the local env would give."""
    import torch

    from rlvr.agents.tiny import build_tiny_model
    from rlvr.training.config import ModelConfig
    from rlvr.training.generation import SamplingSettings
    from rlvr.training.policy import load_policy
    from rlvr.training.rollout import EnvPool, GroupSpec, RolloutCollector, RolloutLimits

    model_dir = build_tiny_model(tmp_path_factory.mktemp("tiny"), hidden_size=32, num_layers=1)
    policy = load_policy(ModelConfig(name=str(model_dir)), device="cpu")
    config = ServerConfig("rlvr/Math-v0", {"max_turns": 3})
    with running(config) as (url, _):
        collector = RolloutCollector(
            policy,
            EnvPool({"rlvr/Remote-v0": {"url": url}}),
            limits=RolloutLimits(max_new_tokens=8, max_total_tokens=300, max_turns=5),
            sampling=SamplingSettings(),
        )
        groups = collector.collect([GroupSpec("rlvr/Remote-v0", 11, 0, 2)], torch.Generator())
        collector.close()
    local = gym.make("rlvr/Math-v0", max_turns=3)
    first, _ = local.reset(seed=11, options={"difficulty": 0})
    for rollout in groups[0].rollouts:
        assert rollout.error is None
        assert rollout.messages[1].content == first
        assert rollout.turns == 3 and rollout.terminated  # three wrong attempts end it
