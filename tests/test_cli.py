"""The rlvr command line: envs, check, eval, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rlvr.cli import main

ROOT = Path(__file__).resolve().parents[1]
CHECK_EXAMPLE = "sort_words:myorg/SortWords-v0 --agent sort_words:SortWordsSolver"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_envs_lists_every_registered_env(capsys):
    code, out, _ = run(capsys, "envs")
    assert code == 0
    assert out.splitlines()[0].startswith("rlvr/Math-v0 ")


def test_eval_prints_a_table_and_writes_json(capsys, tmp_path):
    path = tmp_path / "out" / "eval.json"
    argv = [
        "eval",
        "rlvr/Math-v0",
        "--agent",
        "scripted",
        "--episodes",
        "12",
        "--seed",
        "3",
        "--quiet",
        "--json",
    ]
    code, out, _ = run(capsys, *argv, str(path))
    assert code == 0
    assert "success rate" in out and "per difficulty" in out
    data = json.loads(path.read_text())
    assert data["episodes"] == 12
    assert data["success_rate"] == 1.0 and data["mean_reward"] == 1.0
    assert set(data["per_difficulty"]) <= {"0", "1", "2", "3"}
    assert data["ci_low"] < 1.0 == data["ci_high"]
    assert data["mean_tokens"] is None  # a scripted agent counts no tokens
    assert data["mean_components"] == {"answer": 1.0, "format": 1.0}
    assert "mean format" in out


def test_eval_with_samples_reports_pass_at_k(capsys, tmp_path):
    path = tmp_path / "eval.json"
    argv = "eval rlvr/Math-v0 --agent random --episodes 4 --samples 3 --difficulty 0 --quiet"
    code, out, _ = run(capsys, *argv.split(), "--json", str(path))
    assert code == 0 and "pass@k" in out
    data = json.loads(path.read_text())
    assert data["episodes"] == 12 and set(data["pass_at_k"]) == {"1", "2", "3"}
    assert set(data["per_difficulty"]) == {"0"}
    # the random agent's replies: each component is an average of 0/1 verdicts, one per episode
    components = data["mean_components"]
    assert set(components) == {"answer", "format"}
    assert all(12 * value == round(12 * value) for value in components.values())


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["eval", "rlvr/Nope-v0"], "unknown env id"),
        (["eval", "rlvr/Math-v0", "--episodes", "-3"], "must be >= 1"),
        (["eval", "rlvr/Math-v0", "--episodes", "many"], "expected an integer"),
        (["eval", "rlvr/Math-v0", "--temperature", "-1"], "finite number >= 0"),
        (["eval", "rlvr/Math-v0", "--temperature", "nan"], "finite number >= 0"),
        (["eval", "rlvr/Math-v0", "--max-new-tokens", "0"], "must be >= 1"),
        (["eval", "rlvr/Math-v0", "--agent", "nonsense"], "agent"),
        (["eval", "rlvr/Math-v0", "--env-arg", "max_turns=0"], "max_turns"),
        (["eval", "rlvr/Math-v0", "--env-arg", "oops"], "KEY=VALUE"),
        (["eval", "rlvr/Math-v0", "--dataset", "/nonexistent.jsonl"], "not a file"),
        (["frobnicate"], "invalid choice"),
        (
            [
                "eval",
                "rlvr/Math-v0",
                "--agent",
                "http://127.0.0.1:9/v1",
                "--episodes",
                "1",
                "--quiet",
            ],
            "9",
        ),
        (["eval", "rlvr/Math-v0", "--agent", "hf:/nonexistent/model"], "nonexistent"),
        (["eval", "rlvr/Math-v0", "--json", "/proc/nope/out.json"], "--json"),
        ([], "required"),
    ],
)
def test_bad_arguments_give_one_line_and_status_2(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlvr: error:") and needle in lines[0]
    assert "Traceback" not in err + out


def test_check_passes_on_math(capsys):
    code, out, _ = run(capsys, "check", "rlvr/Math-v0", "--episodes", "2")
    assert code == 0 and "all 5 checks passed" in out


def test_console_script_checks_an_external_domain_from_its_folder():
    """As the guide says: cd into the folder, then `rlvr check module:ID` (no PYTHONPATH)."""
    script = Path(sys.executable).with_name("rlvr")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "rlvr"]
    result = subprocess.run(
        [*command, "check", *CHECK_EXAMPLE.split()],
        capture_output=True,
        text=True,
        cwd=ROOT / "docs" / "examples" / "sort_words",
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "all 5 checks passed" in result.stdout


@pytest.mark.usefixtures("tiny_cache")
def test_eval_passes_sampling_settings_to_a_model_agent(capsys, tmp_path):
    argv = "eval rlvr/Math-v0 --agent tiny --episodes 4 --samples 2 --difficulty 0 --quiet"

    def replies(options: str) -> list[tuple[int, int]]:
        path = tmp_path / "eval.json"
        code, _, _ = run(capsys, *argv.split(), *options.split(), "--json", str(path), "--records")
        assert code == 0
        data = json.loads(path.read_text())
        assert 0 < data["mean_tokens"] <= 5  # the reply budget holds
        chars = {(r["task_index"], r["sample"]): r["reply_chars"] for r in data["records"]}
        return [(chars[task, 0], chars[task, 1]) for task in range(4)]

    # greedy: both samples of a task are the same reply; sampled: some differ
    assert all(a == b for a, b in replies("--temperature 0 --max-new-tokens 5"))
    assert any(a != b for a, b in replies("--temperature 1.5 --max-new-tokens 5 --sample-seed 1"))
