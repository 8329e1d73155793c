"""Rollout sampling on an OpenAI-compatible completions server (vLLM), with weight push.

:class:`CompletionsSampler` has the interface of
:class:`~rlvr.training.generation.TurnSampler`, but instead of running the policy in process it
sends, at every turn, each live row's whole token sequence as the prompt of one
``POST {server_url}/v1/completions`` request (token in, token out: ``prompt`` is a list of token
ids). The rows' requests are sent concurrently from a thread pool; the server batches them.
Each request asks for::

    {"prompt": [ids...], "max_tokens": budget, "temperature": T, "top_p": p,
     "logprobs": 1, "stop_token_ids": [...], "return_tokens_as_token_ids": true,
     "skip_special_tokens": false, "seed": s, "model": name (when set)}

and reads back ``choices[0].logprobs.tokens`` (``"token_id:N"`` strings, vLLM's
``return_tokens_as_token_ids``), ``choices[0].logprobs.token_logprobs`` and
``choices[0].finish_reason`` (``"stop"``: the turn ended with a stop id). Each row gets its own
seed, drawn from the collector's generator, so the G episodes of a group (which share their
prompt) sample different replies.

The recorded ``old_logp`` is what the server reports. The trainer's importance ratios assume
it is ``log softmax(logits / T)`` of the sampled id: start vLLM with
``--logprobs-mode processed_logprobs`` (its default, ``raw_logprobs``, ignores the temperature;
with ``top_p < 1`` the processed values are renormalized over the nucleus).

Weight push (:class:`DiskWeightPush`): after each optimizer update the trainer saves the
policy with ``save_pretrained`` into ``weights_dir`` (a directory the server can read) and
POSTs ``{server_url}{reload_path}``. The body is ``{"model_path": weights_dir}`` (SGLang's
``/update_weights_from_disk``, and any custom endpoint of that shape), or, for a path ending in
``load_lora_adapter`` (vLLM's ``/v1/load_lora_adapter``, LoRA runs, where ``save_pretrained``
writes the adapter), ``{"lora_name": model, "lora_path": weights_dir, "load_inplace": true}``.
"""

from __future__ import annotations

import http.client
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rlvr.training.generation import SampledTurn, SamplingSettings

logger = logging.getLogger(__name__)

WeightSync = Callable[[Any, Any], None]
"""``(model, tokenizer) -> None``: make the sampler use the trainer's current weights."""

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""HTTP statuses worth another try (besides connection errors)."""


class ServerError(RuntimeError):
    """A request to the inference server failed; the message is one line naming the URL."""


def _server_message(body: bytes) -> str:
    """The error text of a response body (OpenAI/vLLM ``error.message``, FastAPI ``detail``)."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return " ".join(text[:300].split()) or "(empty body)"
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        for key in ("message", "detail", "error"):
            if data.get(key):
                return str(data[key])
    return " ".join(text[:300].split())


def root_url(server_url: str) -> str:
    """The server root: ``http://host:8000/v1/`` and ``http://host:8000`` both give the latter."""
    url = server_url.rstrip("/")
    return url.removesuffix("/v1")


@dataclass(frozen=True)
class ServerClient:
    """JSON over HTTP to one server, standard library only.

    Connection errors, timeouts and HTTP 408/429/5xx are retried ``retries`` times with
    exponential backoff (``backoff * 2**attempt`` seconds); other HTTP errors fail at once.
    """

    server_url: str
    timeout: float = 600.0
    retries: int = 3
    backoff: float = 0.5

    def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``body`` to ``{root}{path}``; the decoded JSON object answered."""
        url = root_url(self.server_url) + "/" + path.lstrip("/")
        data = json.dumps(body).encode("utf-8")
        failure = "no attempt was made"
        for attempt in range(self.retries + 1):
            try:
                return self._send(url, data)
            except urllib.error.HTTPError as error:
                failure = f"HTTP {error.code}: {_server_message(error.read())}"
                if error.code not in RETRY_STATUSES:
                    break
            except (OSError, http.client.HTTPException) as error:
                reason = getattr(error, "reason", error)
                failure = f"{type(reason).__name__}: {reason}"
            if attempt < self.retries:
                time.sleep(self.backoff * 2**attempt)
        tries = f" after {self.retries + 1} attempts" if self.retries else ""
        raise ServerError(f"POST {url} failed{tries}: {failure}".replace("\n", " "))

    def _send(self, url: str, data: bytes) -> dict[str, Any]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            raw = response.read()
        try:
            decoded = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise ServerError(f"POST {url}: response is not JSON: {raw[:200]!r}") from None
        if not isinstance(decoded, dict):
            raise ServerError(f"POST {url}: response is not a JSON object: {raw[:200]!r}")
        return decoded


def parse_choice(choice: Mapping[str, Any], stop_ids: frozenset[int]) -> SampledTurn:
    """One ``choices[i]`` of a completions response -> :class:`SampledTurn`.

    Raises :class:`ServerError` when the log-probs are missing, the two lists differ in length,
    or the server says ``stop`` on an id that is not a stop id (the rollout would then drop a
    real token as the end-of-turn marker).
    """
    logprobs = choice.get("logprobs") or {}
    tokens, values = logprobs.get("tokens"), logprobs.get("token_logprobs")
    if not isinstance(tokens, list) or not isinstance(values, list):
        raise ServerError("the server returned no logprobs.tokens / logprobs.token_logprobs")
    if len(tokens) != len(values) or not tokens:
        raise ServerError(f"got {len(tokens)} tokens and {len(values)} logprobs for a turn")
    ids = tuple(int(str(token).removeprefix("token_id:")) for token in tokens)
    logps = tuple(float(value) for value in values)
    ended = choice.get("finish_reason") == "stop"
    if ended and ids[-1] not in stop_ids:
        raise ServerError(
            f"the server stopped on id {ids[-1]}, which is not a stop id {sorted(stop_ids)} "
            "(a stop string, or the stop token left out of the output?)"
        )
    return SampledTurn(ids, logps, ended)


class CompletionsSampler:
    """Samples turns on a completions server; same interface as ``TurnSampler``.

    Args:
        client: the server connection.
        model: the ``model`` field of the requests (``None``: the server's default model).
        rows: episodes in the cohort.
        stop_ids: ids that end a turn; empty asks the server to ignore eos (``ignore_eos``).
        pad_id: unused (no padding is sent); kept for the sampler interface.
        settings: temperature and top-p.
        generator: draws the per-row seeds of every turn.
        concurrency: requests in flight at once.
    """

    def __init__(
        self,
        client: ServerClient,
        *,
        model: str | None,
        rows: int,
        stop_ids: Sequence[int],
        pad_id: int,
        settings: SamplingSettings,
        generator: torch.Generator,
        concurrency: int = 64,
    ):
        self.client = client
        self.model = model
        self.stop_ids = frozenset(int(i) for i in stop_ids)
        self.pad_id = pad_id
        self.settings = settings
        self.generator = generator
        self.concurrency = max(1, min(concurrency, rows))
        self._ids: list[list[int]] = [[] for _ in range(rows)]
        self._live = list(range(rows))

    @property
    def live(self) -> list[int]:
        """The rows (episode indices) still being played."""
        return list(self._live)

    def drop(self, keep: Sequence[int]) -> None:
        """Keep only the rows ``keep`` (a subset of :attr:`live`)."""
        keep_set = set(keep)
        self._live = [row for row in self._live if row in keep_set]

    def extend(self, row: int, ids: Sequence[int]) -> None:
        """Append ids (a prompt, or env messages and the generation prompt) to a row."""
        self._ids[row].extend(int(i) for i in ids)

    def ids(self, row: int) -> list[int]:
        return list(self._ids[row])

    def sample_turn(self, budgets: Sequence[int]) -> dict[int, SampledTurn]:
        """Sample one turn for every live row (one request each, sent concurrently);
        ``budgets[b]`` caps the new tokens of the b-th live row (>= 1)."""
        if len(budgets) != len(self._live):
            raise ValueError(
                f"need one budget per live row ({len(self._live)}), got {len(budgets)}"
            )
        if not self._live:
            return {}
        base = int(torch.randint(0, 1 << 30, (1,), generator=self.generator))
        jobs = [
            (row, int(budget), (base + row) % (1 << 31))
            for row, budget in zip(self._live, budgets, strict=True)
        ]
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="rlvr-sample") as pool:
            turns = list(pool.map(self._request, jobs))
        for (row, _, _), turn in zip(jobs, turns, strict=True):
            self._ids[row].extend(turn.ids)
        return {row: turn for (row, _, _), turn in zip(jobs, turns, strict=True)}

    def request_body(self, row: int, budget: int, seed: int) -> dict[str, Any]:
        """The JSON body of one row's completions request."""
        if not self._ids[row]:
            raise ValueError("every live row needs a prompt before a turn")
        body: dict[str, Any] = {
            "prompt": self._ids[row],
            "max_tokens": budget,
            "temperature": self.settings.temperature,
            "top_p": self.settings.top_p,
            "logprobs": 1,
            "stop_token_ids": sorted(self.stop_ids),
            "ignore_eos": not self.stop_ids,
            "return_tokens_as_token_ids": True,
            "skip_special_tokens": False,
            "seed": seed,
        }
        if self.model is not None:
            body["model"] = self.model
        return body

    def _request(self, job: tuple[int, int, int]) -> SampledTurn:
        row, budget, seed = job
        response = self.client.post("/v1/completions", self.request_body(row, budget, seed))
        choices = response.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ServerError(f"completions response without choices: {str(response)[:200]}")
        turn = parse_choice(choices[0], self.stop_ids)
        if len(turn.ids) > budget:
            raise ServerError(f"the server returned {len(turn.ids)} tokens for max_tokens={budget}")
        return turn


@dataclass(frozen=True)
class CompletionsBackend:
    """Builds :class:`CompletionsSampler` cohorts for the rollout collector."""

    client: ServerClient
    model: str | None

    def __call__(
        self,
        *,
        rows: int,
        stop_ids: Sequence[int],
        pad_id: int,
        settings: SamplingSettings,
        generator: torch.Generator,
    ) -> CompletionsSampler:
        return CompletionsSampler(
            self.client,
            model=self.model,
            rows=rows,
            stop_ids=stop_ids,
            pad_id=pad_id,
            settings=settings,
            generator=generator,
        )


def no_weight_sync(model: Any, tokenizer: Any) -> None:
    """Nothing to push: the local backend samples from the trained model itself (and the
    ``openai`` backend without a reload path samples from the server's own weights)."""


@dataclass(frozen=True)
class DiskWeightPush:
    """Save the policy where the server reads it, then ask the server to reload it."""

    client: ServerClient
    reload_path: str
    weights_dir: str
    model: str | None = None

    def __call__(self, model: Any, tokenizer: Any) -> None:
        directory = Path(self.weights_dir)
        directory.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        self.client.post(self.reload_path, self.body())

    def body(self) -> dict[str, Any]:
        """The reload request: a LoRA adapter load, or a full-weights reload from disk."""
        path = str(Path(self.weights_dir).resolve())
        if self.reload_path.rstrip("/").endswith("load_lora_adapter"):
            return {"lora_name": self.model, "lora_path": path, "load_inplace": True}
        return {"model_path": path}


def completions_backend(
    server_url: str,
    *,
    model: str | None,
    reload_path: str | None,
    weights_dir: str | None,
) -> tuple[CompletionsBackend, WeightSync]:
    """The sampler factory and the weight-sync hook of the ``openai`` rollout backend."""
    client = ServerClient(server_url)
    if reload_path is None:
        logger.warning(
            "rollout.server_reload_path is null: weights are never pushed, so the server "
            "samples from stale weights after the first update (off-policy rollouts)"
        )
        return CompletionsBackend(client, model), no_weight_sync
    if weights_dir is None:
        raise ValueError("rollout.server_weights_dir is required to push weights")
    return CompletionsBackend(client, model), DiskWeightPush(
        client, reload_path, weights_dir, model
    )
