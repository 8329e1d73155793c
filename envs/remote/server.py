"""The env server behind ``rlvr serve``: any Gymnasium text env over HTTP and WebSocket.

One server runs one env id. Each session owns its own env instance (made with the server's
``gym.make`` kwargs); many sessions run at once, their env calls in a thread pool.

Routes (JSON in, JSON out; errors are ``{"error": message, "code": CODE}`` with a 4xx/5xx
status)::

    GET    /health                   {"status": "healthy", "env_id", "sessions", "max_sessions"}
    GET    /metadata                 {"name", "description", "version"}
    GET    /schema                   {"action", "observation", "state"}: JSON schemas
    POST   /reset                    {"seed"?, "options"?, "session_id"?, "episode_id"?}
                                     -> {"session_id", ...result}
    POST   /step                     {"session_id", "action": text | {"message": text}}
                                     -> {"session_id", ...result}
    GET    /state?session_id=ID      {"episode_id", "step_count", "session_id", "episodes", ...}
    DELETE /sessions/{session_id}    {"session_id", "closed": true}
    WS     /ws                       one session per connection (below)

A result is ``{"observation": {"text": obs, "info": info}, "reward": r, "done": terminated or
truncated, "terminated", "truncated"}`` (``reward`` is null after a reset).

WebSocket ``/ws``: the connection is the session. The client sends
``{"type": "reset", "data": {"seed"?, "options"?}}``, ``{"type": "step", "data":
{"message": text}}``, ``{"type": "state"}`` or ``{"type": "close"}``; the server answers
``{"type": "observation", "data": result}``, ``{"type": "state", "data": state}`` or
``{"type": "error", "data": {"message", "code", "status"}}`` (any bad message, the
connection stays open). A connection refused for
capacity gets an HTTP 503 handshake response with a JSON body. An idle connection is closed
with code 4408 after the session timeout; a dropped one frees its session at once.

Status codes: 400 malformed JSON (integers past Python's digit limit and too-deep nesting
included), missing or unknown fields, wrong types (a non-string action), or reset
arguments the env rejects; 404 unknown session or route; 409 a step before any reset or
after the episode ended, or a second request on a session while one is running; 410 a
session closed after a stuck call; 413 a body over the size limit (counted as it arrives,
chunked bodies included); 503 all sessions in use, or shutting down; 500 the env raised, or
its result is not JSON-representable (the server goes on; the session needs a reset); 504
a reset or step ran past ``step_timeout`` (the session is closed; open a new one).

OpenEnv compatibility (meta-pytorch/OpenEnv, ``openenv.core.env_server.http_server``):

- Followed: the routes ``/health``, ``/metadata``, ``/schema`` (``action``/``observation``/
  ``state`` schemas), ``/reset``, ``/step``, ``/state`` and ``/ws``; the WebSocket messages
  (``reset``/``step``/``state``/``close`` in, ``observation``/``state``/``error`` out, with
  ``data``); the result shape ``observation``/``reward``/``done``; the state fields
  ``episode_id`` and ``step_count``; the error fields ``message`` and ``code`` over WebSocket.
  So OpenEnv's ``GenericEnvClient(base_url=...)`` plays our envs with
  ``env.step({"message": reply})``, and reads ``info`` as ``result.observation["info"]``.
- Different: OpenEnv's HTTP ``/reset`` and ``/step`` are stateless (a fresh env per request);
  ours keep the env in a session named by ``session_id``, so multi-turn episodes work over
  plain HTTP too (``DELETE /sessions/{id}`` frees one). We report ``terminated`` and
  ``truncated`` apart, next to OpenEnv's ``done``; ``info`` travels inside the observation
  (not in the optional top-level ``metadata``, which older OpenEnv clients drop). HTTP
  errors use ``{"error", "code"}`` rather than FastAPI's ``{"detail"}``; WebSocket error
  codes are ours (``BAD_REQUEST``, ``NO_EPISODE``, ``EPISODE_OVER``, ``SESSION_BUSY``,
  ``CAPACITY_REACHED``, ...) and carry the matching HTTP ``status``. There are no MCP
  routes (``/mcp``), no task-listing routes and no web UI. Checked against the released
  ``openenv-core`` 0.3.0 ``GenericEnvClient``: reset, step, state, and the error raised on a
  step after the episode ended.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import gymnasium as gym
import uvicorn
from fastapi import FastAPI, Request, WebSocket
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.websockets import WebSocketDisconnect

import rlvr
from rlvr.envs.remote.protocol import (
    ACTION_FIELD,
    INFO_FIELD,
    OBSERVATION_FIELD,
    ProtocolError,
    bad_request,
    dumps,
    loads_object,
    parse_action,
    parse_http_step,
    parse_reset,
    text_schema,
)
from rlvr.envs.remote.sessions import ServerConfig, Session, SessionManager

IDLE_CLOSE_CODE = 4408
"""WebSocket close code for a session closed after ``session_timeout`` idle seconds."""
GRACEFUL_SHUTDOWN_S = 5
"""Seconds a shutdown waits for running requests before it cancels them."""

_STATE_SCHEMA = {
    "type": "object",
    "properties": {
        "episode_id": {"type": ["string", "null"]},
        "step_count": {"type": "integer", "minimum": 0},
        "session_id": {"type": "string"},
        "env_id": {"type": "string"},
        "episodes": {"type": "integer", "minimum": 0},
        "done": {"type": "boolean"},
        "idle_s": {"type": "number"},
    },
}


def _json(payload: dict[str, Any], status: int = 200) -> Response:
    return Response(_encode(payload), status_code=status, media_type="application/json")


def _encode(payload: dict[str, Any]) -> str:
    """``dumps``, with a result JSON cannot hold (a set in ``info``) as a 500 ENV_ERROR."""
    try:
        return dumps(payload)
    except (TypeError, ValueError) as error:
        raise ProtocolError(
            500, "ENV_ERROR", f"the env's result is not JSON-representable: {error}"
        ) from None


def _probe(config: ServerConfig) -> gym.Env[Any, Any]:
    """Make one env up front, so a bad id or bad kwargs fail at start, not per session."""
    rlvr.register_envs()
    try:
        return gym.make(config.env_id, **config.env_kwargs)
    except (gym.error.Error, TypeError, ValueError) as error:
        raise ValueError(f"cannot make {config.env_id!r}: {error}") from None


def _schemas(env: gym.Env[Any, Any]) -> dict[str, Any]:
    def max_length(space: Any) -> int:
        return int(getattr(space, "max_length", 0)) or 1_000_000

    return {
        "action": text_schema(max_length(env.action_space), ACTION_FIELD),
        "observation": _observation_schema(max_length(env.observation_space)),
        "state": _STATE_SCHEMA,
    }


def _observation_schema(max_length: int) -> dict[str, Any]:
    schema = text_schema(max_length, OBSERVATION_FIELD)
    schema["properties"][INFO_FIELD] = {"type": "object", "description": "the Gymnasium info"}
    return schema


def _metadata(config: ServerConfig, env: gym.Env[Any, Any]) -> dict[str, Any]:
    spec = rlvr.ENV_SPECS.get(config.env_id)
    doc = (type(env.unwrapped).__doc__ or "").strip().splitlines()
    description = spec["summary"] if spec else (doc[0] if doc else config.env_id)
    return {"name": config.env_id, "description": description, "version": rlvr.__version__}


def create_app(config: ServerConfig) -> FastAPI:
    """The ASGI app for ``config`` (routes in the module docstring); raises ValueError if the
    env cannot be made."""
    probe = _probe(config)
    schemas, metadata = _schemas(probe), _metadata(config, probe)
    probe.close()
    manager = SessionManager(config, lambda: gym.make(config.env_id, **config.env_kwargs))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        manager.start_reaper()
        yield
        await manager.close_all()

    app = FastAPI(title=f"rlvr env server: {config.env_id}", lifespan=lifespan)
    app.state.sessions = manager
    _add_error_handlers(app)
    _add_info_routes(app, manager, schemas, metadata)
    _add_session_routes(app, manager)
    _add_websocket_route(app, manager)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    async def protocol_error(_: Request, error: Exception) -> Response:
        assert isinstance(error, ProtocolError)
        return _json(error.body(), error.status)

    async def http_error(_: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(error.status_code, "HTTP_ERROR")
        return _json({"error": str(error.detail), "code": code}, error.status_code)

    async def unexpected(_: Request, error: Exception) -> Response:
        return _json({"error": f"internal error: {type(error).__name__}", "code": "INTERNAL"}, 500)

    app.add_exception_handler(ProtocolError, protocol_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


def _add_info_routes(
    app: FastAPI, manager: SessionManager, schemas: dict[str, Any], metadata: dict[str, Any]
) -> None:
    @app.get("/health")
    async def health() -> Response:
        return _json(manager.health())

    @app.get("/metadata")
    async def get_metadata() -> Response:
        return _json(metadata)

    @app.get("/schema")
    async def schema() -> Response:
        return _json(schemas)


def _add_session_routes(app: FastAPI, manager: SessionManager) -> None:
    limit = manager.config.max_body_bytes

    @app.post("/reset")
    async def reset(request: Request) -> Response:
        parsed = parse_reset(loads_object(await _body(request, limit)))
        if parsed.session_id is None:
            session = await manager.open("http")
            try:
                payload = await manager.reset(session, parsed)
            except ProtocolError:
                await manager.close(session.session_id)
                raise
        else:
            session = manager.get(parsed.session_id)
            payload = await manager.reset(session, parsed)
        return _json({"session_id": session.session_id, **payload})

    @app.post("/step")
    async def step(request: Request) -> Response:
        session_id, action = parse_http_step(loads_object(await _body(request, limit)))
        payload = await manager.step(manager.get(session_id), action)
        return _json({"session_id": session_id, **payload})

    @app.get("/state")
    async def state(session_id: str | None = None) -> Response:
        if not session_id:
            raise bad_request("missing query parameter 'session_id'")
        return _json(manager.state(manager.get(session_id)))

    @app.delete("/sessions/{session_id}")
    async def close(session_id: str) -> Response:
        await manager.close(manager.get(session_id).session_id)
        return _json({"session_id": session_id, "closed": True})


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it passes ``limit`` bytes: by its declared
    length, or while it arrives (a chunked body declares none)."""
    too_large = ProtocolError(413, "TOO_LARGE", f"request body over the limit of {limit} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _add_websocket_route(app: FastAPI, manager: SessionManager) -> None:
    @app.websocket("/ws")
    async def websocket_session(websocket: WebSocket) -> None:
        try:
            session = await manager.open("ws")
        except ProtocolError as error:
            await _refuse(websocket, error)
            return
        try:
            await websocket.accept()
            await _converse(websocket, manager, session)
        except WebSocketDisconnect:
            pass
        finally:
            await manager.close(session.session_id)


async def _refuse(websocket: WebSocket, error: ProtocolError) -> None:
    """Refuse a WebSocket handshake with an HTTP error (or, where the server cannot send one,
    accept and answer with an error message and close code 1013, "try again later")."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(_json(error.body(), error.status))
        return
    await websocket.accept()
    await websocket.send_text(dumps(error.ws_message()))
    await websocket.close(code=1013, reason=error.code)


async def _converse(websocket: WebSocket, manager: SessionManager, session: Session) -> None:
    """Answer one message at a time until the client closes, says "close", or idles out."""
    timeout = manager.config.session_timeout
    while True:
        try:
            message = await asyncio.wait_for(websocket.receive(), timeout)
        except asyncio.TimeoutError:
            reason = f"session idle for more than {timeout:g} s; closed"
            await websocket.close(code=IDLE_CLOSE_CODE, reason=reason)
            return
        if message["type"] == "websocket.disconnect":
            return
        raw = message.get("text") if message.get("text") is not None else message.get("bytes")
        try:
            reply = await _answer(manager, session, loads_object(raw or "", "message"))
        except ProtocolError as error:
            reply = error.ws_message()
        except Exception as error:  # one bad message must not end the connection
            reply = ProtocolError(
                500, "INTERNAL", f"internal error: {type(error).__name__}"
            ).ws_message()
        if reply is None:
            await websocket.close(code=1000)
            return
        try:
            text = _encode(reply)
        except ProtocolError as error:
            text = dumps(error.ws_message())
        await websocket.send_text(text)


async def _answer(
    manager: SessionManager, session: Session, message: dict[str, Any]
) -> dict[str, Any] | None:
    """The reply to one WebSocket message; None for "close"."""
    kind = message.get("type")
    data = message.get("data", {})
    if not isinstance(data, dict):
        raise bad_request(f"'data' must be a JSON object, got {type(data).__name__}")
    if kind == "reset":
        request = parse_reset(data)
        if request.session_id is not None:
            raise bad_request(
                "'session_id' is not used over WebSocket: the connection is the session"
            )
        return {"type": "observation", "data": await manager.reset(session, request)}
    if kind == "step":
        return {"type": "observation", "data": await manager.step(session, parse_action(data))}
    if kind == "state":
        return {"type": "state", "data": manager.state(session)}
    if kind == "close":
        return None
    raise ProtocolError(
        400, "UNKNOWN_TYPE", f"unknown message type {kind!r}; expected reset, step, state or close"
    )


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    sock.listen(2048)
    return sock


def uvicorn_server(
    app: FastAPI, config: ServerConfig, log_level: str = "warning"
) -> uvicorn.Server:
    """A uvicorn server for ``app`` with the limits of ``config`` (no access log)."""
    return uvicorn.Server(
        uvicorn.Config(
            app,
            log_level=log_level,
            access_log=False,
            ws_max_size=config.max_body_bytes,
            ws_per_message_deflate=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            lifespan="on",
        )
    )


def serve(
    config: ServerConfig,
    *,
    log_level: str = "warning",
    announce: Callable[[str], None] = print,
    abandon_stuck_calls: bool = False,
) -> int:
    """Run the server until SIGINT or SIGTERM, then close every session and env; returns 0.

    ``announce`` gets one line with the address once the socket listens (with the real port
    when ``config.port`` is 0). Env calls still stuck after the shutdown keep their worker
    threads, which Python waits for at exit; ``abandon_stuck_calls`` (the ``rlvr serve``
    command sets it) ends the process at once instead, with status 0.
    """
    app = create_app(config)
    sock = bind(config.host, config.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    announce(
        f"serving {config.env_id} on http://{shown}:{port} (WebSocket ws://{shown}:{port}/ws); "
        f"up to {config.max_sessions} sessions; Ctrl+C or SIGTERM stops"
    )
    server = uvicorn_server(app, config, log_level)
    with _signals_end_the_run():
        server.run(sockets=[sock])
    sock.close()
    stuck = app.state.sessions.running_calls
    if stuck and abandon_stuck_calls:
        announce(f"stopped; abandoning {stuck} env call(s) still running")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


@contextmanager
def _signals_end_the_run() -> Iterator[None]:
    """uvicorn handles SIGINT/SIGTERM (graceful shutdown), then re-raises the signal into the
    handler that was there before it; make that handler a no-op so the process exits 0."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in handled}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
