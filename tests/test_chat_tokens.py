"""Token in, token out: the rollout's ids are append-only and keep what was sampled."""

from __future__ import annotations

import pytest

from rlvr.agents.tiny import build_tiny_tokenizer
from rlvr.envs.types import Message
from rlvr.training.chat_tokens import ChatTokens

# ChatML, except that earlier assistant turns lose their <think> block (as Qwen3 renders them).
STRIPS_THINKING = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['role'] == 'assistant' and not loop.last %}"
    "{{ m['content'].split('</think>')[-1] }}{% else %}{{ m['content'] }}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer()


def sample(tokenizer, text):
    """What a model 'samples': the reply's ids, ending with the end-of-turn token."""
    return tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def rollout(chat, tokenizer, replies, feedback):
    """Build a 2-turn rollout the way the trainer does: prompt, sampled, env, sampled."""
    opening = [Message("system", "Be brief."), Message("user", "What is 2+2?")]
    ids, mask = chat.prompt_ids(opening), []
    mask += [0] * len(ids)
    for index, reply in enumerate(replies):
        sampled = sample(tokenizer, reply)
        ids += sampled
        mask += [1] * len(sampled)
        if index < len(feedback):
            env_ids = chat.append_ids([Message("user", feedback[index])])
            ids += env_ids
            mask += [0] * len(env_ids)
    return opening, ids, mask


def test_chatml_rollout_decodes_to_the_template_rendering(tokenizer):
    chat = ChatTokens(tokenizer)
    opening, ids, mask = rollout(chat, tokenizer, ["\\boxed{5}", "\\boxed{4}"], ["Wrong."])
    dialogue = [
        *opening,
        Message("assistant", "\\boxed{5}"),
        Message("user", "Wrong."),
        Message("assistant", "\\boxed{4}"),
    ]
    rendered = tokenizer.apply_chat_template(
        [m.as_dict() for m in dialogue], tokenize=False, add_generation_prompt=False
    )
    assert tokenizer.decode(ids) == rendered.removesuffix("\n")  # ChatML's "\n" after the end
    # the mask covers exactly the sampled ids
    policy = [i for i, m in zip(ids, mask, strict=True) if m]
    assert policy == sample(tokenizer, "\\boxed{5}") + sample(tokenizer, "\\boxed{4}")


def test_a_template_that_rewrites_history_does_not_rewrite_the_rollout(tokenizer):
    chat = ChatTokens(tokenizer, chat_template=STRIPS_THINKING)
    first = "<think>2 plus 2</think>\\boxed{4}"
    _, ids, mask = rollout(chat, tokenizer, [first, "sure"], ["Are you sure?"])
    sampled = sample(tokenizer, first)
    start = mask.index(1)
    assert ids[start : start + len(sampled)] == sampled  # the thinking stays, token for token
    assert "2 plus 2" in tokenizer.decode(ids)
    rerendered = tokenizer.apply_chat_template(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": first},
            {"role": "user", "content": "Are you sure?"},
        ],
        chat_template=STRIPS_THINKING,
        tokenize=False,
        add_generation_prompt=True,
    )
    assert "2 plus 2" not in rerendered  # what re-rendering would have trained on instead


def test_templates_that_cannot_be_extended_are_refused(tokenizer):
    plain = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant: {% endif %}"
    )
    with pytest.raises(ValueError, match="eos"):
        ChatTokens(tokenizer, chat_template=plain)
    counting = "{{ messages | length }}" + tokenizer.chat_template
    with pytest.raises(ValueError, match="rewrites earlier turns"):
        ChatTokens(tokenizer, chat_template=counting).append_ids([Message("user", "x")])


def test_close_ids_ends_a_turn_cut_by_the_budget(tokenizer):
    chat = ChatTokens(tokenizer)
    eos = tokenizer.eos_token_id
    assert chat.close_ids([5, 6, eos]) == []
    assert chat.close_ids([5, 6]) == [eos]
    assert chat.close_ids([]) == [eos]
