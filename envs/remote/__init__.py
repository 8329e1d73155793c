"""Envs over the network: the ``rlvr serve`` server and the ``rlvr/Remote-v0`` client.

``rlvr serve ENV_ID`` exposes any registered env over HTTP and WebSocket (OpenEnv-style
routes; see :mod:`rlvr.envs.remote.server`), and :class:`RemoteEnv` plays it from another
process or machine as an ordinary Gymnasium env. The client needs only ``websockets``; the
server needs FastAPI and uvicorn (both in the ``serve`` extra), loaded on first use.
"""

from __future__ import annotations

from typing import Any

from rlvr.envs.remote.client import RemoteEnv
from rlvr.envs.remote.sessions import ServerConfig, parse_env_kwargs


def __getattr__(name: str) -> Any:
    # The server pulls in FastAPI and uvicorn; import it only when it is asked for.
    if name in ("create_app", "serve"):
        from rlvr.envs.remote import server

        return getattr(server, name)
    raise AttributeError(f"module 'rlvr.envs.remote' has no attribute {name!r}")


__all__ = ["RemoteEnv", "ServerConfig", "create_app", "parse_env_kwargs", "serve"]
