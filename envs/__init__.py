"""Multi-turn text environments with verifiable rewards (torch-free).

Every env id is registered here, in one place, with a lazy entry point, the way Gymnasium
registers its own. ``import rlvr`` calls :func:`register_envs`; ``gym.register_envs(rlvr)``
is the Gymnasium 1.x idiom that keeps linters from flagging the import as unused.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import WrapperSpec

from rlvr.envs.core import (
    TextEnv,
    dialogue_from,
    extend_dialogue,
    parse_difficulty,
    parse_max_turns,
)
from rlvr.envs.curriculum import AdaptiveDifficulty, Curriculum, CurriculumState
from rlvr.envs.spaces import UnicodeText
from rlvr.envs.types import Message, Outcome, Reply, Task, Transcript, Turn
from rlvr.envs.wrappers import (
    EndFlags,
    Policy,
    RecordTranscript,
    TurnLimit,
    outcome_from_info,
    play,
)

ENV_SPECS: dict[str, dict[str, Any]] = {
    "rlvr/Math-v0": {
        "entry_point": "rlvr.envs.math.env:MathEnv",
        "summary": "Math problems generated with sympy (or JSONL); \\boxed{} answers "
        "checked symbolically; retries with feedback up to max_turns.",
    },
    "rlvr/Code-v0": {
        "entry_point": "rlvr.envs.code.env:CodeEnv",
        "summary": "Python functions with hidden unit tests run in a sandbox (or HumanEval); "
        "execution feedback and revisions up to max_turns.",
    },
    "rlvr/RubricQA-v0": {
        "entry_point": "rlvr.envs.rubricqa.env:RubricQAEnv",
        "summary": "Open-ended writing tasks scored criterion by criterion by programmatic "
        "rubrics; optional revision turn.",
    },
    "rlvr/MultiHop-v0": {
        "entry_point": "rlvr.envs.multihop.env:MultiHopEnv",
        "summary": "Multi-hop questions over a generated knowledge graph with tiered "
        "distractors, in a long context or through search tools.",
        "max_episode_steps": 32,
    },
    "rlvr/Ecom-v0": {
        "entry_point": "rlvr.envs.ecom.env:EcomEnv",
        "summary": "E-commerce shopping dialogues with tools, a scripted user with a hidden "
        "goal and a verifiable state-diff reward (Ecom-RLVE style).",
        "max_episode_steps": 400,
    },
}
"""Every registered env: its entry point, a one-line summary (``rlvr envs`` prints it) and,
for envs that do not end by themselves, a default turn budget (``max_episode_steps``, which
truncates; ``gym.make(id, max_episode_steps=n)`` overrides it)."""


_END_FLAGS = WrapperSpec(name="EndFlags", entry_point="rlvr.envs.wrappers:EndFlags", kwargs={})

REMOTE_ENV_ID = "rlvr/Remote-v0"
"""A client for an env served by ``rlvr serve``: ``gym.make(REMOTE_ENV_ID, url=...)``. It is
not in :data:`ENV_SPECS` (it needs a running server; the served env applies its own limits)."""


def register_envs() -> None:
    """Register every ``rlvr/...`` id with Gymnasium; calling it again is a no-op.

    Each id gets the :class:`EndFlags` wrapper, outside any ``TimeLimit``, so that
    ``terminated`` and ``truncated`` are never both set. ``rlvr/Remote-v0`` is registered
    bare: the server's env already has them.
    """
    if REMOTE_ENV_ID not in gym.registry:
        gym.register(
            id=REMOTE_ENV_ID,
            entry_point="rlvr.envs.remote.client:RemoteEnv",
            disable_env_checker=True,
        )
    for env_id, spec in ENV_SPECS.items():
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point=spec["entry_point"],
                max_episode_steps=spec.get("max_episode_steps"),
                disable_env_checker=True,
                additional_wrappers=(_END_FLAGS,),
            )


def __getattr__(name: str) -> Any:
    # The checker imports gymnasium's env_checker, which is slow-ish; load it on first use.
    if name == "check_env":
        from rlvr.envs.checker import check_env

        return check_env
    if name in ("CheckReport", "EnvCheckError"):
        from rlvr.envs import checker

        return getattr(checker, name)
    raise AttributeError(f"module 'rlvr.envs' has no attribute {name!r}")


__all__ = [
    "ENV_SPECS",
    "REMOTE_ENV_ID",
    "AdaptiveDifficulty",
    "CheckReport",
    "Curriculum",
    "CurriculumState",
    "EndFlags",
    "EnvCheckError",
    "Message",
    "Outcome",
    "Policy",
    "RecordTranscript",
    "Reply",
    "Task",
    "TextEnv",
    "Transcript",
    "Turn",
    "TurnLimit",
    "UnicodeText",
    "check_env",
    "dialogue_from",
    "extend_dialogue",
    "outcome_from_info",
    "parse_difficulty",
    "parse_max_turns",
    "play",
    "register_envs",
]
