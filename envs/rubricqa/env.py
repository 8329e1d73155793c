"""``rlvr/RubricQA-v0``: open-ended writing tasks scored criterion by criterion."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from faker import Faker

from rlvr.envs.core import DifficultySpec, TextEnv, parse_max_turns
from rlvr.envs.rubricqa.cheats import cheat_answers
from rlvr.envs.rubricqa.families import FAMILIES
from rlvr.envs.rubricqa.generators import generate
from rlvr.envs.rubricqa.prompt import (
    feedback_text,
    render_generated,
    render_record,
    verification_text,
)
from rlvr.envs.rubricqa.writer import Brief, write
from rlvr.envs.types import Outcome, Reply, Task
from rlvr.rewards.rubric import JudgeFn, NumericFact, Rubric, RubricScore

SYSTEM_PROMPT = (
    "You are a careful writer. Write the answer the task asks for, using the facts it gives "
    "(apply every update; ignore notes about other things) and meeting every numbered "
    "requirement. Reply with the answer only."
)


def rubric_info(rubric: Rubric) -> dict[str, dict[str, Any]]:
    """Criterion name -> weight, category, required, gate, judged (for reward reweighting)."""
    return {
        c.name: {
            "weight": c.weight,
            "category": c.category,
            "required": c.required,
            "gate": c.gate,
            "judged": c.judged,
        }
        for c in rubric.criteria
    }


class RubricQAEnv(TextEnv):
    """Open-ended answers (emails, product descriptions, summaries, itineraries, FAQ answers)
    scored by programmatic rubrics, with one reward component per criterion.

    **Tasks.** Generated from a seed with Faker and sympy (families ``email``, ``product``,
    ``summary``, ``itinerary``, ``faq``): facts the answer must use, figures it must compute,
    and structural rules; higher levels add criteria, narrow the word range and add updates
    that make listed facts out of date, and distractor notes (see
    :mod:`rlvr.envs.rubricqa.generators`). Or read from a JSONL/YAML dataset of records
    ``{"id", "prompt", "rubric"}`` (optional ``difficulty``, ``family``, ``reference``,
    ``facts``, ``show_requirements``); ``rubric`` is a list of criteria in the format of
    :mod:`rlvr.rewards.rubric`. Every rubric gets the integrity gates
    ``integrity/prose``, ``integrity/no_echo`` and (generated tasks, or records with
    ``facts``) ``integrity/on_topic``, unless it has gates of its own. Gates weigh 0: they
    add nothing to the reward, they zero it when they fail.

    **Observation.** The task: instruction, facts, updates, notes, then the numbered
    requirements (one per criterion, optional ones marked). After a failed attempt with
    attempts left: feedback naming each criterion not met and what was found.

    **Action.** The answer text (JSON tasks: a JSON object, bare or in one fenced block), at
    most 40,000 characters.

    **Reward.** The weighted mean of the per-criterion scores, with the human weights; every
    score is multiplied by the gate factor (0 when the answer is a keyword list, filler, a
    copy of the task or off topic). ``reward_components``: one entry per criterion, named as in
    the rubric (``facts``, ``figure/total cost``, ``length``, ``integrity/prose``...).
    ``success`` (strict completion): every required criterion scores 1. Intermediate
    attempts pay 0; the terminal step pays the last answer's reward. ``info["rubric"]``
    (at reset and at the end) maps each criterion to its weight, category, required, gate
    and judged flags, so trainers can reweight the components (POW3R).

    **Episode end.** Terminated when every required criterion is met or no attempt is left
    (``max_turns``, default 1; 2 gives one revision turn). Replies that cannot be read (not
    text, too long) score as an empty answer and use up an attempt.

    Args:
        difficulty: level or ``(low, high)`` range drawn per episode (default ``(0, 3)``).
        dataset: JSONL or YAML path of rubric tasks; the episodes then come from it.
        max_turns: attempts allowed; failed attempts before the last get feedback.
        families: generated families to draw from (default: all).
        judge: scores ``judge`` criteria (any ``(question, answer, prompt) -> score``
            callable, e.g. :class:`rlvr.rewards.rubric.LLMJudge`); required when a dataset
            holds such criteria. Episodes that use a judge are not deterministic.

    **Version History.**

    * v0: first version.
    """

    task_prefix = "rubricqa"
    max_action_chars = 40_000

    def __init__(
        self,
        *,
        difficulty: DifficultySpec = (0, 3),
        dataset: str | Path | None = None,
        max_turns: int = 1,
        families: Sequence[str] | None = None,
        judge: JudgeFn | None = None,
        render_mode: str | None = None,
    ):
        chosen = tuple(families) if families is not None else tuple(sorted(FAMILIES))
        unknown = [f for f in chosen if f not in FAMILIES]
        if unknown or not chosen:
            raise ValueError(f"families must be a non-empty subset of {sorted(FAMILIES)}")
        if judge is not None and not callable(judge):
            raise ValueError("judge must be a callable (question, answer, prompt) -> score")
        self.max_turns = parse_max_turns(max_turns)
        self.families = chosen
        self.judge = judge
        self._fake = Faker()
        self._reference: str | None = None
        super().__init__(difficulty=difficulty, dataset=dataset, render_mode=render_mode)
        judged = [t.task_id for t in self.tasks if t.data["rubric"].judged]
        if judged and judge is None:
            raise ValueError(f"tasks {judged[:3]} have judge criteria: pass judge=...")

    # ------------------------------------------------------------------ tasks

    def generate_task(self, task_id: str, difficulty: int, rng: random.Random) -> Task:
        self._fake.seed_instance(rng.getrandbits(64))
        family = rng.choice(self.families)
        made = generate(rng, difficulty, self._fake, family)
        rubric = made.rubric.with_guards(topic=[fact.value for fact in made.current])
        prompt = render_generated(made, rubric)
        data = {
            "rubric": rubric,
            "facts": tuple((f.label, f.value) for f in made.current),
            "figures": tuple(
                (c.check.cue, c.check.value)
                for c in rubric.criteria
                if isinstance(c.check, NumericFact)
            ),
            "topic": made.topic,
        }
        return Task(task_id, prompt, None, difficulty, made.family, data)

    def task_from_record(self, record: Mapping[str, Any], line: int) -> Task:
        for key in ("id", "prompt"):
            if not isinstance(record.get(key), str) or not record[key].strip():
                raise ValueError(f"line {line}: field {key!r} must be a non-empty string")
        if "rubric" not in record:
            raise ValueError(f"line {line}: record has no 'rubric'")
        facts = record.get("facts", {})
        if not isinstance(facts, Mapping):
            raise ValueError(f"line {line}: 'facts' must be a mapping of label -> value")
        try:
            topic = [str(value) for value in facts.values()]
            rubric = Rubric.from_dict(record["rubric"]).with_guards(topic=topic)
        except ValueError as error:
            raise ValueError(f"line {line}: {error}") from None
        difficulty = record.get("difficulty", 0)
        if not isinstance(difficulty, int) or isinstance(difficulty, bool) or difficulty < 0:
            raise ValueError(f"line {line}: 'difficulty' must be an int >= 0")
        prompt = render_record(
            record["prompt"], rubric, bool(record.get("show_requirements", True))
        )
        data = {
            "rubric": rubric,
            "facts": tuple((str(k), str(v)) for k, v in facts.items()),
            "figures": (),
            "topic": str(record.get("topic", record["id"])),
            "reference": record.get("reference"),
        }
        family = str(record.get("family", "dataset"))
        return Task(record["id"], prompt, record.get("reference"), difficulty, family, data)

    def load_dataset(self, path: str | Path) -> tuple[Task, ...]:
        """JSONL as the base class reads it; ``.yaml``/``.yml``: a list of the same records."""
        path = Path(path)
        if path.suffix not in (".yaml", ".yml"):
            return super().load_dataset(path)
        if not path.is_file():
            raise ValueError(f"dataset {str(path)!r} is not a file")
        records = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(records, list) or not records:
            raise ValueError(f"{path}: expected a non-empty list of task records")
        tasks = []
        for number, record in enumerate(records, start=1):
            if not isinstance(record, dict):
                raise ValueError(f"{path}: record {number} is not a mapping")
            tasks.append(self.task_from_record(record, number))
        return tuple(tasks)

    # ------------------------------------------------------------------ dialogue

    def system_prompt(self) -> str:
        return SYSTEM_PROMPT

    def begin(self, task: Task) -> str:
        self._reference = None
        return task.prompt

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        observation, info = super().reset(seed=seed, options=options)
        info["rubric"] = rubric_info(self.rubric)
        return observation, info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = super().step(action)
        if terminated:
            info["rubric"] = rubric_info(self.rubric)
        return observation, reward, terminated, truncated, info

    @property
    def rubric(self) -> Rubric:
        """The rubric of the current episode (integrity gates included)."""
        if self.task is None:
            raise RuntimeError("call reset() first")
        rubric: Rubric = self.task.data["rubric"]
        return rubric

    def respond(self, action: str) -> Reply:
        assert self.task is not None
        result = self.rubric.score(action, prompt=self.task.prompt, judge=self.judge)
        return self._judge(result, "")

    def reject(self, reason: str) -> Reply:
        assert self.task is not None
        result = self.rubric.score("", prompt=self.task.prompt, judge=self.judge)
        return self._judge(result, reason + " ")

    def _judge(self, result: RubricScore, preface: str) -> Reply:
        rubric = self.rubric
        left = self.max_turns - self.turn
        feedback = feedback_text(rubric, result)
        if not result.success and left > 0:
            noun = "attempt" if left == 1 else "attempts"
            return Reply(
                observation=f"{preface}{feedback}\nRevise your answer ({left} {noun} left)."
            )
        outcome = Outcome(
            success=result.success,
            reward=result.reward,
            reward_components=dict(result.scores),
            verification=verification_text(rubric, result),
            feedback=feedback,
            reference=self.reference(),
        )
        closing = (
            "All required criteria are met."
            if result.success
            else "Not all required criteria are met."
        )
        observation = f"{preface}{closing} Reward {result.reward:.3f}."
        return Reply(observation, reward=outcome.reward, terminated=True, outcome=outcome)

    # ------------------------------------------------------------------ checks

    def reference(self) -> str | None:
        """A reference answer: the dataset's, or one written to meet the rubric."""
        if self.task is None:
            return None
        if self._reference is None:
            given = self.task.data.get("reference")
            self._reference = given if isinstance(given, str) else self._write()
        return self._reference

    def _write(self) -> str:
        assert self.task is not None
        data = self.task.data
        rubric = self.rubric.with_judge(self.judge) if self.judge is not None else self.rubric
        brief = Brief(data["topic"], data["facts"], data["figures"], rubric, self.task.prompt)
        return write(brief)

    def oracle_action(self) -> str | None:
        return self.reference()

    def cheat_actions(self) -> list[str]:
        probes = super().cheat_actions()
        if self.task is None:
            return probes
        return probes + list(cheat_answers(self.task.prompt, self.reference() or ""))
