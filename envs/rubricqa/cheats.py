"""Reward-hacking strategies against RubricQA, built from the observation alone.

Each strategy reads only the task text (and, for padding a good answer, a reference answer)
and returns a reply. They are the env's ``cheat_actions`` probes, the adversarial tests'
inputs and the benchmark's cheating agents; the documented bound on their mean reward is in
``docs/rubricqa.md``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

_FACT_LINE = re.compile(r"^- (?P<label>[^:\n]+): (?P<value>.+)$", re.MULTILINE)
_QUOTED = re.compile(r'"([^"\n]{1,80})"')
_LOREM = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
    "enim",
    "ad",
    "minim",
    "veniam",
    "quis",
    "nostrud",
    "exercitation",
    "ullamco",
    "laboris",
    "nisi",
    "aliquip",
    "ex",
    "ea",
    "commodo",
    "consequat",
    "duis",
    "aute",
    "irure",
    "in",
    "reprehenderit",
    "voluptate",
]


def task_phrases(prompt: str) -> list[str]:
    """Every fact value and quoted phrase of the task, in order, without repeats."""
    values = [m.group("value").strip() for m in _FACT_LINE.finditer(prompt)]
    quoted = _QUOTED.findall(prompt)
    numbers = re.findall(r"\d+(?:\.\d+)?", prompt)
    return list(dict.fromkeys(values + quoted + numbers))


def keyword_stuffing(prompt: str, words: int = 150) -> str:
    """Every phrase of the task, space-separated, repeated up to about ``words`` words."""
    base = " ".join(task_phrases(prompt)) or "answer"
    return _repeat(base, words)


def sentence_stuffing(prompt: str) -> str:
    """Every phrase in the same template sentence (stuffing that looks like prose)."""
    return " ".join(f"The answer is {phrase}." for phrase in task_phrases(prompt))


def filler_padding(prompt: str, words: int = 150) -> str:
    """Every phrase once, then one repeated filler sentence up to about ``words`` words."""
    head = " ".join(task_phrases(prompt))
    pad = " This is some extra text that is here to reach the word count."
    return _repeat(head + pad, words, tail=pad)


def lorem_padding(prompt: str, words: int = 150) -> str:
    """Every phrase once, then lorem ipsum up to about ``words`` words."""
    head = task_phrases(prompt)
    need = max(0, words - len(" ".join(head).split()))
    return " ".join(head + [_LOREM[i % len(_LOREM)] for i in range(need)])


OFF_TOPIC = (
    "Thank you for reaching out. We have looked at your request with care, and we will get "
    "back to you as soon as we can. In the meantime, please do not hesitate to contact us if "
    "there is anything else that we can help you with. We look forward to working with you."
)
"""Polite, well-formed prose that uses none of the task's facts."""


def prompt_echo(prompt: str) -> str:
    return prompt


def facts_echo(prompt: str) -> str:
    """The fact lines of the task, copied."""
    return "\n".join(m.group(0) for m in _FACT_LINE.finditer(prompt)) or prompt


def json_dump(prompt: str) -> str:
    """The task's facts as a JSON object."""
    facts = {m.group("label"): m.group("value") for m in _FACT_LINE.finditer(prompt)}
    return json.dumps(facts)


def enormous(reference: str, chars: int = 39_000) -> str:
    """A good answer repeated up to ``chars`` characters (under the action limit)."""
    unit = (reference or "answer") + "\n\n"
    return (unit * (chars // len(unit) + 1))[:chars]


def _repeat(text: str, words: int, tail: str = "") -> str:
    out = text
    step = tail or (" " + text)
    while len(out.split()) < words:
        out += step
    return out


STRATEGIES: dict[str, Callable[[str], str]] = {
    "empty": lambda prompt: "",
    "keyword_stuffing": keyword_stuffing,
    "sentence_stuffing": sentence_stuffing,
    "filler": filler_padding,
    "lorem_filler": lorem_padding,
    "prompt_echo": prompt_echo,
    "prompt_echo_x3": lambda prompt: "\n".join([prompt] * 3),
    "facts_echo": facts_echo,
    "json_dump": json_dump,
    "off_topic": lambda prompt: OFF_TOPIC,
}
"""Strategies that read only the task text."""


def cheat_answers(prompt: str, reference: str) -> list[str]:
    """Every strategy's reply for this task, plus an enormous repeated good answer."""
    return [make(prompt) for make in STRATEGIES.values()] + [enormous(reference)]
