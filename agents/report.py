"""Render an :class:`~rlvr.agents.evaluation.EvalReport` as terminal tables (rich)."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table

from rlvr.agents.evaluation import EvalReport


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def render_report(report: EvalReport) -> Group:
    """A summary table, plus pass@k and per-difficulty tables where they say something."""
    summary = Table(title=f"{report.env_id} · agent {report.agent}", show_header=False)
    summary.add_column("metric", style="bold")
    summary.add_column("value", justify="right")
    rows = [
        ("episodes", f"{report.episodes} ({report.tasks} tasks x {report.samples} samples)"),
        ("success rate", f"{_pct(report.success_rate)}"),
        ("95% interval", f"{_pct(report.ci_low)} - {_pct(report.ci_high)}"),
        ("mean reward", f"{report.mean_reward:.3f}"),
        ("mean turns", f"{report.mean_turns:.2f}"),
        ("truncated", _pct(report.truncated_rate)),
        ("mean tokens", "n/a" if report.mean_tokens is None else f"{report.mean_tokens:.1f}"),
        ("mean reply chars", f"{report.mean_reply_chars:.1f}"),
        *((f"mean {key}", f"{value:.3f}") for key, value in report.mean_components.items()),
    ]
    for name, value in rows:
        summary.add_row(name, value)
    parts: list[Table] = [summary]
    if report.samples > 1:
        passes = Table(title="pass@k and pass^k")
        for column in ("k", "pass@k", "pass^k"):
            passes.add_column(column, justify="right")
        for k, value in report.pass_at_k.items():
            passes.add_row(str(k), _pct(value), _pct(report.pass_hat_k[k]))
        parts.append(passes)
    levels = Table(title="per difficulty")
    for column in ("difficulty", "episodes", "success", "95% interval", "reward", "turns"):
        levels.add_column(column, justify="right")
    for level, stats in report.per_difficulty.items():
        levels.add_row(
            str(level),
            str(stats.episodes),
            _pct(stats.success_rate),
            f"{_pct(stats.ci_low)} - {_pct(stats.ci_high)}",
            f"{stats.mean_reward:.3f}",
            f"{stats.mean_turns:.2f}",
        )
    parts.append(levels)
    return Group(*parts)
