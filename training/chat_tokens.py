"""Token in, token out: a multi-turn rollout trains on exactly the ids it sampled.

Re-rendering the whole dialogue through the chat template at every turn can change tokens of
earlier turns: templates that strip past ``<think>`` blocks (Qwen3), or a re-tokenization that
merges text across a turn boundary. The trained sequence would then differ from the sampled
one, and the importance ratios and the loss mask would be computed on tokens the policy never
produced. So a rollout only ever *appends*:

1. the first prompt, rendered once with the generation prompt (:meth:`ChatTokens.prompt_ids`);
2. the assistant ids exactly as sampled (ending with the end-of-turn token, or cut by the
   token budget, then closed with :meth:`ChatTokens.close_ids`);
3. the env's new messages, rendered on their own (:meth:`ChatTokens.append_ids`).

How new messages are rendered on their own: the template is applied to a fixed probe dialogue
``P = [system, user, assistant]`` and to ``P + new`` with the generation prompt. The second
rendering must extend the first (checked); the extension, preceded by what the template writes
after the assistant's end token (``"\\n"`` in ChatML), is the text that follows an assistant
turn. It is tokenized once, without special tokens added, so the model sees at sampling time
the very ids it is trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlvr.envs.types import Message

_PROBE_SYSTEM = "rlvr-probe-system"
_PROBE_USER = "rlvr-probe-user"
_PROBE_ASSISTANT = "rlvr-probe-assistant"


class ChatTokens:
    """Incremental, token-exact rendering of a dialogue for one tokenizer and chat template.

    Args:
        tokenizer: a ``transformers`` tokenizer with a chat template and an eos token.
        chat_template: a template overriding the tokenizer's own.

    Raises ``ValueError`` when the template cannot be extended turn by turn: it does not end
    assistant turns with the eos token, or rendering more messages rewrites the probe's text.
    """

    def __init__(self, tokenizer: Any, chat_template: str | None = None):
        self.tokenizer = tokenizer
        self.chat_template = chat_template
        eos = tokenizer.eos_token
        if not eos:
            raise ValueError("the tokenizer has no eos token to end assistant turns with")
        self.eos_id: int = tokenizer.eos_token_id
        probe = [
            Message("system", _PROBE_SYSTEM),
            Message("user", _PROBE_USER),
            Message("assistant", _PROBE_ASSISTANT),
        ]
        self._probe = probe
        self._probe_text = self._render(probe, generation_prompt=False)
        closing = self._probe_text[
            self._probe_text.rfind(_PROBE_ASSISTANT) + len(_PROBE_ASSISTANT) :
        ]
        if not closing.startswith(eos):
            raise ValueError(
                f"the chat template closes assistant turns with {closing[:20]!r}, not with the "
                f"eos token {eos!r}: token-in, token-out needs the sampled turn to end at eos"
            )
        self._after_eos = closing[len(eos) :]

    def _render(self, messages: Sequence[Message], *, generation_prompt: bool) -> str:
        text = self.tokenizer.apply_chat_template(
            [m.as_dict() for m in messages],
            chat_template=self.chat_template,
            add_generation_prompt=generation_prompt,
            tokenize=False,
        )
        return str(text)

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        """The first prompt (system prompt and first observation) with the generation prompt."""
        return self._encode(self._render(messages, generation_prompt=True))

    def append_ids(self, messages: Sequence[Message]) -> list[int]:
        """The ids that follow a finished assistant turn: ``messages`` (the env's reply, as
        ``user`` or ``tool`` messages) and the generation prompt of the next assistant turn."""
        if not messages:
            raise ValueError("append_ids needs at least one message")
        full = self._render([*self._probe, *messages], generation_prompt=True)
        if not full.startswith(self._probe_text):
            raise ValueError(
                "the chat template rewrites earlier turns when messages are added; it cannot "
                "be extended turn by turn"
            )
        return self._encode(self._after_eos + full[len(self._probe_text) :])

    def close_ids(self, sampled: Sequence[int]) -> list[int]:
        """What must follow ``sampled`` to end the assistant turn: nothing when it ended with
        eos, else the eos id (a turn cut by the token budget). Not trained on."""
        return [] if sampled and sampled[-1] == self.eos_id else [self.eos_id]
