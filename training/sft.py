"""Supervised warm-up: teach a fresh model the format before RL, so rewards start above zero.

The chats come from the scripted solver of each training env (episodes played on seeds that
RL and evaluation never draw) or from a JSONL file of ``{"messages": [...]}`` chats. A chat is
rendered exactly as rollouts render it (:class:`~rlvr.training.chat_tokens.ChatTokens`): the
first prompt once, each assistant reply as its own ids plus the end-of-turn id, each env
message appended on its own. Only assistant tokens (and their end-of-turn id) carry loss.

When a scripted episode fails, the env's ``info["reference"]`` (the gold answer or solution)
and ``info["feedback"]`` are kept in the record, so solvers that need them can use them; the
warm-up itself trains only on episodes the solver won.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from rlvr.envs.types import Message
from rlvr.envs.wrappers import play
from rlvr.training.chat_tokens import ChatTokens
from rlvr.training.config import EnvConfig, SFTConfig


@dataclass(frozen=True)
class SFTExample:
    """One rendered chat: ids and which of them are trained on."""

    ids: tuple[int, ...]
    loss_mask: tuple[int, ...]


def render_chat(chat: ChatTokens, messages: Sequence[Message]) -> SFTExample:
    """Token ids of a chat and its loss mask (1 on assistant replies and their eos)."""
    first = next((i for i, m in enumerate(messages) if m.role == "assistant"), None)
    if first is None or first == 0:
        raise ValueError("a training chat needs prompt messages followed by an assistant reply")
    ids = chat.prompt_ids(messages[:first])
    mask = [0] * len(ids)
    pending: list[Message] = []
    for message in messages[first:]:
        if message.role != "assistant":
            pending.append(message)
            continue
        if pending:
            glue = chat.append_ids(pending)
            ids += glue
            mask += [0] * len(glue)
            pending = []
        reply = chat.tokenizer(message.content, add_special_tokens=False)["input_ids"]
        reply = [*reply, chat.eos_id]
        ids += reply
        mask += [1] * len(reply)
    return SFTExample(tuple(ids), tuple(mask))


def read_chats(path: str | Path) -> list[list[Message]]:
    """Chats from a JSONL file; a bad line is a ``ValueError`` naming it."""
    chats = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            chats.append([Message(m["role"], m["content"]) for m in record["messages"]])
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(
                f"{path}:{number}: not a {{'messages': [...]}} chat ({error})"
            ) from None
    return chats


def scripted_chats(envs: Sequence[EnvConfig], config: SFTConfig) -> list[list[Message]]:
    """Episodes of each env's scripted solver, on seeds ``config.seed_offset + i``: the
    winning ones, or all of them when ``config.successful_only`` is false."""
    from rlvr.agents.registry import load_agent

    chats = []
    for env_config in envs:
        env = gym.make(env_config.id, **{**env_config.kwargs, **config.env_kwargs})
        agent = load_agent("scripted", env_id=env_config.id, **env_config.solver)
        options = {"difficulty": env_config.difficulty} if env_config.difficulty is not None else {}
        if env_config.curriculum is not None:
            options = {"difficulty": env_config.curriculum.start}
        for i in range(config.episodes):
            transcript = play(env, agent.act, seed=config.seed_offset + i, options=options or None)
            if transcript.success or not config.successful_only:
                chats.append(transcript.messages())
        env.close()
    if not chats:
        raise ValueError("the scripted solvers won no episode to learn from")
    return chats


def tokenizer_corpus(envs: Sequence[EnvConfig], episodes: int) -> list[str]:
    """Text a tokenizer can learn the envs' vocabulary from: every message of ``episodes``
    scripted-solver episodes per env, won or lost, on the warm-up's seeds (never the
    held-out evaluation seeds)."""
    config = SFTConfig(episodes=episodes, successful_only=False)
    return [message.content for chat in scripted_chats(envs, config) for message in chat]


def sft_examples(
    chat: ChatTokens, envs: Sequence[EnvConfig], config: SFTConfig
) -> list[SFTExample]:
    chats = read_chats(config.data) if config.data else scripted_chats(envs, config)
    return [render_chat(chat, messages) for messages in chats]


def batches(
    examples: Sequence[SFTExample], batch_size: int, pad_id: int, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Endless shuffled batches: ids (N, L), attention (N, L), loss mask of targets (N, L-1)."""
    while True:
        order = torch.randperm(len(examples), generator=generator).tolist()
        for start in range(0, len(order) - batch_size + 1, batch_size):
            chosen = [examples[i] for i in order[start : start + batch_size]]
            width = max(len(e.ids) for e in chosen)
            ids = torch.full((len(chosen), width), pad_id, dtype=torch.long)
            attention = torch.zeros_like(ids)
            mask = torch.zeros_like(ids, dtype=torch.float)
            for row, example in enumerate(chosen):
                n = len(example.ids)
                ids[row, :n] = torch.tensor(example.ids)
                attention[row, :n] = 1
                mask[row, :n] = torch.tensor(example.loss_mask, dtype=torch.float)
            yield ids, attention, mask[:, 1:]


def sft_loss(
    model: Any, ids: torch.Tensor, attention: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Mean cross-entropy of the masked target tokens (token mean over the batch)."""
    logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1, :].float()
    nll = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none"
    ).view_as(mask)
    return (nll * mask).sum() / mask.sum().clamp(min=1.0)
