"""The policy being trained: a ``transformers`` causal LM, its tokenizer and chat rendering.

:func:`load_policy` resolves ``model.name``: ``tiny`` builds (once, cached) the project's tiny
Llama and its tokenizer and loads them back through ``from_pretrained``, exactly as any hub id
or local directory is loaded. ``model.lora`` wraps the model with ``peft`` LoRA adapters; the
frozen reference policy is then the same weights with the adapters switched off, so a KL
penalty costs no second copy of the model.

:func:`token_scores` is the one forward pass the loss needs: per-token log-probs of the
sampled ids under the temperature-scaled policy (as the rollout recorded them), entropies and,
for the distillation losses, the tempered logits (:func:`sequence_logprobs` returns the first
two).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rlvr.agents.hf import resolve_device
from rlvr.training.chat_tokens import ChatTokens
from rlvr.training.config import EnvConfig, ModelConfig

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class Policy:
    """The trained model and what rollouts need to talk to it."""

    model: Any
    """The ``transformers`` model (a ``peft`` model under LoRA), unwrapped from DDP."""
    tokenizer: Any
    chat: ChatTokens
    stop_ids: tuple[int, ...]
    pad_id: int
    source: str
    """Where the weights came from (the resolved path or hub id)."""
    lora: bool = False
    """Whether ``model`` is a ``peft`` LoRA model (its base, adapters off, is the reference)."""

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def resolve_model_source(
    config: ModelConfig, cache_dir: str | None = None, envs: Sequence[EnvConfig] = ()
) -> str:
    """The path or hub id to load: builds the tiny model first when ``name == "tiny"``.

    A tiny model whose ``tokenizer_corpus`` is ``envs`` learns its tokenizer from ``envs``'
    scripted transcripts (:func:`rlvr.training.sft.tokenizer_corpus`), so it needs them.
    """
    if config.name != "tiny":
        return config.name
    from rlvr.agents.tiny import ensure_tiny_model
    from rlvr.training.sft import tokenizer_corpus

    tiny = config.tiny
    sizes = {
        "hidden_size": tiny.hidden_size,
        "num_layers": tiny.num_layers,
        "num_heads": tiny.num_heads,
        "intermediate_size": tiny.intermediate_size,
        "vocab_size": tiny.vocab_size,
    }
    corpus: list[str] = []
    if tiny.tokenizer_corpus == "envs":
        if not envs:
            raise ValueError(
                "model.tiny.tokenizer_corpus=envs learns the tokenizer from the run's envs, "
                "but none were given"
            )
        corpus = tokenizer_corpus(envs, tiny.tokenizer_episodes)
    return str(ensure_tiny_model(cache_dir, seed=tiny.seed, corpus=corpus, **sizes))


def load_policy(
    config: ModelConfig,
    *,
    device: str | None = None,
    source: str | None = None,
    envs: Sequence[EnvConfig] = (),
) -> Policy:
    """Load the policy with ``from_pretrained`` (see the module docstring); ``envs`` as in
    :func:`resolve_model_source`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = source or resolve_model_source(config, envs=envs)
    tokenizer = AutoTokenizer.from_pretrained(source)
    model: Any = AutoModelForCausalLM.from_pretrained(source, dtype=_DTYPES[config.dtype])
    model.to(resolve_device(device or config.device))
    if config.lora is not None:
        from peft import LoraConfig, get_peft_model

        lora = config.lora
        model = get_peft_model(
            model,
            LoraConfig(
                r=lora.r,
                lora_alpha=lora.alpha,
                lora_dropout=lora.dropout,
                target_modules=lora.target_modules,
                task_type="CAUSAL_LM",
            ),
        )
    chat = ChatTokens(tokenizer, config.chat_template)
    stop = {chat.eos_id}
    generation_eos = getattr(model.generation_config, "eos_token_id", None)
    stop.update([generation_eos] if isinstance(generation_eos, int) else generation_eos or [])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else chat.eos_id
    lora = config.lora is not None
    return Policy(model, tokenizer, chat, tuple(sorted(stop)), int(pad), source, lora)


class Reference:
    """The frozen reference policy for the KL penalty.

    Under LoRA it is the base model (adapters disabled); otherwise a frozen copy of the
    policy's weights taken when the reference is made (after SFT, before RL).
    """

    def __init__(self, policy: Policy):
        self._policy = policy
        self._copy: Any = None
        if not policy.lora:
            self._copy = copy.deepcopy(policy.model).eval().requires_grad_(False)

    @contextlib.contextmanager
    def _model(self) -> Iterator[Any]:
        if self._copy is not None:
            yield self._copy
            return
        with self._policy.model.disable_adapter():
            yield self._policy.model

    @torch.no_grad()
    def logprobs(
        self, ids: Tensor, attention: Tensor, temperature: float, mask: Tensor | None = None
    ) -> Tensor:
        """Per-token log-probs of ``ids[:, 1:]`` under the reference, (N, L-1) (0 before the
        first target ``mask`` selects)."""
        with self._model() as model:
            logp, _ = sequence_logprobs(
                model, ids, attention, temperature, entropy=False, mask=mask
            )
        return logp

    def load_from(self, model_dir: str | Path) -> None:
        """Load the reference weights saved at ``model_dir`` (a resumed run's checkpoint 0);
        a no-op under LoRA, where the reference is the base model."""
        if self._copy is None:
            return
        from transformers import AutoModelForCausalLM

        saved = AutoModelForCausalLM.from_pretrained(model_dir, dtype=self._copy.dtype)
        self._copy.load_state_dict(saved.state_dict())


@dataclass(frozen=True)
class TokenScores:
    """What one forward pass of the policy gives the loss, aligned with the targets
    ``ids[:, 1:]`` (position ``t`` scores ``ids[:, t + 1]``)."""

    logp: Tensor
    """(N, L-1) log-probs of the next tokens under the tempered policy; 0 before ``first``."""
    entropy: Tensor | None
    """(N, L-1) entropies of the next-token distributions (no gradient); 0 before ``first``."""
    logits: Tensor | None
    """(N, L-1-first, V) tempered float32 logits of positions ``first .. L-2`` (with
    gradient), kept only when asked for (the distillation losses need them)."""
    first: int
    """The first position scored: positions before it (prompts) were skipped."""


def token_scores(
    model: Any,
    ids: Tensor,
    attention: Tensor,
    temperature: float,
    *,
    entropy: bool = True,
    mask: Tensor | None = None,
    logits: bool = False,
) -> TokenScores:
    """Log-probs of each next token, entropies and (when ``logits``) the tempered logits.

    ``ids`` (N, L) right-padded with ``attention`` (N, L) -> ``logp`` (N, L-1) where
    ``logp[:, t] = log softmax(logits[:, t] / temperature)[ids[:, t + 1]]``. With ``mask``
    (N, L-1), the LM head and softmax run only from the first masked-in target on
    (``logits_to_keep``); earlier positions (prompts) are returned as 0. Without ``logits``
    the (N, L-1, V) logits are freed as soon as the log-probs are gathered.
    """
    width = ids.shape[1] - 1
    first = 0
    if mask is not None and bool(mask.any()):
        first = int(mask.any(0).nonzero()[0])
    keep = width - first + 1  # logits of positions first .. L-1; the last predicts past the end
    out = model(input_ids=ids, attention_mask=attention, logits_to_keep=keep)
    scaled = out.logits[:, :-1, :].float()
    if temperature != 1.0:
        scaled = scaled / temperature
    logp_all = torch.log_softmax(scaled, dim=-1)  # (N, L-1-first, V)
    logp = logp_all.gather(-1, ids[:, first + 1 :].unsqueeze(-1)).squeeze(-1)
    ent = None
    if entropy:
        with torch.no_grad():
            ent = -(logp_all.exp() * logp_all).sum(-1)
    if first:
        logp = torch.nn.functional.pad(logp, (first, 0))
        ent = None if ent is None else torch.nn.functional.pad(ent, (first, 0))
    return TokenScores(logp, ent, scaled if logits else None, first)


def sequence_logprobs(
    model: Any,
    ids: Tensor,
    attention: Tensor,
    temperature: float,
    *,
    entropy: bool = True,
    mask: Tensor | None = None,
) -> tuple[Tensor, Tensor | None]:
    """``(logp, entropy)`` of :func:`token_scores`, both (N, L-1): the log-probs of each next
    token and the entropies of the next-token distributions (0 before the first target
    ``mask`` selects)."""
    scores = token_scores(model, ids, attention, temperature, entropy=entropy, mask=mask)
    return scores.logp, scores.entropy


@torch.no_grad()
def last_hidden_states(model: Any, ids: Tensor, attention: Tensor) -> Tensor:
    """The hidden states fed to the LM head, aligned with the targets: (N, L) -> (N, L-1, H),
    where row ``t`` is the state that predicts ``ids[:, t + 1]`` (captured with a forward
    pre-hook on the output embeddings, so any final norm is included)."""
    captured: list[Tensor] = []

    def capture(module: Any, inputs: tuple[Tensor, ...]) -> None:
        captured.append(inputs[0].detach())

    handle = model.get_output_embeddings().register_forward_pre_hook(capture)
    try:
        model(input_ids=ids, attention_mask=attention)
    finally:
        handle.remove()
    return captured[-1][:, :-1, :].float()
