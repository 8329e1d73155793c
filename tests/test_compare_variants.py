"""benchmarks/compare_variants.py: held-out figures read from ``eval.json`` and tabulated."""

from __future__ import annotations

import math

from compare_variants import held_out, summarize

EVALUATION = {
    "before": {
        "success_rate": 0.25,
        "per_env": {
            "a": {"mean_reward": 0.2, "components": {"rubric": 0.5}},
            "b": {"mean_reward": 0.4, "components": {}},
        },
    },
    "after": {"success_rate": 0.5, "per_env": {"a": {"mean_reward": 0.6}}},
}


def test_held_out_averages_the_envs_that_report_the_figure() -> None:
    assert math.isclose(held_out(EVALUATION, "before", "mean_reward"), 0.3)
    assert held_out(EVALUATION, "before", "components/rubric") == 0.5
    assert held_out(EVALUATION, "after", "mean_reward") == 0.6
    assert math.isnan(held_out(EVALUATION, "after", "components/rubric"))


def test_summary_reports_held_out_figures_per_variant() -> None:
    runs = [
        {
            "before": 0.1,
            "after": after,
            "wall_seconds": 10.0,
            "held_out": {"mean_reward": {"before": 0.2, "after": reward}},
            "curves": {"success": [0.0, 1.0]},
        }
        for after, reward in ((0.3, 0.4), (0.5, 0.8))
    ]
    table = summarize({"x": runs}, ["success"], 2, ["mean_reward"])
    header, _, row = table.splitlines()[:3]
    assert "held-out mean_reward before | held-out mean_reward after" in header
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells == ["x", "0.100 ± 0.000", "0.400 ± 0.141", "0.200 ± 0.000", "0.600 ± 0.283",
                     "0.500 ± 0.000", "10"]  # fmt: skip
