"""Cheap per-step parameter deltas, so RELEX can observe every optimizer step of a run without
writing a full checkpoint per step.

Layout under the run directory::

    RUN_DIR/deltas/base.safetensors          the parameters when recording started, float32;
                                             metadata {"step": "10"}
    RUN_DIR/deltas/step-000011.safetensors   theta_11 - theta_10, in bfloat16 (or float16);
                                             metadata {"step": "11", "previous_step": "10"}
    RUN_DIR/deltas/step-000012.safetensors   theta_12 - theta_11, ...

Tensor names are the names the trainer passes (``model.named_parameters()``, which for a
``transformers`` model are the ``save_pretrained`` names). The parameters at a recorded step
are the base plus the sum of the deltas up to that step.

Rounding does not accumulate: the recorder keeps the reconstruction ``base + sum(deltas)``
itself and writes each new delta against it, so the rounding error of one delta is absorbed by
the next and the reconstruction is within one bf16 rounding of a delta from the true
parameters at every step. bf16 keeps float32's exponent range, so the tiny per-step updates of
small learning rates do not underflow as they would in float16 (RELEX's public code stores its
deltas against ``theta_0`` in float16).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

DELTAS_DIR = "deltas"
BASE_FILE = "base.safetensors"
STEP_FILE = re.compile(r"step-(\d+)\.safetensors")
DELTA_DTYPES = (torch.bfloat16, torch.float16)

Params = Mapping[str, Tensor] | Iterable[tuple[str, Tensor]]


def _floats(params: Params) -> dict[str, Tensor]:
    """Detached float32 CPU copies of the floating-point tensors of ``params``."""
    items = params.items() if isinstance(params, Mapping) else params
    return {
        name: tensor.detach().to("cpu", torch.float32, copy=True)
        for name, tensor in items
        if tensor.is_floating_point()
    }


def _atomic_save(tensors: dict[str, Tensor], path: Path, metadata: dict[str, str]) -> None:
    partial = path.with_name(f".{path.name}.partial")
    save_file({k: v.contiguous() for k, v in tensors.items()}, partial, metadata=metadata)
    os.replace(partial, path)


def _step_of(path: Path) -> int:
    match = STEP_FILE.fullmatch(path.name)
    if match is None:
        raise ValueError(f"not a delta file name: {path.name}")
    return int(match.group(1))


def delta_files(run_dir: str | Path) -> list[tuple[int, Path]]:
    """The ``(step, path)`` of every delta file of a run, by step."""
    folder = Path(run_dir) / DELTAS_DIR
    if not folder.is_dir():
        return []
    found = [(_step_of(p), p) for p in folder.iterdir() if STEP_FILE.fullmatch(p.name)]
    return sorted(found)


class DeltaRecorder:
    """Appends the parameter change since the last record to ``RUN_DIR/deltas/``.

    Create it at the step where recording starts; it writes the base snapshot. Call
    :meth:`record` after each optimizer step (or every few). Created again on a run that
    already has a base (a resumed run), it continues from the reconstruction at the last
    recorded step ``<= step`` and deletes delta files of later steps, which belong to the
    abandoned part of the run.
    """

    def __init__(
        self, run_dir: str | Path, params: Params, step: int, dtype: torch.dtype = torch.bfloat16
    ):
        if dtype not in DELTA_DTYPES:
            raise ValueError(f"delta dtype must be bfloat16 or float16, got {dtype}")
        self.folder = Path(run_dir) / DELTAS_DIR
        self.dtype = dtype
        base = self.folder / BASE_FILE
        if base.exists():
            trajectory = DeltaTrajectory(run_dir, until_step=step, prune=True)
            self.step = trajectory.steps[-1]
            self._reference = trajectory.state_at(self.step)
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._reference = _floats(params)
            self.step = step
            _atomic_save(self._reference, base, {"step": str(step)})

    def record(self, params: Params, step: int) -> Path:
        """Write ``params - (reconstruction at the last recorded step)`` for ``step``."""
        if step <= self.step:
            raise ValueError(
                f"delta step must exceed the last recorded step {self.step}, got {step}"
            )
        current = _floats(params)
        if current.keys() != self._reference.keys():
            missing = sorted(current.keys() ^ self._reference.keys())[:3]
            raise ValueError(f"parameter names differ from the recorded base: {missing}")
        deltas = {}
        for name, value in current.items():
            delta = (value - self._reference[name]).to(self.dtype)
            self._reference[name] += delta.float()  # what a reader will reconstruct
            deltas[name] = delta
        path = self.folder / f"step-{step:06d}.safetensors"
        _atomic_save(deltas, path, {"step": str(step), "previous_step": str(self.step)})
        self.step = step
        return path


class DeltaTrajectory:
    """A run's parameter trajectory rebuilt from ``RUN_DIR/deltas/``: the base snapshot, then
    one snapshot per delta file (``observe`` limits it to the first ``observe`` snapshots,
    base included; ``until_step`` to the steps ``<= until_step``)."""

    def __init__(
        self,
        run_dir: str | Path,
        *,
        observe: int | None = None,
        until_step: int | None = None,
        prune: bool = False,
    ):
        folder = Path(run_dir) / DELTAS_DIR
        base = folder / BASE_FILE
        if not base.is_file():
            raise ValueError(f"no recorded deltas: {base} does not exist")
        with safe_open(base, "pt") as handle:
            self.base_step = int((handle.metadata() or {})["step"])
        files = [(s, p) for s, p in delta_files(run_dir) if s > self.base_step]
        if until_step is not None:
            if prune:
                for _, path in (f for f in files if f[0] > until_step):
                    path.unlink()
            files = [f for f in files if f[0] <= until_step]
        if observe is not None:
            files = files[: max(observe - 1, 0)]
        self._base_path, self._files = base, [p for _, p in files]
        self.steps = [self.base_step] + [s for s, _ in files]
        self._check_contiguous()

    def _check_contiguous(self) -> None:
        for previous, path in zip(self.steps, self._files, strict=False):
            with safe_open(path, "pt") as handle:
                recorded = int((handle.metadata() or {}).get("previous_step", -1))
            if recorded != previous:
                raise ValueError(
                    f"{path.name} was recorded after step {recorded}, not {previous}: "
                    "the deltas are not contiguous"
                )

    def names(self) -> list[str]:
        with safe_open(self._base_path, "pt") as handle:
            return list(handle.keys())

    def snapshots(self, name: str) -> Tensor:
        """The tensor ``name`` at every step: ``(K, *shape)`` float32."""
        with safe_open(self._base_path, "pt") as handle:
            rows = [handle.get_tensor(name).float()]
        for path in self._files:
            with safe_open(path, "pt") as handle:
                rows.append(rows[-1] + handle.get_tensor(name).float())
        return torch.stack(rows)

    def state_at(self, step: int) -> dict[str, Tensor]:
        """All tensors at a recorded ``step``, float32."""
        if step not in self.steps:
            raise ValueError(f"step {step} was not recorded; recorded: {self.steps}")
        state = load_file(self._base_path)
        for path in self._files[: self.steps.index(step)]:
            for name, delta in load_file(path).items():
                state[name] = state[name] + delta.float()
        return {name: tensor.float() for name, tensor in state.items()}
