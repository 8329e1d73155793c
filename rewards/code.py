"""Code verification: take the program out of a reply, run it against hidden tests, judge.

:func:`extract_program` returns the last fenced python block of a reply (the whole reply if
it has none). :func:`check_program` runs it in the sandbox (:mod:`rlvr.rewards.sandbox`) and
returns a :class:`CodeVerdict`: one reward component per test, the reward in the chosen mode
(``binary``: 1 only when every test passes; ``fraction``: the share of tests passed) and
deterministic feedback text (no times or memory figures, object addresses masked), so that
replaying an episode gives the same observations.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rlvr.rewards.sandbox import Limits, RunResult, TestResult, TestSuite, run_tests

RewardMode = Literal["binary", "fraction"]
REWARD_MODES: tuple[str, ...] = ("binary", "fraction")

_FENCE = re.compile(r"```[ \t]*(?:(python3?|py)|([^\s`]*))[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")
MAX_FAILURES_SHOWN = 3
"""Failing tests detailed in the feedback."""
EXCERPT_CHARS = 1500
"""Characters of stdout/stderr quoted in the feedback."""


def extract_program(reply: str) -> str:
    """The last fenced ``python`` (or ``py``, or untagged) block; the whole reply if none."""
    blocks = [m.group(3) for m in _FENCE.finditer(reply) if m.group(1) or not m.group(2)]
    return blocks[-1] if blocks else reply


def test_names(suite: TestSuite) -> list[str]:
    """The test names the judge will report, computed on the host (for unrun submissions)."""
    if suite.check is None:
        return [f"test_{i + 1}" for i in range(len(suite.cases))]
    for node in ast.parse(suite.check).body:
        if isinstance(node, ast.FunctionDef) and node.name == "check" and node.args.args:
            param = node.args.args[0].arg
            used = [
                s
                for s in node.body
                if any(isinstance(n, ast.Name) and n.id == param for n in ast.walk(s))
            ]
            return [f"test_{i + 1}" for i in range(len(used))]
    raise ValueError("the test source defines no check(candidate) function")


def _defined_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            names.update(n.id for n in ast.walk(node) if isinstance(n, ast.Name))
    return names


def humaneval_suite(prompt: str, test: str, entry_point: str) -> TestSuite:
    """The suite of a HumanEval-schema record.

    The judge runs the prompt (trusted dataset text) before the tests only when the tests
    use something it defines besides the entry point (``poly``, ``encode_cyclic``...), which
    saves compiling it for most problems.
    """
    used = {n.id for n in ast.walk(ast.parse(test)) if isinstance(n, ast.Name)}
    helpers = _defined_names(ast.parse(prompt)) - {entry_point}
    return TestSuite(entry_point, check=test, setup=prompt if used & helpers else "")


@dataclass(frozen=True)
class CodeVerdict:
    """The judged result of one submission."""

    program: str
    run: RunResult | None
    """The sandbox run (``None`` when the submission was not run at all)."""
    components: dict[str, float]
    """One entry per test: 1.0 passed, 0.0 otherwise."""
    reward: float
    success: bool
    """Every test passed."""
    summary: str
    """One line: what was run and what was found."""
    feedback: str
    """The rich, deterministic feedback: failing tests with input/expected/actual, traces."""
    hint: str
    """The same without what would reveal the hidden tests' answers (expected values, test
    source): what a policy may see between attempts without learning to look answers up."""


def mask(text: str) -> str:
    """Hide object addresses, the one run-dependent thing programs commonly print."""
    return _ADDRESS.sub("0x…", text)


def _excerpt(label: str, text: str) -> str:
    if not text.strip():
        return ""
    cut = text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "\n[... cut]"
    return f"\n{label}:\n{mask(cut).rstrip()}"


def describe_test(test: TestResult, *, reveal: bool = True) -> str:
    """A few lines on one test: what ran, what came back, the trace and, with ``reveal``,
    the test's source and the expected value."""
    lines = [f"{test.name}: {test.status}"]
    if test.source and reveal:
        lines.append(f"  test: {test.source}")
    if test.call:
        lines.append(f"  call: {mask(test.call)}")
    if test.expected and reveal:
        lines.append(f"  expected: {mask(test.expected)}")
    if test.actual:
        lines.append(f"  got: {mask(test.actual)}")
    if test.message and (reveal or test.status == "error"):
        lines.append("  " + mask(test.message).replace("\n", "\n  "))
    return "\n".join(lines)


def _feedback(run: RunResult, *, reveal: bool = True) -> str:
    if run.status == "load_error":
        head = (
            "Your program does not parse:"
            if run.load_error_kind == "syntax"
            else "Your program failed before any test ran:"
        )
        body = f"{head}\n{mask(run.load_error)}"
    else:
        failing = [t for t in run.tests if t.status != "passed"]
        body = f"Passed {run.n_passed} of {len(run.tests)} tests."
        if run.status in ("timeout", "output_limit"):
            body += " The run was stopped: " + (
                "time limit reached." if run.status == "timeout" else "too much output."
            )
        body += "".join(
            "\n" + describe_test(t, reveal=reveal) for t in failing[:MAX_FAILURES_SHOWN]
        )
        if len(failing) > MAX_FAILURES_SHOWN:
            body += f"\n(and {len(failing) - MAX_FAILURES_SHOWN} more failing tests)"
    return body + _excerpt("stdout", run.stdout) + _excerpt("stderr", run.stderr)


def judge_run(program: str, run: RunResult, mode: RewardMode = "binary") -> CodeVerdict:
    """Score a finished run."""
    components = {t.name: float(t.status == "passed") for t in run.tests}
    fraction = run.n_passed / len(run.tests) if run.tests else 0.0
    reward = float(run.passed) if mode == "binary" else fraction
    summary = f"{run.status}: {run.n_passed}/{len(run.tests)} tests passed"
    if run.status == "load_error":
        summary += f" (program did not load: {run.load_error_kind})"
    return CodeVerdict(
        program,
        run,
        components,
        reward,
        run.passed,
        summary,
        _feedback(run),
        _feedback(run, reveal=False),
    )


def unrun_verdict(program: str, names: Sequence[str], reason: str) -> CodeVerdict:
    """The verdict on a submission that was not run (unreadable reply): every test at 0."""
    components = {name: 0.0 for name in names}
    summary = f"not run: {reason}"
    return CodeVerdict(program, None, components, 0.0, False, summary, reason, reason)


def check_program(
    program: str, suite: TestSuite, limits: Limits | None = None, mode: RewardMode = "binary"
) -> CodeVerdict:
    """Run ``program`` against ``suite`` in the sandbox and judge it.

    Raises :class:`~rlvr.rewards.sandbox.SandboxError` when the sandbox itself fails (the
    submission could not be scored); a bad program never raises.
    """
    if mode not in REWARD_MODES:
        raise ValueError(f"reward mode must be one of {REWARD_MODES}, got {mode!r}")
    return judge_run(program, run_tests(program, suite, limits), mode)


def check_reply(
    reply: str, suite: TestSuite, limits: Limits | None = None, mode: RewardMode = "binary"
) -> CodeVerdict:
    """:func:`check_program` on the program of a whole reply."""
    return check_program(extract_program(reply), suite, limits, mode)


__all__ = [
    "REWARD_MODES",
    "CodeVerdict",
    "RewardMode",
    "check_program",
    "check_reply",
    "describe_test",
    "extract_program",
    "humaneval_suite",
    "judge_run",
    "mask",
    "test_names",
    "unrun_verdict",
]
