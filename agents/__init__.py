"""Agents: policies that map a dialogue to the next reply.

One protocol (:class:`Agent`) serves scripted solvers, baselines, any ``transformers``
causal LM (:class:`HFAgent`) and any OpenAI-compatible chat endpoint
(:class:`OpenAIChatAgent`). :func:`load_agent` resolves the ``--agent`` spec of
``rlvr eval``. Importing this package stays torch-free: the model-backed classes are loaded
on first access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rlvr.agents.base import Agent, SamplingConfig
from rlvr.agents.baseline import EchoAgent, RandomAgent
from rlvr.agents.registry import SCRIPTED_AGENTS, load_agent

if TYPE_CHECKING:
    from rlvr.agents.hf import HFAgent
    from rlvr.agents.http import AgentError, OpenAIChatAgent
    from rlvr.agents.tiny import build_tiny_model, ensure_tiny_model

_LAZY = {
    "HFAgent": "rlvr.agents.hf",
    "AgentError": "rlvr.agents.http",
    "OpenAIChatAgent": "rlvr.agents.http",
    "build_tiny_model": "rlvr.agents.tiny",
    "ensure_tiny_model": "rlvr.agents.tiny",
}
"""Public names whose modules import torch/transformers (or urllib), loaded on first use."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rlvr.agents' has no attribute {name!r}")


__all__ = [
    "SCRIPTED_AGENTS",
    "Agent",
    "AgentError",
    "EchoAgent",
    "HFAgent",
    "OpenAIChatAgent",
    "RandomAgent",
    "SamplingConfig",
    "build_tiny_model",
    "ensure_tiny_model",
    "load_agent",
]
