"""RELEX: rank-1 extrapolation of an RLVR weight trajectory (arXiv 2605.21468).

Read from the public code (weizhepei/RELEX, ``scripts/svd_extrapolation.py`` and
``scripts/precompute_deltas.py``), per parameter tensor, 1-D tensors included:

1. Observe snapshots ``theta_0, theta_1 .. theta_T`` and stack the deltas
   ``Delta_tau = theta_tau - theta_0`` as rows of ``M`` ``(T, d)`` (float32).
2. Eigendecompose the Gram matrix ``G = M M^T`` ``(T, T)`` (cheap: ``T << d``): top eigenpair
   ``(lambda_1, u_1)``, ``sigma_1 = sqrt(lambda_1)``, unit direction ``v = M^T u_1 / sigma_1``,
   explained variance ``lambda_1 / sum(lambda)``.
3. Coefficients ``c_tau = Delta_tau . v = sigma_1 u_1[tau]``; least-squares line
   ``c ~ a t + b`` (optionally over the last ``window`` points only).
4. ``theta_S = theta_0 + (a S + b) v``.

What this module does differently, and why:

* The time axis is the optimizer step read from the checkpoint folder names, not the
  checkpoint index. With one snapshot per step the two agree; with a checkpoint every ``k``
  steps this does what the public code's ``--target_step_scaling_factor`` does by hand.
* ``theta_0`` is the first observed snapshot (ideally the initial model, ``step-000000``), so
  ``--observe K`` gives ``T = K - 1`` deltas; the paper's ``T_cut = 75`` is ``--observe 76``.
* A tensor whose explained variance is below ``min_explained_variance`` keeps its last
  observed value. The public code extrapolates every tensor: that is the default ``0.0``.
* The extrapolated tensors keep the dtype of the checkpoint they replace (the public code
  saves bfloat16). The sign of ``v`` is fixed so the last coefficient is ``>= 0``.

Checkpoint layout read: ``RUN_DIR/checkpoints/step-000010/model/`` is a ``save_pretrained``
directory (``config.json``, ``*.safetensors``, tokenizer files); or, with ``from_deltas``,
the per-step deltas of :mod:`rlvr.training.deltas`. Output: ``OUT/model.safetensors`` plus
every other file of the template checkpoint (config, tokenizer), and ``OUT/relex_report.json``.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import statistics
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from rlvr.training.deltas import DeltaTrajectory

CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_NAME = re.compile(r"step-(\d+)")
REPORT_NAME = "relex_report.json"
WEIGHTS_NAME = "model.safetensors"
_SKIPPED_FILES = re.compile(r".*\.(safetensors|bin)|.*\.index\.json|" + re.escape(REPORT_NAME))


@dataclass(frozen=True)
class Rank1:
    """The rank-1 summary of a delta trajectory."""

    direction: Tensor
    """``v`` ``(d,)``: unit norm, or all zeros when nothing moved."""
    coefficients: Tensor
    """``c_tau = Delta_tau . v`` ``(T,)``."""
    explained_variance: float
    """``lambda_1 / sum(lambda)`` in [0, 1]; 0 when nothing moved."""


@dataclass(frozen=True)
class LinearTrend:
    """Least-squares line ``c ~ slope * step + intercept``."""

    slope: float
    intercept: float
    r_squared: float
    """Coefficient of determination of the fit (1 when the points are constant)."""

    def at(self, step: float) -> float:
        return self.slope * step + self.intercept


@dataclass(frozen=True)
class TensorExtrapolation:
    """What RELEX did with one tensor (one entry of ``relex_report.json``)."""

    name: str
    shape: tuple[int, ...]
    explained_variance: float
    slope: float
    """Coefficient change per optimizer step, along the (sign-fixed) direction."""
    intercept: float
    r_squared: float
    extrapolated: bool
    """False: the explained variance was below the threshold; the last value was kept."""


def rank1_direction(deltas: Tensor) -> Rank1:
    """Top right singular vector of the stacked deltas, via the Gram matrix (RELEX step 2).

    Shapes: ``deltas`` ``(T, *shape)`` -> direction ``(prod(shape),)``, coefficients ``(T,)``.
    """
    matrix = deltas.reshape(deltas.shape[0], -1).float()  # (T, d)
    gram = (matrix @ matrix.T).double()  # (T, T)
    eigenvalues, eigenvectors = torch.linalg.eigh(gram)  # ascending
    eigenvalues = eigenvalues.clamp(min=0.0)
    total, top = float(eigenvalues.sum()), float(eigenvalues[-1])
    if top <= 0.0:
        return Rank1(torch.zeros(matrix.shape[1]), torch.zeros(matrix.shape[0]), 0.0)
    sigma = top**0.5
    u = eigenvectors[:, -1]  # (T,)
    if u[-1] < 0:  # fix the sign: the last snapshot lies on the positive side
        u = -u
    direction = (u.float() @ matrix) / sigma  # (d,)
    return Rank1(direction, (sigma * u).float(), top / total)


def fit_linear_trend(
    steps: Sequence[float], values: Tensor, window: int | None = None
) -> LinearTrend:
    """Least-squares ``values ~ slope * steps + intercept`` (RELEX step 3), over the last
    ``window`` points when given. Shapes: ``steps`` (T,), ``values`` (T,)."""
    if len(steps) != values.shape[0]:
        raise ValueError(f"{len(steps)} steps but {values.shape[0]} values")
    if window is not None and window < 2:
        raise ValueError(f"window must be >= 2, got {window}")
    t = torch.tensor(list(steps), dtype=torch.float64)[-(window or len(steps)) :]
    y = values.double()[-(window or len(steps)) :]
    if len(t) < 2 or float(t.max() - t.min()) == 0.0:
        raise ValueError("a linear fit needs at least 2 distinct steps")
    t_centred, y_centred = t - t.mean(), y - y.mean()
    slope = float((t_centred * y_centred).sum() / (t_centred**2).sum())
    intercept = float(y.mean()) - slope * float(t.mean())
    residual = float(((y - (slope * t + intercept)) ** 2).sum())
    spread = float((y_centred**2).sum())
    r_squared = 1.0 - residual / spread if spread > 0 else 1.0
    return LinearTrend(slope, intercept, r_squared)


def _check_steps(steps: Sequence[int], target_step: int, count: int) -> None:
    if len(steps) != count:
        raise ValueError(f"{count} snapshots but {len(steps)} steps")
    if count < 3:
        raise ValueError(f"RELEX needs at least 3 snapshots (a base and 2 deltas), got {count}")
    if any(b <= a for a, b in itertools.pairwise(steps)):
        raise ValueError(f"snapshot steps must increase, got {list(steps)}")
    if target_step <= steps[-1]:
        raise ValueError(f"target step {target_step} must be after the last observed {steps[-1]}")


def extrapolate_tensor(
    snapshots: Tensor,
    steps: Sequence[int],
    target_step: int,
    *,
    min_explained_variance: float = 0.0,
    window: int | None = None,
    name: str = "",
) -> tuple[Tensor, TensorExtrapolation]:
    """RELEX for one tensor: ``snapshots`` ``(K, *shape)`` at ``steps`` (the first is
    ``theta_0``) -> the predicted tensor at ``target_step`` ``(*shape)`` float32, and a report.

    Below ``min_explained_variance`` the tensor keeps its last observed value.
    """
    _check_steps(steps, target_step, snapshots.shape[0])
    if not 0.0 <= min_explained_variance <= 1.0:
        raise ValueError(f"min_explained_variance must be in [0, 1], got {min_explained_variance}")
    base = snapshots[0].float()
    rank1 = rank1_direction(snapshots[1:].float() - base)
    trend = fit_linear_trend(steps[1:], rank1.coefficients, window)
    extrapolated = rank1.explained_variance >= min_explained_variance
    if extrapolated:
        predicted = base + trend.at(target_step) * rank1.direction.view_as(base)
    else:
        predicted = snapshots[-1].float()
    report = TensorExtrapolation(
        name=name,
        shape=tuple(base.shape),
        explained_variance=rank1.explained_variance,
        slope=trend.slope,
        intercept=trend.intercept,
        r_squared=trend.r_squared,
        extrapolated=extrapolated,
    )
    return predicted, report


class Trajectory(Protocol):
    """Snapshots of every tensor of a model at increasing optimizer steps."""

    steps: list[int]

    def names(self) -> list[str]: ...

    def snapshots(self, name: str) -> Tensor: ...


def find_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``(step, model_dir)`` of every ``RUN_DIR/checkpoints/step-N/model/`` with a
    ``config.json``, by step (partly written folders with other names are ignored)."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = []
    for folder in root.iterdir():
        match = CHECKPOINT_NAME.fullmatch(folder.name)
        if match and (folder / "model" / "config.json").is_file():
            found.append((int(match.group(1)), folder / "model"))
    return sorted(found)


@contextmanager
def _open_weights(model_dirs: Sequence[Path]) -> Iterator[list[dict[str, Any]]]:
    """For each model directory, ``{tensor name: open safetensors handle}``."""
    with ExitStack() as stack:
        tables = []
        for folder in model_dirs:
            files = sorted(folder.glob("*.safetensors"))
            if not files:
                raise ValueError(f"{folder} has no .safetensors weights")
            table = {}
            for file in files:
                handle = stack.enter_context(safe_open(file, "pt"))
                table.update(dict.fromkeys(handle.keys(), handle))
            tables.append(table)
        yield tables


class CheckpointTrajectory:
    """A trajectory read tensor by tensor from ``save_pretrained`` checkpoints."""

    def __init__(self, steps: list[int], tables: list[dict[str, Any]]):
        self.steps, self._tables = steps, tables
        for step, table in zip(steps, tables, strict=True):
            if table.keys() != tables[0].keys():
                raise ValueError(f"checkpoint step {step} holds other tensors than step {steps[0]}")

    def names(self) -> list[str]:
        return list(self._tables[0])

    def snapshots(self, name: str) -> Tensor:
        return torch.stack([table[name].get_tensor(name).float() for table in self._tables])


def _template(checkpoints: list[tuple[int, Path]], step: int) -> Path:
    """The checkpoint whose config and tokenizer the output copies: the last at or before
    ``step``, else the first."""
    if not checkpoints:
        raise ValueError(
            f"no checkpoint under {CHECKPOINTS_DIR}/ to copy config and tokenizer from"
        )
    earlier = [path for s, path in checkpoints if s <= step]
    return earlier[-1] if earlier else checkpoints[0][1]


def _check_out(out: Path) -> None:
    """``out`` may be absent, an empty directory or an earlier RELEX output (replaced)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file")
    if out.is_dir() and any(out.iterdir()) and not (out / REPORT_NAME).is_file():
        raise ValueError(f"--out {out} exists and is not empty; choose a new directory")


def _write_output(
    out: Path, tensors: dict[str, Tensor], template: Path, report: dict[str, Any]
) -> None:
    """Weights, the template's other files and the report, written to a temporary sibling
    that replaces ``out`` at the end, so a failed run leaves no half-written model."""
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    save_file(tensors, staging / WEIGHTS_NAME, metadata={"format": "pt"})
    for file in template.iterdir():
        if file.is_file() and not _SKIPPED_FILES.fullmatch(file.name):
            shutil.copy2(file, staging / file.name)
    (staging / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)


def _summary(reports: list[TensorExtrapolation]) -> dict[str, Any]:
    variances = [r.explained_variance for r in reports]
    return {
        "tensors": len(reports),
        "extrapolated": sum(r.extrapolated for r in reports),
        "kept_last_value": sum(not r.extrapolated for r in reports),
        "explained_variance_mean": statistics.fmean(variances) if variances else 0.0,
        "explained_variance_median": statistics.median(variances) if variances else 0.0,
        "explained_variance_min": min(variances, default=0.0),
        "tensors_with_explained_variance_at_least_0.9": sum(v >= 0.9 for v in variances),
        "r_squared_mean": statistics.fmean(r.r_squared for r in reports) if reports else 0.0,
    }


@dataclass(frozen=True)
class RelexResult:
    out: Path
    report: dict[str, Any]


def extrapolate_run(
    run_dir: str | Path,
    *,
    observe: int,
    target_step: int,
    out: str | Path | None = None,
    min_explained_variance: float = 0.0,
    window: int | None = None,
    from_deltas: bool = False,
    progress: bool = False,
) -> RelexResult:
    """``rlvr relex``: read the first ``observe`` snapshots of a run, write the RELEX
    prediction for ``target_step`` as a ``from_pretrained``-loadable directory."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"run directory {run_dir} does not exist")
    if observe < 3:
        raise ValueError(f"--observe must be at least 3 (a base and 2 deltas), got {observe}")
    if not 0.0 <= min_explained_variance <= 1.0:
        raise ValueError(
            f"--min-explained-variance must be in [0, 1], got {min_explained_variance}"
        )
    checkpoints = find_checkpoints(run_dir)
    with ExitStack() as stack:
        trajectory: Trajectory
        if from_deltas:
            trajectory = DeltaTrajectory(run_dir, observe=observe)
            template = _template(checkpoints, trajectory.steps[-1])
        else:
            chosen = checkpoints[:observe]
            tables = stack.enter_context(_open_weights([path for _, path in chosen]))
            trajectory = CheckpointTrajectory([step for step, _ in chosen], tables)
            template = chosen[-1][1] if chosen else _template(checkpoints, 0)
        if len(trajectory.steps) < observe:
            source = (
                "recorded deltas" if from_deltas else f"checkpoints in {run_dir / CHECKPOINTS_DIR}"
            )
            raise ValueError(
                f"--observe {observe} but the run has {len(trajectory.steps)} {source}"
            )
        _check_steps(trajectory.steps, target_step, len(trajectory.steps))
        (template_table,) = stack.enter_context(_open_weights([template]))
        out_dir = Path(out) if out else run_dir / "relex" / f"step-{target_step:06d}"
        _check_out(out_dir)
        tensors, reports = _extrapolate_all(
            trajectory, template_table, target_step, min_explained_variance, window, progress
        )
    report = {
        "method": "RELEX: rank-1 direction of the observed deltas, linear trend in the step",
        "source": "deltas" if from_deltas else "checkpoints",
        "observed_steps": trajectory.steps,
        "target_step": target_step,
        "min_explained_variance": min_explained_variance,
        "window": window,
        "config_from": str(template),
        "summary": _summary(reports),
        "tensors": [asdict(r) for r in reports],
    }
    _write_output(out_dir, tensors, template, report)
    return RelexResult(out_dir, report)


def _extrapolate_all(
    trajectory: Trajectory,
    template: dict[str, Any],
    target_step: int,
    min_explained_variance: float,
    window: int | None,
    progress: bool,
) -> tuple[dict[str, Tensor], list[TensorExtrapolation]]:
    """Every tensor of the template: extrapolated when the trajectory tracks it and it is a
    float tensor, else copied from the template. Output dtypes are the template's."""
    from tqdm import tqdm

    tracked = set(trajectory.names())
    if unknown := sorted(tracked - template.keys()):
        raise ValueError(f"the trajectory has tensors the checkpoint lacks: {unknown[:3]}")
    tensors, reports = {}, []
    for name in tqdm(list(template), desc="RELEX", unit="tensor", disable=not progress):
        original = template[name].get_tensor(name)
        if name not in tracked or not original.is_floating_point():
            tensors[name] = original
            continue
        predicted, report = extrapolate_tensor(
            trajectory.snapshots(name),
            trajectory.steps,
            target_step,
            min_explained_variance=min_explained_variance,
            window=window,
            name=name,
        )
        tensors[name] = predicted.to(original.dtype).contiguous()
        reports.append(report)
    return tensors, reports
