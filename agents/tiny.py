"""A tiny Llama-style causal LM and its tokenizer, built locally with no download.

This is the project's embedded default model: tests, smoke runs and ``--agent tiny`` use it
where no real checkpoint is at hand (nothing can be fetched from the Hugging Face hub at run
time), and the trainer trains it. :func:`build_tiny_model` writes an ordinary
``save_pretrained`` directory, so everything downstream loads it through the usual
``AutoModelForCausalLM.from_pretrained(path)`` / ``AutoTokenizer.from_pretrained(path)``.

The tokenizer is a byte-level BPE trained with the ``tokenizers`` library on a small corpus
of math and chat text embedded below, plus any extra text the caller passes (the trainer passes
its envs' transcripts when ``model.tiny.tokenizer_corpus`` is ``envs``, so that names copied
from a prompt are a few tokens each, as in a pretrained model's vocabulary, rather than spelled
out byte by byte). Its 256-symbol byte alphabet covers every byte, so any Unicode text
round-trips through ``encode``/``decode`` exactly. Special tokens:

========================  ==========================================================
``<|pad|>`` (id 0)        padding
``<|bos|>`` (id 1)        start of a sequence; the chat template writes it first
``<|endoftext|>`` (id 2)  end of a plain document
``<|im_start|>`` (id 3)   opens a chat turn: ``<|im_start|>ROLE\\n``
``<|im_end|>`` (id 4)     closes a chat turn; the tokenizer's ``eos_token``
========================  ==========================================================

The chat template is ChatML (``<|im_start|>role\\ncontent<|im_end|>\\n`` per message, and
``<|im_start|>assistant\\n`` for ``add_generation_prompt=True``). Plain ``tokenizer(text)``
adds no special tokens; only the chat template writes ``<|bos|>``.

The weights are random (seeded): the model speaks gibberish until trained. Building is
deterministic for a given seed and takes well under a second.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import LlamaConfig, PreTrainedTokenizerFast

TINY_VERSION = 1
"""Bump when the recipe below changes, so cached builds (see :func:`ensure_tiny_model`) refresh."""

PAD, BOS, EOT, IM_START, IM_END = (
    "<|pad|>",
    "<|bos|>",
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
)
SPECIAL_TOKENS = (PAD, BOS, EOT, IM_START, IM_END)
"""The special tokens, in id order (0..4)."""

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""ChatML, as Jinja: one ``<|im_start|>role\\n...<|im_end|>\\n`` block per message."""

_CORPUS = (
    "You are a careful math assistant. Think step by step, then give the final answer "
    "in \\boxed{}.",
    "Solve for x: 3x + 5 = 20. Subtract 5 from both sides: 3x = 15. Divide by 3: x = 5. "
    "The answer is \\boxed{5}.",
    "What is 12 * 7? 12 * 7 = 84, so the answer is \\boxed{84}.",
    "Compute 1/2 + 1/3. The common denominator is 6: 3/6 + 2/6 = 5/6. \\boxed{\\frac{5}{6}}",
    "Find the derivative of f(x) = x^2 + 2x + 1. f'(x) = 2x + 2. \\boxed{2x + 2}",
    "Simplify (x^2 - 1)/(x - 1) for x != 1. It factors as (x - 1)(x + 1)/(x - 1) = x + 1.",
    "The sum of the first 10 positive integers is 10 * 11 / 2 = 55. \\boxed{55}",
    "If a train travels 60 km in 1.5 hours, its average speed is 40 km/h. \\boxed{40}",
    "The roots of x^2 - 5x + 6 = 0 are x = 2 and x = 3. \\boxed{2, 3}",
    "Evaluate the integral of 2x from 0 to 3: [x^2] from 0 to 3 = 9. \\boxed{9}",
    "What is the greatest common divisor of 48 and 180? gcd(48, 180) = 12. \\boxed{12}",
    "How many primes are less than 20? 2, 3, 5, 7, 11, 13, 17, 19: eight. \\boxed{8}",
    "The probability of two heads in two fair coin flips is 1/4. \\boxed{\\frac{1}{4}}",
    "sqrt(144) = 12 and 2^10 = 1024; 0.5 + 0.25 = 0.75; -3 - 4 = -7.",
    "system\nYou are a helpful assistant.\nuser\nHello! Can you help me with a problem?\n"
    "assistant\nOf course. Please tell me the problem and I will solve it step by step.",
    "user\nYour answer was incorrect. Please try again.\nassistant\nLet me check my work. "
    "I made an arithmetic mistake; the correct answer is \\boxed{42}.",
    "user\nWrite a Python function that returns the square of a number.\nassistant\n"
    "```python\ndef square(x):\n    return x * x\n```",
    'tool\n{"result": 3.14159}\nassistant\nThe tool returned 3.14159, which is pi.',
    "Thank you! The question asks for the value of y when x = 4, and y = 2x + 1 = 9.",
    "Therefore the final answer is \\boxed{7}. I hope this helps.",
)
"""Text the byte-level BPE merges are learned from: math, chat turns, a little code."""


def build_tiny_tokenizer(
    vocab_size: int = 512, corpus: Sequence[str] = ()
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with ChatML special tokens and chat template.

    The merges are learned from the embedded corpus followed by ``corpus``. ``vocab_size`` is
    an upper bound: a small corpus yields fewer merges than a large request asks for, and
    ``len(tokenizer)`` gives the size actually reached.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must cover the 256 bytes and specials, got {vocab_size}")
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator([*_CORPUS, *corpus], trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=IM_END,
        pad_token=PAD,
        additional_special_tokens=[IM_START, EOT],
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def tiny_config(
    vocab_size: int,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int = 176,
    max_positions: int = 2048,
) -> LlamaConfig:
    """The ``LlamaConfig`` of the tiny model (tied embeddings; ids of :data:`SPECIAL_TOKENS`)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        pad_token_id=SPECIAL_TOKENS.index(PAD),
        bos_token_id=SPECIAL_TOKENS.index(BOS),
        eos_token_id=SPECIAL_TOKENS.index(IM_END),
    )


def build_tiny_model(
    path: str | Path,
    *,
    seed: int = 0,
    vocab_size: int = 512,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int = 176,
    max_positions: int = 2048,
    corpus: Sequence[str] = (),
) -> Path:
    """Build the tiny model and tokenizer and ``save_pretrained`` both into ``path``.

    ``corpus``: extra text the tokenizer's merges are learned from (see
    :func:`build_tiny_tokenizer`).

    The weights are initialised under ``torch.manual_seed(seed)`` inside a forked RNG, so
    the build is deterministic and leaves the caller's global RNG state untouched.
    Generation stops at ``<|im_end|>`` or ``<|endoftext|>`` (``generation_config.json``).
    Returns ``path`` as a :class:`~pathlib.Path`.
    """
    import torch
    from transformers import GenerationConfig, LlamaForCausalLM

    path = Path(path)
    tokenizer = build_tiny_tokenizer(vocab_size, corpus)
    tokenizer.model_max_length = max_positions
    config = tiny_config(
        len(tokenizer),
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        intermediate_size=intermediate_size,
        max_positions=max_positions,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=[config.eos_token_id, SPECIAL_TOKENS.index(EOT)],
        pad_token_id=config.pad_token_id,
    )
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def default_cache_dir() -> Path:
    """Where rlvr caches built artefacts: ``$RLVR_CACHE_DIR``, else ``$XDG_CACHE_HOME/rlvr``,
    else ``~/.cache/rlvr``."""
    if env := os.environ.get("RLVR_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rlvr"


def ensure_tiny_model(
    cache_dir: str | Path | None = None,
    *,
    seed: int = 0,
    corpus: Sequence[str] = (),
    **sizes: int,
) -> Path:
    """The path of the cached tiny model for ``seed``, ``corpus`` (extra tokenizer text, told
    apart in the cache by its SHA-256) and ``sizes`` (the keyword arguments of
    :func:`build_tiny_model` that set its dimensions), building it first if absent.

    The build goes to a temporary sibling directory that is renamed into place, so
    concurrent processes (``torchrun`` workers, parallel tests) never see a half-written
    model; when two race, the first rename wins and the other copy is discarded.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    shape = "".join(f"-{key}{value}" for key, value in sorted(sizes.items()))
    if corpus:
        digest = hashlib.sha256("\0".join(corpus).encode()).hexdigest()[:16]
        shape += f"-corpus{digest}"
    target = root / f"tiny-llama-v{TINY_VERSION}-seed{seed}{shape}"
    if (target / "config.json").is_file() and (target / "tokenizer.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tiny-build-", dir=root))
    try:
        build_tiny_model(staging, seed=seed, corpus=corpus, **sizes)
        try:
            staging.rename(target)
        except OSError:
            # Another process finished first (or a stale partial dir exists): keep a
            # complete one.
            if not (target / "config.json").is_file():
                shutil.rmtree(target, ignore_errors=True)
                staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
