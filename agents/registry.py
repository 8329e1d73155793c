"""Resolve the ``--agent NAME_OR_PATH`` of ``rlvr eval`` into an :class:`Agent`.

Accepted specs:

=================================  ===========================================================
``scripted``                       the env's scripted solver (needs ``env_id``)
``random`` / ``echo``              :class:`~rlvr.agents.baseline.RandomAgent` / ``EchoAgent``
``tiny``                           the embedded tiny model (built once into the cache), HF
``hf:PATH_OR_ID``                  :class:`~rlvr.agents.hf.HFAgent` on a hub id or directory
a directory holding config.json    :class:`~rlvr.agents.hf.HFAgent` on that directory
``http(s)://HOST/v1[#MODEL]``      :class:`~rlvr.agents.http.OpenAIChatAgent`
``package.module:Class``           any importable Agent class, built with ``**kwargs``
=================================  ===========================================================

Nothing here imports torch or transformers: the model-backed agents are imported only when
a spec asks for one, so ``rlvr eval --agent scripted`` starts fast.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

from rlvr.agents.base import Agent, SamplingConfig
from rlvr.agents.baseline import EchoAgent, RandomAgent

SCRIPTED_AGENTS: dict[str, str] = {
    "rlvr/Math-v0": "rlvr.agents.scripted.math:MathSolver",
    "rlvr/Code-v0": "rlvr.agents.scripted.code:CodeSolver",
    "rlvr/RubricQA-v0": "rlvr.agents.scripted.rubricqa:RubricQASolver",
    "rlvr/MultiHop-v0": "rlvr.agents.scripted.multihop:MultiHopSolver",
    "rlvr/Ecom-v0": "rlvr.agents.scripted.ecom:EcomSolver",
}
"""The scripted solver of each env, as a lazy ``"module:Class"`` entry point."""

ACCEPTED_FORMS = (
    "'scripted', 'random', 'echo', 'tiny', 'hf:PATH_OR_ID', a model directory with "
    "config.json, 'http(s)://HOST/v1[#MODEL]' or 'package.module:Class'"
)
"""The spec forms :func:`load_agent` accepts, for error messages and ``--help``."""

_ENTRY_POINT = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def import_object(entry_point: str) -> Any:
    """The object named by a ``"package.module:attribute"`` string."""
    module_name, _, attribute = entry_point.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def load_agent(
    spec: str,
    *,
    env_id: str | None = None,
    sampling: SamplingConfig | None = None,
    **kwargs: Any,
) -> Agent:
    """Build the agent that ``spec`` names (see the module docstring for the forms).

    Args:
        spec: The agent name, model path or URL.
        env_id: The env the agent will play; required for ``scripted``.
        sampling: Sampling settings for model-backed agents (``tiny``, ``hf``, ``http``);
            for ``random`` its seed seeds the reply stream. Others ignore it.
        **kwargs: Passed on to the agent's constructor (for ``tiny`` also ``cache_dir``,
            where the built model is kept).

    Raises:
        ValueError: ``spec`` has none of the accepted forms, or ``scripted`` is asked for an
            env without a scripted solver.
    """
    spec = spec.strip()
    if spec == "scripted":
        return _build(import_object(_scripted_entry_point(env_id)), kwargs)
    if spec == "random":
        if sampling is not None and sampling.seed is not None:
            kwargs.setdefault("seed", sampling.seed)
        return RandomAgent(**kwargs)
    if spec == "echo":
        return EchoAgent(**kwargs)
    if spec == "tiny":
        from rlvr.agents.tiny import ensure_tiny_model

        path = ensure_tiny_model(kwargs.pop("cache_dir", None))
        return _hf_agent(str(path), sampling, kwargs)
    if spec.startswith(("http://", "https://")):
        from rlvr.agents.http import OpenAIChatAgent

        base_url, _, model = spec.partition("#")
        return OpenAIChatAgent(base_url, model or None, sampling=sampling, **kwargs)
    if spec.startswith("hf:") and len(spec) > 3:
        return _hf_agent(spec[3:], sampling, kwargs)
    if (Path(spec) / "config.json").is_file():
        return _hf_agent(spec, sampling, kwargs)
    if _ENTRY_POINT.fullmatch(spec):
        return _build(import_object(spec), kwargs)
    raise ValueError(f"unknown agent {spec!r}; expected {ACCEPTED_FORMS}")


def _scripted_entry_point(env_id: str | None) -> str:
    if env_id is None:
        raise ValueError("agent 'scripted' needs env_id (the env it will solve)")
    if env_id not in SCRIPTED_AGENTS:
        raise ValueError(
            f"no scripted solver for {env_id!r}; known: {', '.join(sorted(SCRIPTED_AGENTS))}"
        )
    return SCRIPTED_AGENTS[env_id]


def _build(cls: Any, kwargs: dict[str, Any]) -> Agent:
    """Instantiate an agent class from an entry point, checking it is an :class:`Agent`."""
    agent = cls(**kwargs)
    if not isinstance(agent, Agent):
        raise TypeError(f"{cls!r} is not an rlvr Agent (got {type(agent).__name__})")
    return agent


def _hf_agent(path_or_id: str, sampling: SamplingConfig | None, kwargs: dict[str, Any]) -> Agent:
    from rlvr.agents.hf import HFAgent

    return HFAgent(path_or_id, sampling=sampling, **kwargs)
