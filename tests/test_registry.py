"""Every registered env passes rlvr.envs.check_env, with its oracle and its scripted solver."""

from __future__ import annotations

import gymnasium as gym
import pytest

import rlvr
from rlvr.agents import load_agent
from rlvr.envs import ENV_SPECS, EnvCheckError, check_env

gym.register_envs(rlvr)
ENV_IDS = sorted(ENV_SPECS)


def test_every_spec_is_registered_with_gymnasium():
    assert ENV_IDS, "the registry is empty"
    for env_id in ENV_IDS:
        assert env_id in gym.registry
        assert env_id.startswith("rlvr/") and env_id.rsplit("-v", 1)[1].isdigit()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env_with_the_oracle(env_id):
    report = check_env(gym.make(env_id))
    assert report.ok and len(report.checks) == 5


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env_with_the_scripted_solver(env_id):
    solver = load_agent("scripted", env_id=env_id)
    assert check_env(gym.make(env_id), solver=solver, seeds=(10, 11)).ok


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_every_env_docstring_has_a_version_history(env_id):
    doc = gym.make(env_id).unwrapped.__doc__ or ""
    assert "Version History" in doc


def test_check_env_catches_a_broken_env():
    import sort_words

    class Lenient(sort_words.SortWordsEnv):
        """Pays 1 for any reply: the cheat probes must catch it."""

        def respond(self, action):
            return super().respond(self.oracle_action())

    report = check_env(Lenient(), raise_on_failure=False)
    assert not report.ok
    assert any("cheats score < 1" in line for line in report.failures)
    with pytest.raises(EnvCheckError, match="cheats"):
        check_env(Lenient())


def test_check_env_catches_nondeterminism():
    import itertools

    import sort_words

    counter = itertools.count()

    class Drifting(sort_words.SortWordsEnv):
        """Leaks global state into the task: replays differ."""

        def begin(self, task):
            return f"{task.prompt} #{next(counter)}"

    report = check_env(Drifting(), raise_on_failure=False)
    assert any("seeded replay" in line for line in report.failures)
