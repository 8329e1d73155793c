"""``check_env``: Gymnasium's API checker plus the rules of verifiable-reward text envs.

Beyond :func:`gymnasium.utils.env_checker.check_env`, an rlvr env must:

1. be solvable: the solver (or the env's ``oracle_action``) scores reward 1 with ``success``;
2. resist cheap cheats: empty, garbage, stuffed, prompt-echo and over-long replies score < 1;
3. replay: ``reset(seed=s)`` gives the same episode twice, in a fresh instance too, so every
   rollout of a training group starts from the same state;
4. keep rewards finite and in [0, 1], and ``terminated``/``truncated`` apart (never both);
5. put the contract's keys in the terminal ``info`` (``success``, ``reward_components`` each in
   [0, 1], ``verification``, ``feedback``, ``reference``);
6. give the same results when N instances are stepped concurrently in threads as when they
   are stepped one by one.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
from gymnasium.utils.env_checker import check_env as gym_check_env

from rlvr.envs.core import TextEnv, dialogue_from
from rlvr.envs.types import Message
from rlvr.envs.wrappers import Policy, play

_TERMINAL_KEYS = ("success", "reward_components", "verification", "feedback", "reference")


class EnvCheckError(AssertionError):
    """Raised by :func:`check_env` when a rule is broken; the message lists every failure."""


@dataclass(frozen=True)
class CheckReport:
    """What :func:`check_env` checked and what failed."""

    env_id: str
    checks: tuple[str, ...]
    """The names of the checks that ran."""
    failures: tuple[str, ...] = field(default=())
    """One line per broken rule."""

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        head = f"{self.env_id}: {len(self.checks)} checks, {len(self.failures)} failed"
        return "\n".join([head, *(f"  FAIL {line}" for line in self.failures)])


def check_env(
    env: gym.Env[str, str],
    *,
    solver: Policy | None = None,
    env_fn: Callable[[], gym.Env[str, str]] | None = None,
    seeds: tuple[int, ...] = (0, 1, 2),
    threads: int = 4,
    raise_on_failure: bool = True,
) -> CheckReport:
    """Check ``env`` against Gymnasium's API and the rlvr rules (module docstring).

    Args:
        env: the env to check (wrapped by ``gym.make`` or not).
        solver: a policy that solves the env; by default the env's ``oracle_action``.
        env_fn: makes a fresh, identically configured instance (default: the env's spec, or a
            deep copy), for the replay and thread checks.
        seeds: the seeds each check plays.
        threads: how many instances the concurrency check steps at once.
        raise_on_failure: raise :class:`EnvCheckError` when a rule is broken.
    """
    spec = env.spec
    env_id = spec.id if spec is not None else type(env.unwrapped).__name__
    make = env_fn or _default_factory(env)
    policy = _policy_factory(solver)
    checks: list[str] = []
    failures: list[str] = []
    for name, check in (
        ("gymnasium api", lambda: _gymnasium_api(env)),
        ("solver scores 1", lambda: _solvable(make, policy, seeds)),
        ("cheats score < 1", lambda: _cheats_fail(make, seeds)),
        ("seeded replay", lambda: _replays(make, policy, seeds)),
        ("threads = sequential", lambda: _thread_safe(make, policy, seeds, threads)),
    ):
        checks.append(name)
        try:
            failures.extend(f"[{name}] {line}" for line in check())
        except Exception as error:  # a crashing check is a failure to report, not to hide
            failures.append(f"[{name}] raised {type(error).__name__}: {error}")
    report = CheckReport(env_id, tuple(checks), tuple(failures))
    if raise_on_failure and not report.ok:
        raise EnvCheckError(report.summary())
    return report


def _default_factory(env: gym.Env[str, str]) -> Callable[[], gym.Env[str, str]]:
    spec = env.spec
    if spec is not None:
        return lambda: gym.make(spec)
    return lambda: copy.deepcopy(env)


PolicyFor = Callable[[gym.Env[str, str]], Policy]
"""Gives the policy to play on one env instance (the oracle is bound to its env)."""


def _policy_factory(solver: Policy | None) -> PolicyFor:
    if solver is not None:
        return lambda env: solver

    def oracle_of(env: gym.Env[str, str]) -> Policy:
        unwrapped = _text_env(env)

        def oracle(dialogue: Any) -> str:
            action = unwrapped.oracle_action()
            if action is None:
                raise RuntimeError("no solver given and oracle_action() returned None")
            return str(action)

        return oracle

    return oracle_of


def _text_env(env: gym.Env[str, str]) -> TextEnv:
    """The rlvr env under the wrappers; the oracle and cheat checks need its hooks."""
    unwrapped = env.unwrapped
    if not isinstance(unwrapped, TextEnv):
        raise TypeError(f"{type(unwrapped).__name__} is not an rlvr TextEnv")
    return unwrapped


def _play(env: gym.Env[str, str], policy_for: PolicyFor, seed: int) -> Any:
    return play(env, policy_for(env), seed=seed)


def _gymnasium_api(env: gym.Env[str, str]) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(env.unwrapped, skip_render_check=True)
    return [f"gymnasium warned: {w.message}" for w in caught if "rlvr" not in str(w.filename)]


def _validate_steps(transcript: Any) -> list[str]:
    problems = []
    for i, turn in enumerate(transcript.turns):
        if not math.isfinite(turn.reward) or not 0.0 <= turn.reward <= 1.0:
            problems.append(f"turn {i}: reward {turn.reward} is not finite in [0, 1]")
        if turn.terminated and turn.truncated:
            problems.append(f"turn {i}: terminated and truncated are both set")
        if not isinstance(turn.observation, str):
            problems.append(f"turn {i}: observation is {type(turn.observation).__name__}")
    return problems


def _solvable(make: Callable[[], gym.Env[str, str]], policy: PolicyFor, seeds: Any) -> list[str]:
    env = make()
    failures = []
    for seed in seeds:
        transcript = _play(env, policy, seed)
        failures += _validate_steps(transcript)
        outcome = transcript.outcome
        if outcome is None or not outcome.success or outcome.reward < 1.0:
            got = "no outcome (truncated)" if outcome is None else f"reward {outcome.reward}"
            failures.append(f"seed {seed} ({transcript.task_id}): solver got {got}")
    failures += _terminal_info_problems(env, policy, seeds[0])
    return failures


def _terminal_info_problems(env: gym.Env[str, str], policy: PolicyFor, seed: int) -> list[str]:
    """Replay one solved episode step by step and inspect the raw terminal ``info``."""
    observation, info = env.reset(seed=seed)
    dialogue: list[Message] = dialogue_from(observation, info)
    act = policy(env)
    for _ in range(64):
        action = act(dialogue)
        observation, _, terminated, truncated, info = env.step(action)
        if terminated:
            break
        if truncated:
            return []
        dialogue += [Message("assistant", action), Message(info.get("role", "user"), observation)]
    else:
        return []
    missing = [key for key in _TERMINAL_KEYS if key not in info]
    problems = [f"terminal info lacks {missing}"] if missing else []
    components = info.get("reward_components", {})
    if not isinstance(components, dict) or not components:
        problems.append("terminal info has no reward_components")
    else:
        problems += [
            f"reward component {k}={v} is not in [0, 1]"
            for k, v in components.items()
            if not (isinstance(v, float | int) and 0.0 <= v <= 1.0)
        ]
    if not isinstance(info.get("success"), bool):
        problems.append("terminal info['success'] is not a bool")
    return problems


def _cheats_fail(make: Callable[[], gym.Env[str, str]], seeds: Any) -> list[str]:
    env = make()
    failures = []
    for seed in seeds:
        env.reset(seed=seed)
        probes = _text_env(env).cheat_actions()
        for index, probe in enumerate(probes):
            env.reset(seed=seed)
            _, reward, terminated, truncated, info = env.step(probe)
            if terminated and truncated:
                failures.append(f"seed {seed} probe {index}: terminated and truncated")
            if not math.isfinite(float(reward)) or not 0.0 <= float(reward) <= 1.0:
                failures.append(f"seed {seed} probe {index}: reward {reward} out of range")
            if float(reward) >= 1.0 or info.get("success") is True:
                shown = probe[:60].encode("unicode_escape").decode()
                failures.append(f"seed {seed} probe {index} ({shown!r}) scored {reward}")
    return failures


def _replays(make: Callable[[], gym.Env[str, str]], policy: PolicyFor, seeds: Any) -> list[str]:
    first, second = make(), make()
    failures = []
    for seed in seeds:
        a, b, c = (
            _play(first, policy, seed),
            _play(first, policy, seed),
            _play(second, policy, seed),
        )
        if not a == b == c:
            failures.append(f"seed {seed}: replaying reset(seed) gave a different episode")
    # Without a seed, consecutive resets continue the seeded stream, in any instance.
    first.reset(seed=seeds[0])
    second.reset(seed=seeds[0])
    if first.reset()[0] != second.reset()[0]:
        failures.append("unseeded resets after the same seed differ between instances")
    return failures


def _thread_safe(
    make: Callable[[], gym.Env[str, str]], policy: PolicyFor, seeds: Any, threads: int
) -> list[str]:
    jobs = [seed + 1000 * k for k in range(threads) for seed in seeds]
    sequential = [_play(make(), policy, seed) for seed in jobs]

    def run(seed: int) -> Any:
        return _play(make(), policy, seed)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        concurrent = list(pool.map(run, jobs))
    return [
        f"seed {seed}: threaded episode differs from the sequential one"
        for seed, a, b in zip(jobs, sequential, concurrent, strict=True)
        if a != b
    ]
