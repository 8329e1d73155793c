"""Sessions of the env server: one env instance per session, stepped in a thread pool.

Framework-free (asyncio and the standard library): :mod:`rlvr.envs.remote.server` maps HTTP
routes and WebSocket messages onto :class:`SessionManager`. Every env call (``make``,
``reset``, ``step``, ``close``) runs in a shared thread pool, so an env that blocks (the code
sandbox waits on a subprocess) never stalls the event loop or the other sessions. Calls on
one session are serialized by its lock; a second request that arrives while one is running
is refused (409), never queued behind it.

A ``reset`` or ``step`` that runs past ``step_timeout`` is answered with 504: its session is
broken (closed at once, freeing its place; later calls on it get 410) and its env is never
used again (it is closed if the stuck call ever returns). A session's lock is held until its
worker thread is really done, even when the request that started the call was cancelled, so
two calls never run on one env at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import gymnasium as gym
import yaml

from rlvr.envs.remote.protocol import ProtocolError, ResetRequest, result_payload

T = TypeVar("T")
SessionKind = Literal["http", "ws"]


@dataclass(frozen=True)
class ServerConfig:
    """What ``rlvr serve`` runs: one env id (with its ``gym.make`` kwargs) and the limits."""

    env_id: str
    """A registered Gymnasium id, e.g. ``rlvr/Math-v0``."""
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Keyword arguments for ``gym.make``; every session's env gets the same."""
    host: str = "127.0.0.1"
    """Interface to bind; the default accepts local clients only."""
    port: int = 8000
    """TCP port; 0 picks a free one."""
    max_sessions: int = 1024
    """Sessions (HTTP and WebSocket together) open at once; more are refused with 503."""
    session_timeout: float | None = 600.0
    """Seconds a session may sit idle before the server closes it; None keeps it forever."""
    step_timeout: float | None = 60.0
    """Seconds one ``reset`` or ``step`` may run before its session is broken (504); None
    waits forever."""
    threads: int = 32
    """Worker threads that run env calls (blocking steps of different sessions overlap)."""
    max_body_bytes: int = 16 * 1024 * 1024
    """Largest request body or WebSocket message accepted (413 / close code 1009 past it)."""

    def __post_init__(self) -> None:
        if not self.env_id:
            raise ValueError("env_id must be a registered Gymnasium id, got an empty string")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if self.max_sessions < 1:
            raise ValueError(f"max_sessions must be >= 1, got {self.max_sessions}")
        if self.session_timeout is not None and not self.session_timeout > 0:
            raise ValueError(f"session_timeout must be > 0 seconds, got {self.session_timeout}")
        if self.step_timeout is not None and not self.step_timeout > 0:
            raise ValueError(f"step_timeout must be > 0 seconds, got {self.step_timeout}")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if self.max_body_bytes < 1024:
            raise ValueError(f"max_body_bytes must be >= 1024, got {self.max_body_bytes}")


def parse_env_kwargs(pairs: Sequence[str]) -> dict[str, Any]:
    """``["difficulty=2", "max_turns=3"]`` -> ``{"difficulty": 2, "max_turns": 3}`` (YAML)."""
    kwargs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"env arguments are KEY=VALUE, got {pair!r}")
        try:
            kwargs[key] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise ValueError(f"cannot read the value of {key!r}: {error}") from None
    return kwargs


@dataclass(eq=False)
class Session:
    """One client's env and the bookkeeping of its current episode."""

    session_id: str
    kind: SessionKind
    env: gym.Env[Any, Any]
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    created: float = field(default_factory=time.monotonic)
    last_active: float = field(default_factory=time.monotonic)
    episodes: int = 0
    episode_id: str | None = None
    step_count: int = 0
    started: bool = False
    done: bool = False
    running: asyncio.Future[Any] | None = None
    """The env call in the thread pool now (its lock is held until it is done)."""
    broken: str | None = None
    """Why the session was closed under a stuck env call; None while it is usable."""


class SessionManager:
    """Creates, finds, steps, times out and closes sessions; see the module docstring."""

    def __init__(self, config: ServerConfig, make_env: Callable[[], gym.Env[Any, Any]]):
        self.config = config
        self._make_env = make_env
        self._sessions: dict[str, Session] = {}
        self._broken: dict[str, str] = {}
        """HTTP sessions broken by a stuck call (newest ``max_sessions``): id -> reason."""
        self._running: set[asyncio.Future[Any]] = set()
        self._reserved = 0
        self._closing = False
        self._executor = ThreadPoolExecutor(config.threads, thread_name_prefix="rlvr-env")
        self._reaper: asyncio.Task[None] | None = None

    @property
    def active(self) -> int:
        """Sessions open now (and being opened)."""
        return len(self._sessions) + self._reserved

    @property
    def running_calls(self) -> int:
        """Env calls still running in the thread pool (stuck ones included)."""
        return sum(not future.done() for future in self._running)

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """Start a blocking env call in the thread pool."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))
        self._running.add(future)
        future.add_done_callback(self._running.discard)
        return future

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking env call in the thread pool."""
        return await self.submit(fn, *args, **kwargs)

    async def open(self, kind: SessionKind) -> Session:
        """A new session with a fresh env; 503 while shutting down or at ``max_sessions``."""
        if self._closing:
            raise ProtocolError(503, "SHUTTING_DOWN", "the server is shutting down")
        if self.active >= self.config.max_sessions:
            raise ProtocolError(
                503,
                "CAPACITY_REACHED",
                f"all {self.config.max_sessions} sessions are in use; close one or retry later",
            )
        self._reserved += 1
        try:
            env = await self.run(self._make_env)
        except Exception as error:
            raise ProtocolError(
                500, "ENV_ERROR", f"cannot make {self.config.env_id}: {_describe(error)}"
            ) from error
        finally:
            self._reserved -= 1
        session = Session(uuid.uuid4().hex, kind, env)
        self._sessions[session.session_id] = session
        return session

    def get(self, session_id: str, kind: SessionKind = "http") -> Session:
        """The open session of this kind with this id; 404 if there is none (closed, timed
        out, or a WebSocket session, which only its own connection may use)."""
        session = self._sessions.get(session_id)
        if session is None and kind == "http" and session_id in self._broken:
            raise _broken(session_id, self._broken[session_id])
        if session is None or session.kind != kind:
            raise _not_found(session_id)
        return session

    async def reset(self, session: Session, request: ResetRequest) -> dict[str, Any]:
        """Start a new episode in ``session``; returns the result payload."""
        async with self._claim(session):
            try:
                observation, info = await self._env_call(
                    session, "reset", session.env.reset, **request.kwargs()
                )
            except ProtocolError:
                raise
            except ValueError as error:
                raise ProtocolError(400, "INVALID_ARGUMENT", str(error)) from error
            except Exception as error:
                session.started = False
                raise _env_error("reset", error) from error
            session.episodes += 1
            session.episode_id = request.episode_id or f"{session.session_id}-{session.episodes}"
            session.step_count = 0
            session.started, session.done = True, False
            return result_payload(observation, info)

    async def step(self, session: Session, action: str) -> dict[str, Any]:
        """Send one reply to the env of ``session``; 409 before a reset or after the end."""
        async with self._claim(session):
            if not session.started:
                raise ProtocolError(409, "NO_EPISODE", "no episode is running; reset first")
            if session.done:
                raise ProtocolError(
                    409, "EPISODE_OVER", "the episode is over; reset before stepping again"
                )
            try:
                observation, reward, terminated, truncated, info = await self._env_call(
                    session, "step", session.env.step, action
                )
            except ProtocolError:
                raise
            except Exception as error:
                session.done = True
                raise _env_error("step", error) from error
            session.step_count += 1
            session.done = bool(terminated or truncated)
            return result_payload(observation, info, reward, terminated, truncated)

    def state(self, session: Session) -> dict[str, Any]:
        """OpenEnv's state fields (``episode_id``, ``step_count``) and ours."""
        return {
            "episode_id": session.episode_id,
            "step_count": session.step_count,
            "session_id": session.session_id,
            "env_id": self.config.env_id,
            "episodes": session.episodes,
            "done": session.done,
            "idle_s": round(time.monotonic() - session.last_active, 3),
        }

    async def _env_call(
        self, session: Session, call: str, fn: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T:
        """Run ``reset`` or ``step`` of ``session`` (its lock held) for at most
        ``step_timeout`` seconds; past it, break the session and raise 504."""
        future = self.submit(fn, *args, **kwargs)
        session.running = future
        try:
            # shield: a timeout or a cancelled request must not mark the call done early.
            return await asyncio.wait_for(asyncio.shield(future), self.config.step_timeout)
        except TimeoutError:
            if future.done():  # the env itself raised TimeoutError
                raise
        assert self.config.step_timeout is not None
        reason = f"the env did not finish {call} within {self.config.step_timeout:g} s"
        self._break(session, reason)
        raise ProtocolError(504, "ENV_TIMEOUT", f"{reason}; the session was closed")

    def _break(self, session: Session, reason: str) -> None:
        """Close ``session`` under a stuck call: free its place, never use its env again."""
        session.broken = reason
        if self._sessions.get(session.session_id) is session:
            del self._sessions[session.session_id]
        if session.kind == "http":
            self._broken[session.session_id] = reason
            while len(self._broken) > self.config.max_sessions:
                del self._broken[next(iter(self._broken))]
        self._close_when_done(session)

    def _close_when_done(self, session: Session) -> None:
        """Close the env of a session dropped under a running call once that call returns."""
        running = session.running
        if running is None or running.done():
            return

        def close_env(_: object) -> None:
            if not self._closing:
                with contextlib.suppress(RuntimeError):  # the loop or the pool has stopped
                    self.submit(_quiet_close, session.env)

        running.add_done_callback(close_env)

    async def close(self, session_id: str, *, wait: float | None = None) -> bool:
        """Close a session and its env (after any call still running on it, waiting at most
        ``wait`` seconds, default ``step_timeout``; a call still running then keeps the env,
        which is closed when it returns); False if absent."""
        session = self._sessions.pop(session_id, None)
        if session is None:
            return False
        limit = self.config.step_timeout if wait is None else wait
        try:
            await asyncio.wait_for(session.lock.acquire(), limit)
        except TimeoutError:
            self._close_when_done(session)
            return True
        try:
            # A failing or stuck close must not keep the session open or stop the server.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self.submit(session.env.close)), limit)
        finally:
            session.lock.release()
        return True

    async def close_all(self, wait: float = 5.0) -> None:
        """Refuse new sessions, close every open one (waiting at most ``wait`` seconds for a
        running call), and stop the thread pool without waiting for stuck calls."""
        self._closing = True
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        await asyncio.gather(*(self.close(sid, wait=wait) for sid in list(self._sessions)))
        self._executor.shutdown(wait=False, cancel_futures=True)

    def start_reaper(self) -> None:
        """Close idle HTTP sessions in the background (WebSocket handlers time out their own)."""
        if self.config.session_timeout is not None and self._reaper is None:
            self._reaper = asyncio.get_running_loop().create_task(self._reap_forever())

    async def reap_idle(self) -> list[str]:
        """Close the HTTP sessions idle for longer than ``session_timeout``; their ids."""
        timeout = self.config.session_timeout
        if timeout is None:
            return []
        now = time.monotonic()
        stale = [
            s.session_id
            for s in self._sessions.values()
            if s.kind == "http" and not s.lock.locked() and now - s.last_active > timeout
        ]
        for session_id in stale:
            await self.close(session_id)
        return stale

    async def _reap_forever(self) -> None:
        assert self.config.session_timeout is not None
        interval = min(max(self.config.session_timeout / 4, 0.05), 5.0)
        while True:
            await asyncio.sleep(interval)
            await self.reap_idle()

    def health(self) -> dict[str, Any]:
        return {
            "status": "healthy",
            "env_id": self.config.env_id,
            "sessions": self.active,
            "max_sessions": self.config.max_sessions,
        }

    def _claim(self, session: Session) -> _Claim:
        return _Claim(self, session)


class _Claim:
    """Hold a session's lock for one call (409 if another call holds it) and note activity."""

    def __init__(self, manager: SessionManager, session: Session):
        self.manager = manager
        self.session = session

    async def __aenter__(self) -> Session:
        if self.session.broken is not None:
            raise _broken(self.session.session_id, self.session.broken)
        if self.session.lock.locked():
            raise ProtocolError(
                409, "SESSION_BUSY", "another request on this session is still running"
            )
        await self.session.lock.acquire()
        if self.manager._sessions.get(self.session.session_id) is not self.session:
            self.session.lock.release()
            raise _not_found(self.session.session_id)
        return self.session

    async def __aexit__(self, *exc_info: object) -> None:
        session = self.session
        session.last_active = time.monotonic()
        running, session.running = session.running, None
        if running is None or running.done():
            session.lock.release()
        else:  # timed out or cancelled: the worker still uses the env, keep it locked
            running.add_done_callback(lambda _: session.lock.release())


def _not_found(session_id: str) -> ProtocolError:
    return ProtocolError(
        404,
        "SESSION_NOT_FOUND",
        f"no open session {session_id!r} (it was closed, timed out, or never existed)",
    )


def _broken(session_id: str, reason: str) -> ProtocolError:
    return ProtocolError(
        410,
        "SESSION_BROKEN",
        f"session {session_id!r} was closed because {reason}; open a new session",
    )


def _quiet_close(env: gym.Env[Any, Any]) -> None:
    with contextlib.suppress(Exception):
        env.close()


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _env_error(call: str, error: Exception) -> ProtocolError:
    if isinstance(error, gym.error.ResetNeeded):
        return ProtocolError(409, "EPISODE_OVER", str(error))
    return ProtocolError(500, "ENV_ERROR", f"the env raised in {call}: {_describe(error)}")
