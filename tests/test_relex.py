"""RELEX: rank-1 direction, explained variance, linear trend and extrapolation on synthetic
trajectories; the per-step delta recorder; ``rlvr relex`` end to end on the tiny model."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from rlvr.cli import main
from rlvr.training.deltas import DeltaRecorder, DeltaTrajectory, delta_files
from rlvr.training.relex import extrapolate_tensor, fit_linear_trend, rank1_direction

# --- the math on plain tensors -----------------------------------------------------------


def test_rank1_of_an_exact_line():
    # Delta_t = t * [3, 4]: v = [.6, .8], c_t = 5 t, all variance in one direction
    deltas = torch.tensor([[3.0, 4.0], [6.0, 8.0], [9.0, 12.0]])
    rank1 = rank1_direction(deltas)
    assert rank1.direction.tolist() == pytest.approx([0.6, 0.8])
    assert rank1.coefficients.tolist() == pytest.approx([5.0, 10.0, 15.0])
    assert rank1.explained_variance == pytest.approx(1.0)


def test_rank1_sign_is_fixed_by_the_last_snapshot():
    rank1 = rank1_direction(-torch.tensor([[3.0, 4.0], [6.0, 8.0]]))
    assert rank1.direction.tolist() == pytest.approx([-0.6, -0.8])
    assert rank1.coefficients.tolist() == pytest.approx([5.0, 10.0])


def test_rank1_explained_variance_by_hand():
    # rows e1 and 2 e2: G = diag(1, 4), lambda = (4, 1): explained variance 4 / 5
    rank1 = rank1_direction(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    assert rank1.explained_variance == pytest.approx(0.8)
    assert rank1.direction.abs().tolist() == pytest.approx([0.0, 1.0])
    frozen = rank1_direction(torch.zeros(3, 4))
    assert frozen.explained_variance == 0.0 and frozen.direction.abs().sum() == 0


def test_linear_trend_by_hand():
    # c = [1, 3, 2] at t = [0, 1, 2]: slope .5, intercept 1.5, fitted [1.5, 2, 2.5],
    # residual .25 + 1 + .25 = 1.5, total 2: R^2 = .25
    trend = fit_linear_trend([0, 1, 2], torch.tensor([1.0, 3.0, 2.0]))
    assert (trend.slope, trend.intercept, trend.r_squared) == pytest.approx((0.5, 1.5, 0.25))
    assert trend.at(10) == pytest.approx(6.5)
    # window 2 keeps (1, 3), (2, 2): slope -1, intercept 4
    windowed = fit_linear_trend([0, 1, 2], torch.tensor([1.0, 3.0, 2.0]), window=2)
    assert (windowed.slope, windowed.intercept) == pytest.approx((-1.0, 4.0))
    with pytest.raises(ValueError, match="2 distinct steps"):
        fit_linear_trend([3, 3], torch.tensor([1.0, 2.0]))


def noisy_line(steps, shape, slope, noise, seed=0):
    """theta_t = theta_0 + slope * t * v + noise: snapshots (K, *shape), v and theta_0."""
    generator = torch.Generator().manual_seed(seed)
    direction = torch.randn(shape, generator=generator)
    direction /= direction.norm()
    base = torch.randn(shape, generator=generator)
    rows = [
        base + slope * t * direction + noise * torch.randn(shape, generator=generator)
        for t in steps
    ]
    rows[0] = base
    return torch.stack(rows), direction, base


def test_rank1_recovery_with_noise_and_extrapolation():
    steps = list(range(0, 22, 2))  # a snapshot every 2 steps: the time axis is the step
    snapshots, direction, base = noisy_line(steps, (48, 40), slope=0.5, noise=0.005)
    rank1 = rank1_direction(snapshots[1:] - snapshots[0])
    assert abs(float(rank1.direction @ direction.flatten())) > 0.99
    assert rank1.explained_variance > 0.98
    predicted, report = extrapolate_tensor(snapshots, steps, 200, name="w")
    truth = base + 0.5 * 200 * direction  # 10x past the 20 observed steps
    assert report.extrapolated and report.slope == pytest.approx(0.5, rel=0.02)
    assert (predicted - truth).norm() / (truth - base).norm() < 0.02


def test_pure_noise_is_not_extrapolated():
    generator = torch.Generator().manual_seed(1)
    base = torch.randn(30, 30, generator=generator)
    noise = 0.01 * torch.randn(7, 30, 30, generator=generator)  # independent, no common trend
    snapshots = torch.cat([base[None], base + noise])
    predicted, report = extrapolate_tensor(
        snapshots, list(range(8)), 100, min_explained_variance=0.5, name="noise"
    )
    assert report.explained_variance < 0.5 and not report.extrapolated
    assert torch.equal(predicted, snapshots[-1])
    _, default = extrapolate_tensor(snapshots, list(range(8)), 100)
    assert default.extrapolated  # the published method extrapolates every tensor


@pytest.mark.parametrize(
    "steps,target,message",
    [
        ([0, 1], 5, "at least 3 snapshots"),
        ([0, 2, 1], 5, "must increase"),
        ([0, 1, 2], 2, "target step 2 must be after the last observed 2"),
    ],
)
def test_extrapolate_tensor_checks_its_arguments(steps, target, message):
    with pytest.raises(ValueError, match=message):
        extrapolate_tensor(torch.zeros(len(steps), 2), steps, target)


# --- per-step deltas ---------------------------------------------------------------------


def sgd_steps(model, count, seed=0):
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(count):
        loss = model(torch.randn(4, 6, generator=generator)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        yield {name: p.detach().clone() for name, p in model.named_parameters()}


def test_deltas_round_trip_without_accumulating_rounding(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 5)
    recorder = DeltaRecorder(tmp_path, model.named_parameters(), step=10)
    truth = {10: {n: p.detach().clone() for n, p in model.named_parameters()}}
    for step, params in enumerate(sgd_steps(model, 30), start=11):
        recorder.record(model.named_parameters(), step)
        truth[step] = params
    assert [s for s, _ in delta_files(tmp_path)] == list(range(11, 41))
    assert (
        load_file(tmp_path / "deltas" / "step-000011.safetensors")["weight"].dtype == torch.bfloat16
    )
    trajectory = DeltaTrajectory(tmp_path)
    assert trajectory.steps == list(range(10, 41))
    assert trajectory.state_at(10)["bias"].equal(truth[10]["bias"])  # the base is exact
    for step in (11, 25, 40):  # within one bf16 rounding of a single step's delta
        state = trajectory.state_at(step)
        step_size = (truth[step]["weight"] - truth[step - 1]["weight"]).abs().max()
        assert (state["weight"] - truth[step]["weight"]).abs().max() <= step_size / 100
    stacked = trajectory.snapshots("weight")
    assert stacked.shape == (31, 5, 6) and torch.allclose(
        stacked[-1], trajectory.state_at(40)["weight"]
    )
    assert DeltaTrajectory(tmp_path, observe=4).steps == [10, 11, 12, 13]


def test_delta_recorder_checks_and_resumes(tmp_path):
    model = torch.nn.Linear(2, 2)
    recorder = DeltaRecorder(tmp_path, model.named_parameters(), step=0)
    for step in (1, 2, 3):
        recorder.record(model.named_parameters(), step)
    with pytest.raises(ValueError, match="must exceed the last recorded step 3"):
        recorder.record(model.named_parameters(), 3)
    with pytest.raises(ValueError, match="names differ"):
        recorder.record({"other": torch.zeros(2)}, 4)
    with pytest.raises(ValueError, match="bfloat16 or float16"):
        DeltaRecorder(tmp_path / "x", model.named_parameters(), step=0, dtype=torch.float32)
    resumed = DeltaRecorder(tmp_path, model.named_parameters(), step=2)  # crash after step 3
    assert resumed.step == 2 and [s for s, _ in delta_files(tmp_path)] == [1, 2]
    resumed.record(model.named_parameters(), 3)
    (tmp_path / "deltas" / "step-000002.safetensors").unlink()
    with pytest.raises(ValueError, match="not contiguous"):
        DeltaTrajectory(tmp_path)


# --- rlvr relex, end to end on the tiny model ----------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from rlvr.agents.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", hidden_size=32)


def moving_weights(tiny, scale=1e-3):
    """The tiny model's tensors theta_0 and a direction D per tensor: theta_t = theta_0 + t D."""
    base = load_file(tiny / "model.safetensors")
    generator = torch.Generator().manual_seed(0)
    return base, {n: scale * torch.randn(t.shape, generator=generator) for n, t in base.items()}


def write_checkpoint(run, tiny, step, tensors):
    folder = run / "checkpoints" / f"step-{step:06d}" / "model"
    shutil.copytree(tiny, folder)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})


def test_cli_relex_end_to_end(tmp_path, tiny, capsys):
    from transformers import AutoModelForCausalLM

    base, direction = moving_weights(tiny)
    for step in (0, 10, 20, 30, 40):
        write_checkpoint(tmp_path, tiny, step, {n: base[n] + step * direction[n] for n in base})
    write_checkpoint(tmp_path, tiny, 50, {n: base[n] + 50 * direction[n] for n in base})
    args = ["relex", str(tmp_path), "--observe", "4", "--target-step", "200", "--quiet"]
    assert main(args) == 0
    out = tmp_path / "relex" / "step-000200"
    assert (
        f"extrapolated to step 200 (mean explained variance 1.000) -> {out}"
        in capsys.readouterr().out
    )
    model = AutoModelForCausalLM.from_pretrained(out)
    state = model.state_dict()
    for name in base:  # only steps 0-30 were read, and the line goes on to 200
        assert torch.allclose(state[name], base[name] + 200 * direction[name], atol=1e-5), name
    report = json.loads((out / "relex_report.json").read_text())
    assert report["observed_steps"] == [0, 10, 20, 30]
    assert report["summary"]["extrapolated"] == report["summary"]["tensors"] == len(base)
    norm = direction["model.norm.weight"].norm().item()
    entry = next(e for e in report["tensors"] if e["name"] == "model.norm.weight")
    assert entry["slope"] == pytest.approx(norm, rel=1e-4) and entry["r_squared"] == pytest.approx(
        1.0
    )
    assert (out / "tokenizer.json").is_file() and (out / "config.json").is_file()
    assert main([*args, "--out", str(out)]) == 0  # an earlier output is replaced


def test_cli_relex_from_deltas(tmp_path, tiny):
    from transformers import AutoModelForCausalLM

    base, direction = moving_weights(tiny)
    write_checkpoint(tmp_path, tiny, 0, base)
    params = dict(base)
    recorder = DeltaRecorder(tmp_path, params, step=0)
    for step in range(1, 6):
        params = {n: base[n] + step * direction[n] for n in base}
        recorder.record(params, step)
    out = tmp_path / "predicted"
    args = ["relex", str(tmp_path), "--from-deltas", "--observe", "6", "--target-step", "50"]
    assert main([*args, "--out", str(out), "--quiet"]) == 0
    state = AutoModelForCausalLM.from_pretrained(out).state_dict()
    for name in base:  # bf16 deltas: the line is recovered to bf16 precision
        expected = base[name] + 50 * direction[name]
        assert torch.allclose(
            state[name], expected, atol=5e-3 * 50 * direction[name].abs().max()
        ), name


def test_cli_relex_errors_are_one_line(tmp_path, tiny, capsys):
    base, _ = moving_weights(tiny)
    for step in (0, 1):
        write_checkpoint(tmp_path, tiny, step, base)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    cases = [
        (
            ["relex", str(tmp_path / "nowhere"), "--observe", "3", "--target-step", "9"],
            "does not exist",
        ),
        (["relex", str(tmp_path), "--observe", "2", "--target-step", "9"], "at least 3"),
        (["relex", str(tmp_path), "--observe", "5", "--target-step", "9"], "run has 2 checkpoints"),
        (
            ["relex", str(tmp_path), "--observe", "3", "--target-step", "9", "--from-deltas"],
            "no recorded deltas",
        ),
        (["relex", str(tmp_path), "--observe", "x", "--target-step", "9"], "expected an integer"),
    ]
    for args, message in cases:
        assert main(args) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and err.startswith("rlvr: error:"), err
    write_checkpoint(tmp_path, tiny, 2, base)
    busy = [
        "relex",
        str(tmp_path),
        "--observe",
        "3",
        "--target-step",
        "9",
        "--out",
        str(tmp_path / "busy"),
    ]
    assert main(busy) == 2 and "is not empty" in capsys.readouterr().err
    past = ["relex", str(tmp_path), "--observe", "3", "--target-step", "2"]
    assert main(past) == 2 and "must be after the last observed 2" in capsys.readouterr().err
