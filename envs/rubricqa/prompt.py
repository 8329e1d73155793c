"""How a RubricQA task reads: the observation text, the reference brief and the feedback."""

from __future__ import annotations

from collections.abc import Sequence

from rlvr.envs.rubricqa.families import Fact
from rlvr.envs.rubricqa.generators import RubricTask
from rlvr.rewards.rubric import Criterion, Rubric, RubricScore

UPDATES_HEADER = (
    "Updates (each replaces the value listed above for the same label; "
    "a later update replaces an earlier one):"
)
NOTES_HEADER = "Other notes (about something else; do not use them):"
OPTIONAL_MARK = " (preferred, not required)"


def fact_lines(facts: Sequence[Fact]) -> list[str]:
    return [f"- {fact.label}: {fact.value}" for fact in facts]


def requirement_lines(rubric: Rubric) -> list[str]:
    """``1. <instruction>`` per criterion, optional ones marked."""
    return [
        f"{index}. {requirement_text(criterion)}"
        for index, criterion in enumerate(rubric.criteria, start=1)
    ]


def requirement_text(criterion: Criterion) -> str:
    return criterion.description + ("" if criterion.required else OPTIONAL_MARK)


def render_generated(task: RubricTask, rubric: Rubric) -> str:
    """The first observation of a generated task."""
    parts = [task.instruction, "", "Facts:", *fact_lines(task.facts)]
    if task.updates:
        parts += ["", UPDATES_HEADER, *fact_lines(task.updates)]
    if task.notes:
        parts += ["", NOTES_HEADER, *fact_lines(task.notes)]
    parts += ["", "Requirements:", *requirement_lines(rubric)]
    return "\n".join(parts)


def render_record(prompt: str, rubric: Rubric, show_requirements: bool) -> str:
    """The first observation of a dataset task: its prompt, then (by default) the rubric."""
    if not show_requirements:
        return prompt
    return "\n".join([prompt.rstrip(), "", "Requirements:", *requirement_lines(rubric)])


def feedback_text(rubric: Rubric, result: RubricScore) -> str:
    """Name every criterion that fell short, with what its checker found."""
    if not result.failed:
        return f"Every criterion is met (reward {result.reward:.3f})."
    lines = [f"Reward {result.reward:.3f}. Criteria not met:"]
    for name in result.failed:
        criterion = rubric[name]
        tag = "required" if criterion.required else "optional"
        lines.append(
            f"- {name} ({tag}, score {result.scores[name]:.2f}): {criterion.description} "
            f"Found: {result.details.get(name, '')}."
        )
    if result.gate < 1.0:
        lines.append("An integrity check failed, so every other criterion scored 0.")
    return "\n".join(lines)


def verification_text(rubric: Rubric, result: RubricScore) -> str:
    """One line per criterion: weight, category, flags, score and detail."""
    lines = []
    for criterion in rubric.criteria:
        flags = "required" if criterion.required else "optional"
        flags += ", gate" if criterion.gate else ""
        lines.append(
            f"{criterion.name} [{criterion.category}, w={criterion.weight:g}, {flags}]: "
            f"{result.scores[criterion.name]:.2f} ({result.details.get(criterion.name, '')})"
        )
    return "\n".join(lines)
