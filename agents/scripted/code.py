"""Scripted agents for ``rlvr/Code-v0``.

:class:`CodeSolver` reads the generated task statement (the first user message), recognises
the task by its sentence, takes the function name and the constants from the text and writes
its own solution. It never sees the generator or the hidden tests; after failing feedback it
submits the same program again. Statements it does not recognise get :data:`GIVE_UP`.

:class:`ReferenceAgent` checks datasets: built with a HumanEval-schema dataset (a JSONL path
or ``"humaneval"``), it finds the task whose prompt the statement quotes and submits that
task's canonical solution. Every canonical solution should pass; one that does not is a bad
record (or a sandbox bug).
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Sequence
from pathlib import Path

from rlvr.agents.base import Agent
from rlvr.envs.types import Message

GIVE_UP = "I cannot solve this task."
"""The reply to a statement the solver does not recognise."""

_SIGNATURE = re.compile(r"Write a Python function `(\w+)\(([\w, ]*)\)`")

_BODIES: tuple[tuple[str, str], ...] = (
    (r"Return the sum of the integers in `(\w+)`", "return sum({0})"),
    (r"Return `(\w+)` reversed", "return {0}[::-1]"),
    (
        r"Return how many vowels .*? `(\w+)` contains",
        "return len([c for c in {0} if c.lower() in 'aeiou'])",
    ),
    (r"Return the largest value in the non-empty list `(\w+)`", "return max({0})"),
    (
        r"Return the sum of the numbers in `(\w+)` that are divisible by (\d+)",
        "return sum(v for v in {0} if v % {1} == 0)",
    ),
    (
        r"Return the list `(\w+)` rotated left by `(\w+)` positions",
        "if not {0}:\n        return []\n    s = {1} % len({0})\n    return {0}[s:] + {0}[:s]",
    ),
    (
        r"Shift every lowercase letter of `(\w+)` forward by (\d+) places",
        "import string\n    a = string.ascii_lowercase\n"
        "    return {0}.translate(str.maketrans(a, a[{1}:] + a[:{1}]))",
    ),
    (
        r"Return the elements of `(\w+)` without duplicates",
        "out = []\n    for v in {0}:\n        if v not in out:\n            out.append(v)\n"
        "    return out",
    ),
    (
        r"Run-length encode `(\w+)`",
        "import itertools\n    return ''.join(k + str(len(list(g))) "
        "for k, g in itertools.groupby({0}))",
    ),
    (
        r"Repeatedly replace the non-negative integer `(\w+)` by the sum of its decimal digits",
        "return 0 if {0} == 0 else 1 + ({0} - 1) % 9",
    ),
    (
        r"Return the `(\w+)`-th Fibonacci number modulo (\d+)",
        "x, y = 0, 1\n    for _ in range({0}):\n        x, y = y, (x + y) % {1}\n    return x",
    ),
    (
        r"Flatten the arbitrarily nested list `(\w+)`",
        "out, stack = [], [iter({0})]\n    while stack:\n        for v in stack[-1]:\n"
        "            if isinstance(v, list):\n                stack.append(iter(v))\n"
        "                break\n            out.append(v)\n        else:\n            stack.pop()\n"
        "    return out",
    ),
    (
        r"Return the non-negative integer `(\w+)` written in base (\d+)",
        "chars = '0123456789abcdefghijklmnopqrstuvwxyz'\n    n, s = {0}, ''\n    while True:\n"
        "        n, r = divmod(n, {1})\n        s = chars[r] + s\n        if n == 0:\n"
        "            return s",
    ),
    (
        r"Return the greatest common divisor of the positive integers in the non-empty "
        r"list `(\w+)`",
        "import math\n    import functools\n    return functools.reduce(math.gcd, {0})",
    ),
    (
        r"Return True if every bracket in `(\w+)`",
        "closer = dict(zip(')]}}', '([{{'))\n    stack = []\n    for c in {0}:\n"
        "        if c in '([{{':\n            stack.append(c)\n"
        "        elif c in closer and (not stack or stack.pop() != closer[c]):\n"
        "            return False\n    return stack == []",
    ),
    (
        r"Merge the overlapping closed intervals .*? in `(\w+)`",
        "merged = []\n    for a, b in sorted(map(tuple, {0})):\n"
        "        if merged and a <= merged[-1][1]:\n"
        "            merged[-1][1] = max(merged[-1][1], b)\n        else:\n"
        "            merged.append([a, b])\n    return merged",
    ),
    (
        r"Return the (\d+) most frequent words of `(\w+)`",
        "import collections\n    c = collections.Counter({1}.lower().split())\n"
        "    return sorted(c, key=lambda w: (-c[w], w))[:{0}]",
    ),
    (
        r"Evaluate the reverse Polish notation expression `(\w+)`",
        "import operator\n    ops = {{'+': operator.add, '-': operator.sub, '*': operator.mul}}\n"
        "    st = []\n    for t in {0}:\n        if t in ops:\n            b = st.pop()\n"
        "            st.append(ops[t](st.pop(), b))\n        else:\n            st.append(int(t))\n"
        "    return st[-1]",
    ),
)


def first_user_message(dialogue: Sequence[Message]) -> str:
    """The task statement: the first message of the env."""
    return next((m.content for m in dialogue if m.role == "user"), "")


def solve_statement(statement: str) -> str | None:
    """A program for a generated task statement, or ``None`` if it is not recognised."""
    signature = _SIGNATURE.search(statement)
    if signature is None:
        return None
    name, params = signature.groups()
    text = " ".join(statement.split())
    for pattern, body in _BODIES:
        match = re.search(pattern, text)
        if match:
            code = body.format(*match.groups())
            return f"def {name}({params}):\n    {code}\n"
    return None


class CodeSolver(Agent):
    """Solves the generated ``rlvr/Code-v0`` tasks from their statement alone."""

    name = "code-solver"

    def act(self, dialogue: Sequence[Message]) -> str:
        program = solve_statement(first_user_message(dialogue)[:20_000])
        return GIVE_UP if program is None else f"```python\n{program}```"


class ReferenceAgent(Agent):
    """Submits the canonical solution of the dataset task that the statement quotes."""

    name = "reference"

    def __init__(self, dataset: str | Path = "humaneval") -> None:
        super().__init__()
        self.solutions = _load_solutions(dataset)

    def act(self, dialogue: Sequence[Message]) -> str:
        statement = first_user_message(dialogue)
        for prompt, solution in self.solutions:
            if prompt.strip() and prompt.rstrip() in statement:
                return f"```python\n{prompt}{solution}\n```"
        return GIVE_UP


def _load_solutions(dataset: str | Path) -> list[tuple[str, str]]:
    """``(prompt, canonical_solution)`` pairs, longest prompt first (most specific match)."""
    if str(dataset) == "humaneval":
        from rlvr.envs.code.env import humaneval_path

        with gzip.open(humaneval_path(), "rt", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    else:
        lines = Path(dataset).read_text(encoding="utf-8").splitlines()
    pairs = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            record = json.loads(line)
            if not isinstance(record, dict) or "prompt" not in record:
                raise ValueError(f"{dataset}:{number}: not a HumanEval-schema record")
            pairs.append((str(record["prompt"]), str(record.get("canonical_solution", ""))))
    return sorted(pairs, key=lambda pair: -len(pair[0]))
