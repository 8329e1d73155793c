"""A scripted solver for ``rlvr/RubricQA-v0`` that reads only the task text.

:class:`RubricQASolver` parses the first user message: the fact lines (applying the updates
in order and setting aside the other notes), and each numbered requirement, which it turns
back into a rubric checker (the inverse of the checkers' ``describe``). Figures given as
"computed as 12 × 35.50" are evaluated exactly with sympy. It then hands the facts, the
figures and its own rubric to :func:`rlvr.envs.rubricqa.writer.write`, which lays out an
answer and keeps the first layout that its rubric accepts. It never sees the env's rubric,
generator or reference. After feedback it answers again the same way. Requirements it
cannot read are skipped (so judge criteria and free-form dataset rules go unmet); it
never raises.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence

from rlvr.agents.base import Agent
from rlvr.envs.rubricqa.families import figure
from rlvr.envs.rubricqa.writer import Brief, write
from rlvr.envs.types import Message
from rlvr.rewards.rubric import (
    BulletList,
    Casing,
    Checker,
    Contains,
    Criterion,
    EndsWith,
    Excludes,
    Headings,
    InOrder,
    JsonSchema,
    NoEcho,
    NumericFact,
    ParagraphCount,
    Placeholders,
    Prose,
    Rubric,
    SentenceCount,
    StartsWith,
    TitleLine,
    WordCount,
)
from rlvr.rewards.rubric_checks import CasingMode

GIVE_UP = "I cannot write an answer to this task."
"""The reply when the task text cannot be read at all."""

OPTIONAL_MARK = " (preferred, not required)"
_FACT = re.compile(r"^- (?P<label>[^:\n]+): (?P<value>.+)$")
_REQUIREMENT = re.compile(r"^\d+\. (?P<text>.+)$")
_QUOTED = re.compile(r'"([^"\n]*)"')
_RANGE = re.compile(
    r"between (?P<low>\d+) and (?P<high>\d+)|exactly (?P<exact>\d+)|at least (?P<min>\d+)"
    r"|at most (?P<max>\d+)"
)


SECTIONS = (
    ("Facts:", "facts"),
    ("Updates", "updates"),
    ("Other notes", "notes"),
    ("Requirements:", "requirements"),
)
"""Line prefix -> the section of the task text it opens."""


class TaskReading:
    """What the solver reads from a task: facts, stale values, requirement lines."""

    def __init__(self, prompt: str):
        self.prompt = prompt
        lines = prompt.splitlines()
        self.instruction = lines[0].strip() if lines else ""
        self.facts: dict[str, str] = {}
        self.stale: list[str] = []
        self.requirements: list[str] = []
        section = ""
        for line in lines[1:]:
            section = self._section(line, section)
            fact, requirement = _FACT.match(line), _REQUIREMENT.match(line)
            if fact and section in ("facts", "updates"):
                self._learn(fact.group("label").strip(), fact.group("value").strip())
            elif fact and section == "notes":
                self.stale.append(fact.group("value").strip())
            elif requirement and section == "requirements":
                self.requirements.append(requirement.group("text").strip())

    @staticmethod
    def _section(line: str, current: str) -> str:
        for head, name in SECTIONS:
            if line.startswith(head):
                return name
        return current

    def _learn(self, label: str, value: str) -> None:
        old = self.facts.get(label)
        if old is not None and old != value:
            self.stale.append(old)
        self.facts[label] = value

    @property
    def topic(self) -> str:
        found = re.search(
            r"\babout (?:the )?(.+?)\.?$|\b(?:of|in) (.+?)(?: for .*)?\.?$", self.instruction
        )
        text = next((g for g in found.groups() if g), "") if found else ""
        return text or "the answer"


Parser = Callable[[str, TaskReading], "Checker | None"]


def _range(text: str) -> tuple[int | None, int | None] | None:
    found = _RANGE.search(text)
    if found is None:
        return None
    if found.group("low"):
        return int(found.group("low")), int(found.group("high"))
    if found.group("exact"):
        return int(found.group("exact")), int(found.group("exact"))
    if found.group("min"):
        return int(found.group("min")), None
    return None, int(found.group("max"))


def _counted(
    kind: type[WordCount] | type[SentenceCount] | type[ParagraphCount] | type[BulletList],
) -> Parser:
    def parse(text: str, reading: TaskReading) -> Checker | None:
        bounds = _range(text)
        return kind(*bounds) if bounds else None

    return parse


def _figure(text: str, reading: TaskReading) -> Checker | None:
    found = re.match(
        r"Give the (?P<label>.+?), computed as (?P<expr>.+), "
        r'right after the words "(?P<cue>[^"]+)"',
        text,
    )
    if found:
        made = figure(found.group("cue"), found.group("expr"))
        return NumericFact(made.value, made.cue, tolerance="0.01")
    given = re.match(r'Give the number (?P<value>\S+) right after the words "(?P<cue>[^"]+)"', text)
    return NumericFact(given.group("value"), given.group("cue")) if given else None


def _json(text: str, reading: TaskReading) -> Checker | None:
    start = text.find("{")
    schema, _ = json.JSONDecoder().raw_decode(text, start)
    return JsonSchema(schema)


def _placeholders(text: str, reading: TaskReading) -> Checker | None:
    tokens = tuple(re.findall(r"\[[^\[\]]+\]", text))
    return Placeholders(tokens, allow_others="no other text" not in text) if tokens else None


def _title(text: str, reading: TaskReading) -> Checker | None:
    quoted = _QUOTED.findall(text)
    most = re.search(r"at most (\d+) words", text)
    return TitleLine(quoted[0] if quoted else "", int(most.group(1)) if most else 12)


def _stale(text: str, reading: TaskReading) -> Checker | None:
    return Excludes(tuple(dict.fromkeys(reading.stale))) if reading.stale else None


def _casing(mode: CasingMode) -> Parser:
    return lambda text, reading: Casing(mode)


PARSERS: tuple[tuple[str, Parser], ...] = (
    (r"^Use these facts:", lambda text, r: Contains(tuple(r.facts.values())) if r.facts else None),
    (r"^Give the ", _figure),
    (r"^Do not mention out-of-date values", _stale),
    (r"^Mention .* in this order\.$", lambda text, r: InOrder(tuple(_QUOTED.findall(text)))),
    (r"^Mention at least one of ", lambda text, r: Contains(tuple(_QUOTED.findall(text)), "any")),
    (r"^Mention ", lambda text, r: Contains(tuple(_QUOTED.findall(text)))),
    (r"^Do not mention ", lambda text, r: Excludes(tuple(_QUOTED.findall(text)))),
    (r"^Write .*\bwords\.$", _counted(WordCount)),
    (r"^Use .*\bsentences\.$", _counted(SentenceCount)),
    (r"^Use .*\bparagraphs\b", _counted(ParagraphCount)),
    (r"^Include a bulleted list", _counted(BulletList)),
    (r"^Begin the answer with ", lambda text, r: StartsWith(_QUOTED.findall(text)[0])),
    (r"^End the answer with ", lambda text, r: EndsWith(_QUOTED.findall(text)[0])),
    (r"^Start with a title line", _title),
    (r"^Organize the answer under the markdown headings",
     lambda text, r: Headings(tuple(q.lstrip("# ") for q in _QUOTED.findall(text)))),
    (r"^Keep the placeholders|^Use at least \d+ placeholders", _placeholders),
    (r"in lowercase letters", _casing("lower")),
    (r"in capital letters", _casing("upper")),
    (r"^Start every sentence with a capital letter", _casing("sentence")),
    (r"^Reply with only a JSON object", _json),
    (r"^Write natural prose", lambda text, r: Prose()),
    (r"^Stay on the task", lambda text, r: Contains(tuple(r.facts.values()), "any")),
    (r"^Do not copy the task text", lambda text, r: NoEcho()),
)  # fmt: skip
"""Requirement pattern -> the checker it describes, first match wins."""


def read_rubric(reading: TaskReading) -> Rubric | None:
    """The solver's own rubric, one criterion per requirement it can read."""
    criteria = []
    for index, line in enumerate(reading.requirements, start=1):
        required = not line.endswith(OPTIONAL_MARK)
        text = line.removesuffix(OPTIONAL_MARK)
        check = parse_requirement(text, reading)
        if check is not None:
            gate = isinstance(check, (Prose, NoEcho)) or text.startswith("Stay on the task")
            criteria.append(Criterion(f"r{index}", check, required=required, gate=gate))
    return Rubric(tuple(criteria)) if criteria else None


def parse_requirement(text: str, reading: TaskReading) -> Checker | None:
    """The checker a requirement line describes; ``None`` when it cannot be read."""
    for pattern, parse in PARSERS:
        if re.search(pattern, text):
            try:
                return parse(text, reading)
            except (ValueError, IndexError, TypeError, ArithmeticError):
                return None
    return None


def solve(prompt: str) -> str:
    """An answer to the task text ``prompt``."""
    reading = TaskReading(prompt)
    rubric = read_rubric(reading)
    if rubric is None and not reading.facts:
        return GIVE_UP
    rubric = rubric or Rubric.of(Criterion("facts", Contains(tuple(reading.facts.values()))))
    figures = tuple(
        (c.check.cue, c.check.value) for c in rubric.criteria if isinstance(c.check, NumericFact)
    )
    brief = Brief(reading.topic, tuple(reading.facts.items()), figures, rubric, prompt)
    return write(brief) or GIVE_UP


class RubricQASolver(Agent):
    """Writes an answer that meets the requirements it reads in the task (module docstring)."""

    name = "rubricqa-solver"

    def act(self, dialogue: Sequence[Message]) -> str:
        prompt = next((m.content for m in dialogue if m.role == "user"), "")
        try:
            return solve(prompt)
        except Exception:  # a scripted baseline answers honestly instead of crashing an eval
            return GIVE_UP
