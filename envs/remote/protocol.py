"""The wire format shared by the env server and :class:`~rlvr.envs.remote.client.RemoteEnv`.

The standard library and numpy only: the client needs nothing of the server's web stack. Every
message is a JSON object. A result (of ``reset`` or ``step``) reads, in OpenEnv's shape::

    {"observation": {"text": obs, "info": info}, "reward": r | null, "done": bool,
     "terminated": bool, "truncated": bool}

``info`` is the Gymnasium ``info`` dict (inside the observation, where every OpenEnv client
version can read it); ``reward`` is ``null`` after a reset.
JSON is written with ``ensure_ascii=True``, so any Python ``str`` (lone surrogates included)
and any float (NaN and infinities included) survives the round trip exactly. The rest of
``info`` travels as JSON does: tuples come back as lists, non-string dict keys as strings,
numpy scalars and arrays as Python numbers and (nested) lists; values JSON cannot hold at all
(sets, arbitrary objects) are refused. So ``info`` round-trips unchanged when it is
JSON-representable (``str`` keys; ``str``, ``int``, ``float``, ``bool``, ``None``, lists and
dicts of them), which every rlvr env's ``info`` is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

ACTION_FIELD = "message"
"""The field of an action object that holds the agent's reply (OpenEnv's chat envs use it)."""
OBSERVATION_FIELD = "text"
"""The field of an observation object that holds the env's message."""
INFO_FIELD = "info"
"""The field of an observation object that holds the Gymnasium ``info`` dict."""

RESET_FIELDS = frozenset({"seed", "options", "session_id", "episode_id"})
STEP_FIELDS = frozenset({"session_id", "action"})


class ProtocolError(Exception):
    """A request the server refuses: an HTTP status, a stable code and a one-line message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        """The JSON body of an HTTP error response."""
        return {"error": self.message, "code": self.code}

    def ws_message(self) -> dict[str, Any]:
        """The WebSocket error message (OpenEnv's ``{"type": "error", "data": ...}``)."""
        return {
            "type": "error",
            "data": {"message": self.message, "code": self.code, "status": self.status},
        }


def bad_request(message: str) -> ProtocolError:
    return ProtocolError(400, "BAD_REQUEST", message)


@dataclass(frozen=True)
class ResetRequest:
    """What a reset asks for: Gymnasium's ``seed`` and ``options``."""

    seed: int | None = None
    options: dict[str, Any] | None = None
    session_id: str | None = None
    episode_id: str | None = None

    def kwargs(self) -> dict[str, Any]:
        return {"seed": self.seed, "options": self.options}


def dumps(payload: dict[str, Any]) -> str:
    """Encode one message (ASCII JSON: every ``str`` and float round-trips exactly; numpy
    scalars and arrays become Python numbers and lists). Raises TypeError for a value JSON
    cannot hold (a set, an arbitrary object)."""
    return json.dumps(payload, ensure_ascii=True, separators=(",", ":"), default=_plain)


def _plain(value: Any) -> Any:
    """``json.dumps``'s fallback: numpy scalars (``np.bool_``, ``np.float32``, ...) and arrays
    as the Python values they hold."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-representable")


def loads_object(raw: str | bytes, what: str = "request body") -> dict[str, Any]:
    """Decode one message that must be a JSON object."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise bad_request(f"{what} is not UTF-8") from None
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise bad_request(
            f"{what} is not valid JSON: {error.msg} at position {error.pos}"
        ) from None
    except ValueError as error:  # an integer literal past Python's digit limit
        reason = str(error).split(";")[0]
        raise bad_request(f"{what} is not acceptable JSON: {reason}") from None
    except RecursionError:
        raise bad_request(f"{what} is not acceptable JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise bad_request(f"{what} must be a JSON object, got {type(data).__name__}")
    return data


def _check_fields(data: dict[str, Any], allowed: frozenset[str], what: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise bad_request(f"unknown {what} field(s) {unknown}; allowed: {sorted(allowed)}")


def parse_reset(data: dict[str, Any]) -> ResetRequest:
    """Validate a reset request: ``seed`` (int >= 0 or null), ``options`` (object or null)."""
    _check_fields(data, RESET_FIELDS, "reset")
    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise bad_request(f"'seed' must be an integer >= 0 or null, got {seed!r}")
    options = data.get("options")
    if options is not None and not isinstance(options, dict):
        raise bad_request(f"'options' must be a JSON object or null, got {type(options).__name__}")
    episode_id = data.get("episode_id")
    if episode_id is not None and not isinstance(episode_id, str):
        raise bad_request(f"'episode_id' must be a string or null, got {episode_id!r}")
    return ResetRequest(seed, options, _session_id(data, required=False), episode_id)


def parse_action(data: dict[str, Any]) -> str:
    """The reply inside a WebSocket step message's ``data``: ``{"message": str}``."""
    if ACTION_FIELD not in data:
        raise bad_request(f"the action needs a {ACTION_FIELD!r} field holding the reply text")
    action = data[ACTION_FIELD]
    if not isinstance(action, str):
        raise bad_request(
            f"the action's {ACTION_FIELD!r} must be a string, got {type(action).__name__}"
        )
    return action


def parse_http_step(data: dict[str, Any]) -> tuple[str, str]:
    """``(session_id, action)`` of an HTTP step: ``action`` is a string or ``{"message": str}``."""
    _check_fields(data, STEP_FIELDS, "step")
    session_id = _session_id(data, required=True)
    assert session_id is not None
    if "action" not in data:
        raise bad_request("missing field 'action' (the reply text, or {\"message\": text})")
    action = data["action"]
    if isinstance(action, dict):
        return session_id, parse_action(action)
    if not isinstance(action, str):
        raise bad_request(f"'action' must be a string, got {type(action).__name__}")
    return session_id, action


def _session_id(data: dict[str, Any], *, required: bool) -> str | None:
    value = data.get("session_id")
    if value is None:
        if required:
            raise bad_request("missing field 'session_id' (returned by POST /reset)")
        return None
    if not isinstance(value, str) or not value:
        raise bad_request(f"'session_id' must be a non-empty string, got {value!r}")
    return value


def result_payload(
    observation: str,
    info: dict[str, Any],
    reward: float | None = None,
    terminated: bool = False,
    truncated: bool = False,
) -> dict[str, Any]:
    """The JSON result of a reset (``reward`` None) or a step."""
    return {
        "observation": {OBSERVATION_FIELD: observation, INFO_FIELD: info},
        "reward": reward,
        "done": bool(terminated or truncated),
        "terminated": bool(terminated),
        "truncated": bool(truncated),
    }


def text_schema(max_length: int, field: str) -> dict[str, Any]:
    """JSON schema of an object holding one text field (``/schema`` serves these)."""
    return {
        "type": "object",
        "properties": {field: {"type": "string", "maxLength": max_length}},
        "required": [field],
    }


def max_length_of(schema: Any, field: str) -> int | None:
    """Read back the ``maxLength`` that :func:`text_schema` wrote; None if absent."""
    try:
        value = schema["properties"][field]["maxLength"]
    except (KeyError, TypeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
