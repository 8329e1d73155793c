"""The two-agent PettingZoo version of rlvr/Ecom-v0."""

from __future__ import annotations

import warnings

from pettingzoo.test import api_test, parallel_api_test

from rlvr.agents.scripted.ecom import EcomSolver
from rlvr.envs.ecom import pettingzoo_env
from rlvr.envs.types import Message


def test_pettingzoo_api_test_passes():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        api_test(pettingzoo_env.env(difficulty=1), num_cycles=200)
        parallel_api_test(pettingzoo_env.parallel_env(difficulty=1), num_cycles=200)


def test_observations_are_dicts_holding_the_text():
    env = pettingzoo_env.raw_env(difficulty=0)
    env.reset(seed=0)
    observation = env.observe("assistant")
    assert env.observation_space("assistant").contains(observation)
    assert (
        "email" in env.observe("shopper")["text"]
        or "Your requests" in env.observe("shopper")["text"]
    )


def _play(env, seed, shopper):
    env.reset(seed=seed)
    solver, dialogue, final = EcomSolver(), None, None
    while env.agents:
        observation, reward, terminated, truncated, info = env.last()
        agent = env.agent_selection
        if terminated or truncated:
            final = reward if agent == "assistant" else final
            env.step(None)
            continue
        if agent == "assistant":
            if dialogue is None:
                dialogue = [
                    Message("system", info["system_prompt"]),
                    Message("user", observation["text"]),
                ]
            else:
                dialogue.append(Message(info.get("role", "user"), observation["text"]))
            action = solver.act(dialogue)
            dialogue.append(Message("assistant", action))
            env.step(action)
        else:
            env.step(shopper(env))
    return final


def test_solver_with_the_scripted_shopper_succeeds():
    env = pettingzoo_env.raw_env(difficulty=(0, 5))
    rewards = [_play(env, seed, lambda e: e.scripted_reply()) for seed in range(20)]
    assert rewards == [1.0] * 20


def test_a_shopper_that_never_says_yes_blocks_every_write():
    env = pettingzoo_env.raw_env(family="cancel", difficulty=0)
    rewards = [_play(env, seed, lambda e: "no") for seed in range(5)]
    assert max(rewards) <= 0.5
