"""An agent that talks to any OpenAI-compatible chat endpoint (vLLM, SGLang, OpenAI...).

Standard library only. Each reply is one ``POST {base_url}/chat/completions`` with
``model``, ``messages``, ``temperature``, ``top_p``, ``max_tokens`` and, when the sampling
config has a seed, ``seed``. ``base_url`` includes the API prefix, as in the OpenAI client
(``http://localhost:8000/v1`` for a local vLLM server).

Behaviour:

- Timeouts: every socket operation of a request (connect, each read) waits at most
  ``timeout`` seconds, so no call hangs.
- Retries: connection errors, timeouts, HTTP 429 and 5xx are retried ``retries`` times with
  exponential backoff (``backoff * 2**attempt`` seconds, or the server's ``Retry-After``,
  capped at ``max_backoff``). Other HTTP errors fail at once.
- Errors: every failure is an :class:`AgentError` carrying the HTTP status (``None`` when
  the server was not reached) and the server's own message.
- Batches: :meth:`OpenAIChatAgent.act_batch` sends up to ``concurrency`` requests at once
  from a thread pool and returns the replies in the order of the dialogues.
- Seeds: with ``SamplingConfig.seed`` set, request ``i`` of this agent (counted in order;
  a batch numbers its dialogues before sending) gets the seed ``seed + i``, so a run is
  reproducible on servers that honour ``seed`` while repeated calls still differ.
- ``model=None`` asks ``GET {base_url}/models`` once and uses the first model listed.
- ``tokens_used`` adds up ``usage.completion_tokens`` when the server reports it.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rlvr.agents.base import Agent, SamplingConfig
from rlvr.envs.types import Message

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""HTTP statuses worth another try."""


class AgentError(RuntimeError):
    """A request to a model backend failed.

    Attributes:
        status: The HTTP status, or ``None`` when no response came (connection, timeout).
        message: What the server (or the network layer) said.
        url: The URL requested.
    """

    def __init__(self, message: str, *, status: int | None = None, url: str = "") -> None:
        self.status = status
        self.message = message
        self.url = url
        where = f" from {url}" if url else ""
        prefix = f"HTTP {status}{where}" if status is not None else f"request failed{where}"
        super().__init__(f"{prefix}: {message}")


def _server_message(body: bytes) -> str:
    """The human-readable error in an error body (OpenAI, vLLM or FastAPI shape, or raw)."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:500] or "(empty body)"
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        for key in ("message", "detail", "error"):
            if data.get(key):
                return str(data[key])
    return text[:500]


def _retry_after(error: urllib.error.HTTPError) -> float | None:
    """The ``Retry-After`` delay in seconds, when the server sent a numeric one."""
    value = error.headers.get("Retry-After") if error.headers else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class OpenAIChatAgent(Agent):
    """An :class:`~rlvr.agents.base.Agent` backed by an OpenAI-compatible chat endpoint.

    Args:
        base_url: The API root, e.g. ``http://localhost:8000/v1``.
        model: The model name the server serves; ``None`` asks the server.
        sampling: Temperature, top-p, token budget and seed.
        api_key: Bearer token; defaults to ``$OPENAI_API_KEY``; none is sent when empty.
        timeout: Seconds to wait for a response before giving up on one attempt.
        retries: How many times a failed attempt is retried (transient failures only).
        backoff: The first retry delay in seconds; it doubles on each retry.
        max_backoff: The longest delay between two attempts, in seconds.
        concurrency: How many requests :meth:`act_batch` keeps in flight.
        extra_body: Further JSON fields for every request (``top_k``, ``stop``...).
    """

    name = "http"
    counts_tokens = True

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        sampling: SamplingConfig | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        concurrency: int = 8,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if timeout <= 0 or retries < 0 or concurrency < 1:
            raise ValueError("need timeout > 0, retries >= 0 and concurrency >= 1")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.sampling = sampling or SamplingConfig()
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.concurrency = concurrency
        self.extra_body = dict(extra_body or {})
        self.name = f"http:{self.base_url}" + (f"#{model}" if model else "")
        self._lock = threading.Lock()
        self._request_ids = itertools.count()

    def act(self, dialogue: Sequence[Message]) -> str:
        """The next reply for one dialogue."""
        return self._complete(dialogue, next(self._request_ids))

    def act_batch(self, dialogues: Sequence[Sequence[Message]]) -> list[str]:
        """The next reply for each dialogue, in order, with up to ``concurrency`` in flight."""
        if not dialogues:
            return []
        self._model_name()  # resolve once before the threads start
        numbered = [(dialogue, next(self._request_ids)) for dialogue in dialogues]
        workers = min(self.concurrency, len(numbered))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rlvr-http") as pool:
            return list(pool.map(lambda item: self._complete(*item), numbered))

    def payload(self, dialogue: Sequence[Message], request_id: int = 0) -> dict[str, Any]:
        """The JSON body of the chat-completion request for ``dialogue``."""
        body: dict[str, Any] = {
            "model": self._model_name(),
            "messages": [message.as_dict() for message in dialogue],
            "temperature": self.sampling.temperature,
            "top_p": self.sampling.top_p,
            "max_tokens": self.sampling.max_new_tokens,
        }
        if self.sampling.seed is not None:
            body["seed"] = self.sampling.seed + request_id
        body.update(self.extra_body)
        return body

    def _complete(self, dialogue: Sequence[Message], request_id: int) -> str:
        """Send one chat completion and return the reply text."""
        url = f"{self.base_url}/chat/completions"
        data = self._request("POST", url, self.payload(dialogue, request_id))
        try:
            choice = data["choices"][0]
            content = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError) as error:
            raise AgentError(f"malformed completion: {str(data)[:300]}", url=url) from error
        usage = data.get("usage") or {}
        if isinstance(usage.get("completion_tokens"), int):
            with self._lock:
                self.tokens_used += usage["completion_tokens"]
        return str(content)

    def _model_name(self) -> str:
        """The model to request; asks ``GET {base_url}/models`` the first time when unset."""
        if self.model is None:
            url = f"{self.base_url}/models"
            listing = self._request("GET", url, None)
            models = listing.get("data") or []
            if not models or "id" not in models[0]:
                raise AgentError(f"the server lists no model: {str(listing)[:300]}", url=url)
            with self._lock:
                self.model = self.model or str(models[0]["id"])
        return self.model

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def _request(self, method: str, url: str, body: Mapping[str, Any] | None) -> dict[str, Any]:
        """Send a JSON request, retrying transient failures; the decoded JSON response."""
        data = json.dumps(body).encode("utf-8") if body is not None else None
        failure = AgentError("no attempt was made", url=url)
        for attempt in range(self.retries + 1):
            delay = self.backoff * 2**attempt
            try:
                return self._send(method, url, data)
            except urllib.error.HTTPError as error:
                message = _server_message(error.read())
                failure = AgentError(message, status=error.code, url=url)
                if error.code not in RETRY_STATUSES:
                    raise failure from None
                delay = _retry_after(error) or delay
            except (OSError, http.client.HTTPException) as error:
                # URLError, timeouts and connection resets are all OSErrors.
                reason = getattr(error, "reason", error)
                failure = AgentError(f"{type(reason).__name__}: {reason}", url=url)
            if attempt < self.retries:
                time.sleep(min(delay, self.max_backoff))
        raise failure

    def _send(self, method: str, url: str, data: bytes | None) -> dict[str, Any]:
        """One attempt: the decoded JSON object the server answered."""
        request = urllib.request.Request(url, data=data, headers=self._headers(), method=method)
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            raw = response.read()
        try:
            decoded = json.loads(raw)
        except ValueError as error:
            raise AgentError(f"response is not JSON: {raw[:300]!r}", url=url) from error
        if not isinstance(decoded, dict):
            raise AgentError(f"response is not a JSON object: {raw[:300]!r}", url=url)
        return decoded
