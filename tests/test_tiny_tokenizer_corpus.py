"""``model.tiny.tokenizer_corpus: envs``: the tiny model's tokenizer learns the envs' names."""

from __future__ import annotations

from typing import Any

import pytest
import transformers
from conftest import ROOT, SMALL

import rlvr  # noqa: F401  (registers the envs)
from rlvr.training.config import EnvConfig, ModelConfig, SFTConfig, TinyModelConfig, load_config
from rlvr.training.policy import resolve_model_source
from rlvr.training.sft import scripted_chats, tokenizer_corpus

MULTIHOP = EnvConfig(
    id="rlvr/MultiHop-v0", difficulty=0, kwargs={"mode": "context", "context_chars": 300}
)


def _held_out_entities(count: int) -> list[str]:
    """The hop entities the scripted solver names (``Chain: A -> B -> C.``) on held-out seeds."""
    chats = scripted_chats([MULTIHOP], SFTConfig(episodes=count, seed_offset=1 << 30))
    names = []
    for chat in chats:
        chain = next(line for line in chat[-1].content.splitlines() if line.startswith("Chain:"))
        names += chain.removeprefix("Chain:").strip().rstrip(".").split(" -> ")
    return names


def test_corpus_is_every_message_of_the_warm_up_episodes() -> None:
    corpus = tokenizer_corpus([MULTIHOP], 3)
    chats = scripted_chats([MULTIHOP], SFTConfig(episodes=3, successful_only=False))
    assert corpus == [message.content for chat in chats for message in chat]
    assert len(corpus) == sum(len(chat) for chat in chats) >= 6
    assert tokenizer_corpus([MULTIHOP], 3) == corpus


def test_envs_corpus_shortens_held_out_names(tiny_cache: None) -> None:
    def tokens(tiny: TinyModelConfig, envs: list[EnvConfig]) -> Any:
        source = resolve_model_source(ModelConfig(tiny=tiny), envs=envs)
        return transformers.AutoTokenizer.from_pretrained(source)

    builtin = tokens(TinyModelConfig(**SMALL), [])
    learned = tokens(
        TinyModelConfig(**SMALL, vocab_size=2048, tokenizer_corpus="envs", tokenizer_episodes=60),
        [MULTIHOP],
    )
    names = [f" {name}" for name in _held_out_entities(12)]
    before = sum(len(builtin(name)["input_ids"]) for name in names)
    after = sum(len(learned(name)["input_ids"]) for name in names)
    assert after < 0.6 * before
    assert all(learned.decode(learned(name)["input_ids"]) == name for name in names)


def test_envs_corpus_needs_envs_and_a_vocabulary_that_fits() -> None:
    with pytest.raises(ValueError, match="tokenizer_corpus=envs"):
        resolve_model_source(ModelConfig(tiny=TinyModelConfig(tokenizer_corpus="envs")))
    with pytest.raises(ValueError, match="vocab_size"):
        TinyModelConfig(vocab_size=100)
    config = load_config(
        ROOT / "scenarios" / "quickstart.yaml",
        ["model.tiny={vocab_size: 4096, tokenizer_corpus: envs}"],
    )
    assert config.model.tiny.vocab_size == 4096
    assert config.model.tiny.tokenizer_corpus == "envs"
