"""An agent backed by any ``transformers`` causal LM: chat template, sampling, batching.

``HFAgent("Qwen/Qwen2.5-0.5B-Instruct")`` loads a model and its tokenizer with
``from_pretrained`` (a local directory or a hub id); ``HFAgent.from_model(model, tokenizer)``
wraps ones already in memory, so the trainer can generate with the policy it trains.

How a reply is made:

1. The dialogue goes through the tokenizer's chat template with
   ``add_generation_prompt=True`` and is tokenized without adding further special tokens
   (the template writes them), exactly as ``apply_chat_template(..., tokenize=True)`` does.
2. Prompts are left-padded into one batch with an attention mask, so greedy replies in a
   batch equal the replies made one by one.
3. ``model.generate`` runs with the :class:`~rlvr.agents.base.SamplingConfig`:
   ``temperature == 0`` is greedy; otherwise ``temperature`` and ``top_p`` are applied.
   Other knobs (``top_k``, repetition penalty) come from the model's own
   ``generation_config``, as a vLLM server would use them.
4. Only the new tokens are decoded, up to the first end-of-sequence token, with special
   tokens stripped; ``tokens_used`` grows by the generated tokens (end token included).

Seeding: with ``SamplingConfig.seed`` set, each call to :meth:`HFAgent.act` or each batch of
:meth:`HFAgent.act_batch` samples under a fresh seed drawn from a private generator seeded
once with that seed, inside ``torch.random.fork_rng`` so the global RNG is left alone. Two
agents built with the same seed and called with the same dialogues in the same batches
give the same replies, while repeated calls still give different samples (for pass@k).
With ``seed=None`` sampling uses the global torch RNG.

Tokenizers without a pad token pad with their eos token. A tokenizer without a chat
template raises ``ValueError`` unless a template is passed as ``chat_template``;
:data:`PLAIN_CHAT_TEMPLATE` is a simple ``Role: content`` format for base models.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import torch

from rlvr.agents.base import Agent, SamplingConfig
from rlvr.envs.types import Message

if TYPE_CHECKING:
    from transformers import GenerationMixin, PreTrainedModel, PreTrainedTokenizerBase

PLAIN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ message['role'] | capitalize }}: {{ message['content'] }}\n\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)
"""A ``Role: content`` chat template for base models whose tokenizer has none."""


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a :class:`torch.device`; ``None`` picks ``cuda`` if available, else ``cpu``."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _dtype_kwargs(dtype: str | torch.dtype | None) -> dict[str, Any]:
    """The ``from_pretrained`` keyword for a dtype: ``dtype`` (transformers >= 4.56) or
    ``torch_dtype`` (older releases). ``None`` keeps the library default."""
    if dtype is None:
        return {}
    import transformers

    if isinstance(dtype, str) and dtype != "auto":
        if not isinstance(getattr(torch, dtype, None), torch.dtype):
            raise ValueError(f"unknown dtype {dtype!r}; use e.g. 'bfloat16', 'float32', 'auto'")
        dtype = getattr(torch, dtype)
    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    key = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
    return {key: dtype}


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token id lists into ``(input_ids, attention_mask)``, both ``(B, T)`` long."""
    width = max(len(ids) for ids in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, ids in enumerate(prompts):
        if ids:
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, width - len(ids) :] = 1
    return input_ids, attention_mask


def reply_length(tokens: Sequence[int], stop_ids: frozenset[int]) -> int:
    """How many of the generated ``tokens`` belong to the reply: up to and including the
    first stop token, or all of them when none was generated."""
    for position, token in enumerate(tokens):
        if token in stop_ids:
            return position + 1
    return len(tokens)


def _as_id_set(value: int | Sequence[int] | None) -> set[int]:
    if value is None:
        return set()
    if isinstance(value, int):
        return {value}
    return {int(v) for v in value}


class HFAgent(Agent):
    """An :class:`~rlvr.agents.base.Agent` that generates with a ``transformers`` causal LM.

    Args:
        model_id_or_path: A hub id or a local ``save_pretrained`` directory.
        sampling: Temperature, top-p, token budget and seed (see the module docstring).
        device: Where to run; ``None`` picks ``cuda`` when available, else ``cpu``.
        dtype: Weight dtype (``torch.bfloat16``, ``"float16"``, ``"auto"``...); ``None``
            keeps the transformers default.
        trust_remote_code: Passed to ``from_pretrained``; off by default.
        batch_size: The most dialogues generated together by :meth:`act_batch`.
        chat_template: A Jinja template overriding the tokenizer's own.
        revision: The hub revision (branch, tag or commit) to load.
        model_kwargs: Further keywords for ``AutoModelForCausalLM.from_pretrained``
            (``attn_implementation``, ``device_map``...).
    """

    name = "hf"
    counts_tokens = True

    def __init__(
        self,
        model_id_or_path: str | os.PathLike[str],
        *,
        sampling: SamplingConfig | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        trust_remote_code: bool = False,
        batch_size: int = 8,
        chat_template: str | None = None,
        revision: str | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        common = {"trust_remote_code": trust_remote_code, "revision": revision}
        tokenizer = AutoTokenizer.from_pretrained(model_id_or_path, **common)
        model = AutoModelForCausalLM.from_pretrained(
            model_id_or_path, **common, **_dtype_kwargs(dtype), **dict(model_kwargs or {})
        )
        if not (model_kwargs and "device_map" in model_kwargs):
            cast("torch.nn.Module", model).to(resolve_device(device))
        super().__init__()
        self._attach(model, tokenizer, sampling, batch_size, chat_template)
        self.name = f"hf:{model_id_or_path}"

    @classmethod
    def from_model(
        cls,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        sampling: SamplingConfig | None = None,
        batch_size: int = 8,
        chat_template: str | None = None,
    ) -> HFAgent:
        """Wrap a model and tokenizer already in memory; neither is copied, moved or changed
        (generation runs in eval mode and the model's training mode is restored after)."""
        agent = cls.__new__(cls)
        Agent.__init__(agent)
        agent._attach(model, tokenizer, sampling, batch_size, chat_template)
        agent.name = f"hf:{getattr(model, 'name_or_path', '') or type(model).__name__}"
        return agent

    def _attach(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        sampling: SamplingConfig | None,
        batch_size: int,
        chat_template: str | None,
    ) -> None:
        """Set up the state both constructors share, and check the tokenizer is usable."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if chat_template is None and not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                f"tokenizer of {getattr(model, 'name_or_path', 'the model')!r} has no chat "
                "template; pass chat_template=... (e.g. rlvr.agents.hf.PLAIN_CHAT_TEMPLATE)"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.sampling = sampling or SamplingConfig()
        self.batch_size = batch_size
        self.chat_template = chat_template
        self.stop_ids = frozenset(
            _as_id_set(tokenizer.eos_token_id)
            | _as_id_set(getattr(model.generation_config, "eos_token_id", None))
        )
        if not self.stop_ids:
            raise ValueError("the tokenizer and generation config define no eos token")
        # Without a pad token, pad with eos: padding is masked out and cut from the replies.
        pad_id = tokenizer.pad_token_id
        if pad_id is None:
            pad_id = tokenizer.eos_token_id
        self.pad_id = int(pad_id if pad_id is not None else min(self.stop_ids))
        self._generator: torch.Generator | None = None
        if self.sampling.seed is not None:
            self._generator = torch.Generator().manual_seed(self.sampling.seed)

    @property
    def device(self) -> torch.device:
        """The device of the model's (first) parameters, where inputs are placed."""
        return next(self.model.parameters()).device

    def encode(self, dialogue: Sequence[Message]) -> list[int]:
        """The prompt token ids for ``dialogue``: chat template plus generation prompt."""
        text = self.tokenizer.apply_chat_template(
            [message.as_dict() for message in dialogue],
            chat_template=self.chat_template,
            add_generation_prompt=True,
            tokenize=False,
        )
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def act(self, dialogue: Sequence[Message]) -> str:
        """The next reply for one dialogue."""
        return self._generate([self.encode(dialogue)])[0]

    def act_batch(self, dialogues: Sequence[Sequence[Message]]) -> list[str]:
        """The next reply for each dialogue, in order, ``batch_size`` dialogues at a time."""
        prompts = [self.encode(dialogue) for dialogue in dialogues]
        replies: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            replies.extend(self._generate(prompts[start : start + self.batch_size]))
        return replies

    def _generate_kwargs(self) -> dict[str, Any]:
        """Keywords for ``model.generate`` from the sampling config and the stop tokens."""
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.sampling.max_new_tokens,
            "pad_token_id": self.pad_id,
            "eos_token_id": sorted(self.stop_ids),
        }
        if self.sampling.temperature == 0:
            kwargs["do_sample"] = False
        else:
            kwargs.update(
                do_sample=True, temperature=self.sampling.temperature, top_p=self.sampling.top_p
            )
        return kwargs

    @contextlib.contextmanager
    def _seeded(self) -> Iterator[None]:
        """Run the block under the next seed of the private stream, in a forked RNG."""
        if self._generator is None:
            yield
            return
        seed = int(torch.randint(0, 2**62, (1,), generator=self._generator))
        device = self.device
        cuda_ids = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda_ids):
            torch.random.default_generator.manual_seed(seed)
            for index in cuda_ids:
                torch.cuda.default_generators[index].manual_seed(seed)
            yield

    @torch.inference_mode()
    def _generate(self, prompts: list[list[int]]) -> list[str]:
        """Generate one reply per prompt (token ids) in a single left-padded batch."""
        input_ids, attention_mask = left_pad(prompts, self.pad_id)
        device = self.device
        was_training = self.model.training
        self.model.eval()  # no dropout while generating; a trainer's model is put back below
        try:
            with self._seeded():
                output = cast("GenerationMixin", self.model).generate(
                    input_ids=input_ids.to(device),
                    attention_mask=attention_mask.to(device),
                    **self._generate_kwargs(),
                )
        finally:
            self.model.train(was_training)
        new_tokens = output[:, input_ids.shape[1] :].tolist()  # (B, new)
        lengths = [reply_length(tokens, self.stop_ids) for tokens in new_tokens]
        self.tokens_used += sum(lengths)
        replies = [tokens[:n] for tokens, n in zip(new_tokens, lengths, strict=True)]
        return self.tokenizer.batch_decode(replies, skip_special_tokens=True)

    def close(self) -> None:
        """Drop the references to the model and tokenizer and free cached GPU memory."""
        model = self.__dict__.pop("model", None)
        self.__dict__.pop("tokenizer", None)
        if model is not None and torch.cuda.is_available():
            del model
            torch.cuda.empty_cache()
