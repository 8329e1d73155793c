"""Batched sampling for multi-turn rollouts, with the KV cache kept across turns.

One :class:`TurnSampler` serves a cohort of episodes for all their turns. Each row of the batch
is one episode; its token ids only ever grow (token in, token out). At each turn:

1. **Prefill.** Every live row gets the ids it has not fed to the model yet (the first prompt, or
   the env's reply plus the next generation prompt, plus the last sampled token when the turn
   ended at the token budget). Chunks of different lengths are left-padded *inside* the row, with
   attention mask 0 on the padding, and appended to the cache: earlier turns are never recomputed.
2. **Decode.** One token per live row per step, sampled from ``softmax(logits / temperature)``
   (optionally nucleus-filtered); its log-probability under the temperature-scaled distribution is
   recorded as the rollout policy's (``old_logp``), as TRL and verl compute it. A row stops at an
   end-of-turn id or at its token budget; stopped rows are fed padding (mask 0).
3. Rows whose episodes ended are dropped from the cache (``batch_select_indices``).

Positions are counted per row over real tokens only, so a row's positions are exactly those of
its sequence without padding: the log-probs recorded here equal those of a forward pass over
the unpadded sequence, up to float rounding (tested).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class SamplingSettings:
    """How the policy samples during rollouts."""

    temperature: float = 1.0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0 for sampling, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclass(frozen=True)
class SampledTurn:
    """What one row sampled in one turn."""

    ids: tuple[int, ...]
    """The sampled ids, ending with an end-of-turn id unless the budget cut the turn."""
    logprobs: tuple[float, ...]
    """``log pi_old`` of each sampled id, same length as ``ids``."""
    ended: bool
    """Whether the turn ended with an end-of-turn id (False: cut by the token budget)."""


@dataclass
class _Row:
    ids: list[int] = field(default_factory=list)
    fed: int = 0
    """How many of ``ids`` are in the cache."""


def _cache_argument(model: Any) -> str:
    """The keyword the model's ``forward`` takes its KV cache by (``cache`` in recent
    ``transformers``, ``past_key_values`` before)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft
    parameters = inspect.signature(type(base).forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def _nucleus(logits: Tensor, top_p: float) -> Tensor:
    """Mask logits outside the smallest set of tokens whose probability reaches ``top_p``."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(-1)
    remove = cumulative - torch.softmax(sorted_logits, dim=-1) >= top_p  # keep the first past p
    sorted_logits = sorted_logits.masked_fill(remove, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)


class TurnSampler:
    """Samples the turns of a fixed cohort of episodes, one batch row per episode.

    Args:
        model: a ``transformers`` causal LM (``eval()`` mode is the caller's business).
        stop_ids: ids that end a turn (the tokenizer's eos / end-of-turn ids).
        pad_id: the id fed on padding positions (masked, so any valid id works).
        settings: temperature and top-p.
        generator: the torch generator that draws samples (seeded by the caller).
    """

    def __init__(
        self,
        model: Any,
        *,
        rows: int,
        stop_ids: Sequence[int],
        pad_id: int,
        settings: SamplingSettings,
        generator: torch.Generator,
    ):
        from transformers import DynamicCache

        self.model = model
        self.stop_ids = torch.tensor(sorted(set(stop_ids)), dtype=torch.long)
        self.pad_id = pad_id
        self.settings = settings
        self.generator = generator
        self.device = next(model.parameters()).device
        self.rows = [_Row() for _ in range(rows)]
        self.cache = DynamicCache(config=model.config)
        self._mask = torch.zeros((rows, 256), dtype=torch.long, device=self.device)
        self._width = 0  # columns of ``_mask`` in use: the attention mask is ``_mask[:, :_width]``
        self.positions = torch.zeros(rows, dtype=torch.long, device=self.device)
        self._live = list(range(rows))  # row index -> batch position, by order
        self._cache_kwarg = _cache_argument(model)
        # the Gumbel noise is drawn where the logits are, from a generator seeded by the caller's
        self._noise = torch.Generator(device=self.device)
        self._noise.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))

    @property
    def live(self) -> list[int]:
        """The rows (episode indices) still in the cache."""
        return list(self._live)

    def drop(self, keep: Sequence[int]) -> None:
        """Keep only the rows ``keep`` (a subset of :attr:`live`) in the cache."""
        keep_set = set(keep)
        index = [b for b, row in enumerate(self._live) if row in keep_set]
        if len(index) == len(self._live):
            return
        select = torch.tensor(index, dtype=torch.long, device=self.device)
        if self.cache.get_seq_length() > 0:
            self.cache.batch_select_indices(select)
        self._mask = self._mask[select]
        self.positions = self.positions[select]
        self._live = [self._live[b] for b in index]

    def extend(self, row: int, ids: Sequence[int]) -> None:
        """Append ids (a prompt, or env messages and the generation prompt) to a row."""
        self.rows[row].ids.extend(int(i) for i in ids)

    def ids(self, row: int) -> list[int]:
        return list(self.rows[row].ids)

    @torch.inference_mode()
    def sample_turn(self, budgets: Sequence[int]) -> dict[int, SampledTurn]:
        """Sample one turn for every live row; ``budgets[b]`` caps the new tokens of the b-th
        live row (>= 1). Returns the sampled turn of each live row, by row index."""
        if len(budgets) != len(self._live):
            raise ValueError(
                f"need one budget per live row ({len(self._live)}), got {len(budgets)}"
            )
        if not self._live:
            return {}
        logits = self._prefill()  # (R, V)
        live = len(self._live)
        budget = torch.tensor(budgets, dtype=torch.long, device=self.device)
        active = torch.ones(live, dtype=torch.bool, device=self.device)
        sampled: list[list[int]] = [[] for _ in range(live)]
        logps: list[list[float]] = [[] for _ in range(live)]
        ended = [False] * live
        stop_ids = self.stop_ids.to(self.device)
        step = 0
        while True:
            token, logp = self._draw(logits)  # (R,), (R,)
            tokens, values = token.tolist(), logp.tolist()
            for b in active.nonzero().flatten().tolist():
                sampled[b].append(tokens[b])
                logps[b].append(values[b])
            step += 1
            stopped = torch.isin(token, stop_ids) & active
            for b in stopped.nonzero().flatten().tolist():
                ended[b] = True
            fed = active.clone()  # rows active this step feed their token next step
            active = active & ~stopped & (budget > step)
            if not bool(active.any()):
                break
            logits = self._decode(token, fed)
        for b, row in enumerate(self._live):
            # the loop fed each row's tokens except those sampled at the last step it was active
            self.rows[row].ids.extend(sampled[b])
        self._account_fed(sampled, step)
        return {
            row: SampledTurn(tuple(sampled[b]), tuple(logps[b]), ended[b])
            for b, row in enumerate(self._live)
        }

    def _account_fed(self, sampled: list[list[int]], steps: int) -> None:
        """After a turn, each row fed all its sampled ids except the last one, unless it
        stopped before the final step (then its last id was fed at the following step)."""
        for b, row in enumerate(self._live):
            n = len(sampled[b])
            fed_now = n if n < steps else n - 1
            self.rows[row].fed = len(self.rows[row].ids) - (n - fed_now)

    def _forward(self, input_ids: Tensor, chunk_mask: Tensor, positions: Tensor) -> Tensor:
        """Append a (R, C) chunk to the cache; logits of its last position, (R, V)."""
        width = self._width + chunk_mask.shape[1]
        if width > self._mask.shape[1]:  # grow the buffer (doubling), not one column per token
            grown = torch.zeros(
                (self._mask.shape[0], 2 * width), dtype=torch.long, device=self.device
            )
            grown[:, : self._width] = self._mask[:, : self._width]
            self._mask = grown
        self._mask[:, self._width : width] = chunk_mask
        self._width = width
        out = self.model(
            input_ids=input_ids,
            attention_mask=self._mask[:, :width],
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_kwarg: self.cache},
        )
        return out.logits[:, -1, :].float()

    def _prefill(self) -> Tensor:
        chunks = [self.rows[row].ids[self.rows[row].fed :] for row in self._live]
        if any(not chunk for chunk in chunks):
            raise ValueError("every live row needs new ids (a prompt or env reply) before a turn")
        width = max(len(chunk) for chunk in chunks)
        ids = torch.full((len(chunks), width), self.pad_id, dtype=torch.long)
        chunk_mask = torch.zeros((len(chunks), width), dtype=torch.long)
        for b, chunk in enumerate(chunks):
            ids[b, width - len(chunk) :] = torch.tensor(chunk, dtype=torch.long)
            chunk_mask[b, width - len(chunk) :] = 1
        ids, chunk_mask = ids.to(self.device), chunk_mask.to(self.device)
        # per-row positions over real tokens only; padding gets the row's next position (masked)
        offsets = (chunk_mask.cumsum(-1) - 1).clamp(min=0)
        positions = self.positions.unsqueeze(1) + offsets
        self.positions = self.positions + chunk_mask.sum(-1)
        for row, chunk in zip(self._live, chunks, strict=True):
            self.rows[row].fed += len(chunk)
        return self._forward(ids, chunk_mask, positions)

    def _decode(self, token: Tensor, fed: Tensor) -> Tensor:
        ids = torch.where(fed, token, torch.full_like(token, self.pad_id)).unsqueeze(1)
        chunk_mask = fed.long().unsqueeze(1)
        positions = self.positions.unsqueeze(1).clone()
        self.positions = self.positions + chunk_mask.squeeze(1)
        return self._forward(ids, chunk_mask, positions)

    def _draw(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        """Sample one id per row and its log-prob under the temperature-scaled softmax.

        Sampling is the Gumbel-max trick, ``argmax(log p + g)`` with standard Gumbel noise
        ``g = -log(-log u)`` drawn from the sampler's generator: an exact draw from ``p``
        (the nucleus-filtered distribution when ``top_p < 1``), cheaper than ``multinomial``.
        """
        temperature = self.settings.temperature
        scaled = logits if temperature == 1.0 else logits / temperature
        logp_all = torch.log_softmax(scaled, dim=-1)
        candidates = (
            logp_all if self.settings.top_p >= 1.0 else _nucleus(scaled, self.settings.top_p)
        )
        uniform = torch.rand(candidates.shape, generator=self._noise, device=self._noise.device)
        gumbel = -torch.log(-torch.log(uniform.clamp(min=1e-20, max=1.0 - 1e-7)))
        token = torch.argmax(candidates + gumbel, dim=-1)
        return token, logp_all.gather(-1, token.unsqueeze(1)).squeeze(1)
