"""``RemoteEnv``: a Gymnasium env that plays an env served by ``rlvr serve`` on another machine.

Registered as ``rlvr/Remote-v0``::

    env = gym.make("rlvr/Remote-v0", url="http://127.0.0.1:8000")
    obs, info = env.reset(seed=7)
    obs, reward, terminated, truncated, info = env.step("\\\\boxed{42}")

``reset`` and ``step`` return what the served env returns: the same observation, reward and
flags, and the same ``info`` when it is JSON-representable (``str`` keys; strings, numbers,
booleans, None, lists and dicts; tuples come back as lists, numpy scalars and arrays as
Python numbers and lists). So a seeded remote episode of an rlvr env equals the local one.
The client keeps one
WebSocket open per env (one server session); ``close()`` ends it. It needs only the standard
library and the ``websockets`` package (``pip install 'rlvr-gym[serve]'``).

Errors: ``ConnectionError`` when the server cannot be reached or drops the session (idle
timeout, shutdown, or a reset/step past the server's step timeout, after which ``reset()``
opens a new session); ``gymnasium.error.ResetNeeded`` for a step before ``reset`` or after the
episode ended (as a local env raises); ``ValueError`` for reset arguments the env rejects;
``RuntimeError`` for any other refusal. Each message names the URL and quotes the server.
A non-``str`` action raises ``TypeError`` before anything is sent (the protocol carries text).
"""

from __future__ import annotations

import contextlib
import inspect
import ipaddress
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import gymnasium as gym

from rlvr.envs.remote.protocol import (
    ACTION_FIELD,
    INFO_FIELD,
    OBSERVATION_FIELD,
    dumps,
    max_length_of,
)
from rlvr.envs.spaces import UnicodeText

if TYPE_CHECKING:
    from websockets.sync.client import ClientConnection

_DEFAULT_OBSERVATION_CHARS = 1_000_000
_DEFAULT_ACTION_CHARS = 100_000


def split_url(url: str) -> tuple[str, str]:
    """``(http_base, ws_url)`` for a server URL given as http(s):// or ws(s)://."""
    parts = urlsplit(url.strip())
    schemes = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
    if parts.scheme not in schemes or not parts.netloc:
        raise ValueError(f"url must look like http://HOST:PORT (or ws://...), got {url!r}")
    ws_scheme = schemes[parts.scheme]
    http_scheme = "https" if ws_scheme == "wss" else "http"
    path = parts.path.rstrip("/")
    if path.endswith("/ws"):
        path = path[: -len("/ws")]
    base = urlunsplit((http_scheme, parts.netloc, path, "", ""))
    return base, urlunsplit((ws_scheme, parts.netloc, f"{path}/ws", "", ""))


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RemoteEnv(gym.Env[str, str]):
    """A served env, played over one WebSocket session (see the module docstring).

    Args:
        url: the server, ``http://HOST:PORT`` (``ws://HOST:PORT`` works too).
        timeout: seconds to wait for each answer (a slow env step included); None waits
            forever. On a timeout the connection is closed and ``ConnectionError`` raised.
        connect_timeout: seconds to wait for the connection to open.
        render_mode: ``None`` or ``"ansi"`` (``render()`` returns the last observation).
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"]}  # noqa: RUF012 - as gym.Env declares it

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        *,
        timeout: float | None = 300.0,
        connect_timeout: float = 10.0,
        render_mode: str | None = None,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be 'ansi' or None, got {render_mode!r}")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds or None, got {timeout}")
        self.url, self._ws_url = split_url(url)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.render_mode = render_mode
        schema = self._get("/schema")
        self.observation_space = UnicodeText(
            max_length_of(schema.get("observation"), OBSERVATION_FIELD)
            or _DEFAULT_OBSERVATION_CHARS
        )
        self.action_space = UnicodeText(
            max_length_of(schema.get("action"), ACTION_FIELD) or _DEFAULT_ACTION_CHARS
        )
        self._last_observation: str | None = None
        self._ws: ClientConnection | None = None
        self._connect()

    # ------------------------------------------------------------------ Gymnasium API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Start an episode on the server (reconnecting first if the session was closed)."""
        super().reset(seed=seed)
        data: dict[str, Any] = {}
        if seed is not None:
            data["seed"] = seed
        if options is not None:
            data["options"] = options
        if self._ws is None:
            self._connect()
        result = self._request({"type": "reset", "data": data}, "observation")
        observation, info = self._observation(result)
        self._last_observation = observation
        return observation, info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if not isinstance(action, str):
            raise TypeError(f"RemoteEnv actions must be str, got {type(action).__name__}")
        result = self._request({"type": "step", "data": {ACTION_FIELD: action}}, "observation")
        observation, info = self._observation(result)
        self._last_observation = observation
        reward = result.get("reward")
        return (
            observation,
            float(reward) if reward is not None else 0.0,
            bool(result.get("terminated", result.get("done", False))),
            bool(result.get("truncated", False)),
            info,
        )

    def render(self) -> str | None:
        return self._last_observation if self.render_mode == "ansi" else None

    def close(self) -> None:
        """End the server session (its env is closed there); safe to call twice."""
        ws, self._ws = self._ws, None
        if ws is None:
            return
        with contextlib.suppress(Exception):  # the connection may be gone; closing is best effort
            ws.send(dumps({"type": "close"}))
        ws.close()

    def server_state(self) -> dict[str, Any]:
        """The session as the server sees it: ``episode_id``, ``step_count``, ``episodes``..."""
        if self._ws is None:
            raise ConnectionError(f"{self.url}: not connected (closed); call reset() to reconnect")
        return self._request({"type": "state"}, "state")

    # ------------------------------------------------------------------ transport

    def _get(self, path: str) -> dict[str, Any]:
        handlers = [urllib.request.ProxyHandler({})] if _is_loopback(self.url) else []
        opener = urllib.request.build_opener(*handlers)
        try:
            with opener.open(self.url + path, timeout=self.connect_timeout) as response:
                data = json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"{self.url}{path}: {_http_error_text(error)}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ConnectionError(f"cannot reach the env server at {self.url}: {reason}") from None
        except json.JSONDecodeError:
            raise RuntimeError(
                f"{self.url}{path} did not answer JSON; is it an rlvr server?"
            ) from None
        if not isinstance(data, dict):
            raise RuntimeError(f"{self.url}{path} answered {type(data).__name__}, not an object")
        return data

    def _connect(self) -> None:
        try:
            from websockets.exceptions import InvalidStatus
            from websockets.sync.client import connect
        except ImportError:
            raise ImportError(
                "RemoteEnv needs the 'websockets' package: pip install 'rlvr-gym[serve]'"
            ) from None
        # websockets 17 wants `legacy=True` to return an open connection (not a context).
        legacy = {"legacy": True} if "legacy" in inspect.signature(connect).parameters else {}
        open_connection: Callable[..., ClientConnection] = connect
        try:
            self._ws = open_connection(
                self._ws_url,
                open_timeout=self.connect_timeout,
                compression=None,
                max_size=None,
                proxy=None if _is_loopback(self._ws_url) else True,
                **legacy,
            )
        except InvalidStatus as error:
            body = bytes(error.response.body or b"")
            raise ConnectionError(
                f"the env server at {self.url} refused a session: {_error_text(body)}"
            ) from None
        except (OSError, TimeoutError) as error:
            raise ConnectionError(f"cannot connect to {self._ws_url}: {error}") from None

    def _request(self, message: dict[str, Any], expected: str) -> dict[str, Any]:
        """Send one message and read its answer; errors become exceptions (module docstring)."""
        from websockets.exceptions import ConnectionClosed

        if self._ws is None:
            raise ConnectionError(f"{self.url}: not connected (closed); call reset() to reconnect")
        ws = self._ws
        try:
            ws.send(dumps(message))
            raw = ws.recv(timeout=self.timeout)
        except ConnectionClosed as error:
            self._ws = None
            raise ConnectionError(f"{self.url}: {_closed_text(error)}") from None
        except TimeoutError:
            self.close()
            raise ConnectionError(
                f"{self.url}: no answer within {self.timeout:g} s; the session was closed"
            ) from None
        reply = json.loads(raw)
        if not isinstance(reply, dict):
            raise RuntimeError(f"{self.url}: malformed answer {str(raw)[:200]!r}")
        if reply.get("type") == "error":
            refusal = _server_error(self.url, reply.get("data") or {})
            if isinstance(refusal, ConnectionError):
                self.close()  # the server closed the session; reset() opens a new one
            raise refusal
        data = reply.get("data")
        if reply.get("type") != expected or not isinstance(data, dict):
            raise RuntimeError(
                f"{self.url}: expected a {expected!r} answer, got {str(raw)[:200]!r}"
            )
        return data

    def _observation(self, result: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The observation text and the ``info`` dict of a result."""
        observation = result.get("observation")
        if not isinstance(observation, dict) or not isinstance(
            observation.get(OBSERVATION_FIELD), str
        ):
            raise RuntimeError(f"{self.url}: the answer holds no observation text")
        info = observation.get(INFO_FIELD)
        return str(observation[OBSERVATION_FIELD]), info if isinstance(info, dict) else {}


def _server_error(url: str, data: dict[str, Any]) -> Exception:
    code, message = data.get("code", "UNKNOWN"), data.get("message", "unknown error")
    text = f"{url}: {message}"
    if code == "INVALID_ARGUMENT":
        return ValueError(text)
    if code in ("NO_EPISODE", "EPISODE_OVER"):
        return gym.error.ResetNeeded(text)
    if code in ("ENV_TIMEOUT", "SESSION_BROKEN"):
        return ConnectionError(f"{text}; reset() opens a new session")
    return RuntimeError(f"{text} ({code})")


def _closed_text(error: Exception) -> str:
    frame = getattr(error, "rcvd", None)
    if frame is None:
        return "the connection to the env server was lost"
    reason = f": {frame.reason}" if frame.reason else ""
    return f"the env server closed the session (code {frame.code}{reason})"


def _error_text(body: bytes) -> str:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return body.decode("utf-8", "replace")[:200] or "no reason given"
    if isinstance(data, dict) and "error" in data:
        return str(data["error"])
    return str(data)[:200]


def _http_error_text(error: urllib.error.HTTPError) -> str:
    try:
        body = error.read()
    except OSError:
        body = b""
    return f"HTTP {error.code}: {_error_text(body)}"
