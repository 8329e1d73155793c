"""Atomic checkpoints and exact resume.

A checkpoint is a folder ``checkpoints/step-000010/`` holding

* ``model/``: the policy through ``save_pretrained`` with its tokenizer, loadable on its own by
  ``AutoModelForCausalLM.from_pretrained`` (a LoRA run saves the adapter folder, which
  ``transformers`` loads with ``peft`` installed);
* ``trainer.pt``: optimizer and scheduler state, the step, the curricula and the RNG states.

It is written into a hidden sibling folder, fsynced, then renamed into place: a kill at any
moment leaves either the complete folder or no folder (half-written ones are deleted at the
next start; a step saved again is swapped in with two renames, and the old copy is restored if
a kill falls between them). Step 0 is the policy after the warm-up, before RL; it is never
pruned, because the reference policy of the KL penalty is read back from it.

Resume is exact because every random draw of step ``s`` comes from generators seeded with
``(seed, s, rank)`` (task seeds, levels aside, and sampling): the state after step ``s`` and
``s`` alone decide what step ``s + 1`` does.
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

_PREFIX = "step-"
_RETIRED = ".tmp-retired-"


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: Path

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    def trainer_state(self) -> dict[str, Any]:
        state: dict[str, Any] = torch.load(self.path / "trainer.pt", weights_only=False)
        return state


def checkpoint_dir(root: Path, step: int) -> Path:
    return root / "checkpoints" / f"{_PREFIX}{step:06d}"


def list_checkpoints(root: Path) -> list[Checkpoint]:
    """Complete checkpoints of a run, oldest first."""
    folder = root / "checkpoints"
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        name = path.name
        if path.is_dir() and name.startswith(_PREFIX) and name[len(_PREFIX) :].isdigit():
            found.append(Checkpoint(int(name[len(_PREFIX) :]), path))
    return sorted(found, key=lambda c: c.step)


def remove_partial(root: Path) -> None:
    """Delete folders a killed run left half-written. A step that a re-save retired
    (``.tmp-retired-step-N-pid``) and whose new copy never got into place (a kill between the
    two renames of :func:`save_checkpoint`) is renamed back first, so the step is not lost."""
    folder = root / "checkpoints"
    if not folder.is_dir():
        return
    for path in sorted(folder.glob(f"{_RETIRED}*")):
        name = path.name.removeprefix(_RETIRED).rpartition("-")[0]
        if name.startswith(_PREFIX) and not (folder / name).exists():
            path.rename(folder / name)
    for path in folder.glob(".tmp-*"):
        shutil.rmtree(path, ignore_errors=True)


def rng_state() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.random.get_rng_state(),
    }


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.random.set_rng_state(state["torch"])


def _fsync_tree(path: Path) -> None:
    for file in path.rglob("*"):
        if file.is_file():
            with file.open("rb") as handle:
                os.fsync(handle.fileno())


def save_checkpoint(
    root: Path,
    step: int,
    *,
    model: Any,
    tokenizer: Any,
    trainer_state: dict[str, Any],
    keep: int | None = None,
) -> Checkpoint:
    """Write checkpoint ``step`` atomically and prune old ones (never step 0)."""
    final = checkpoint_dir(root, step)
    staging = final.parent / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model.save_pretrained(staging / "model")
    tokenizer.save_pretrained(staging / "model")
    torch.save({**trainer_state, "step": step, "rng": rng_state()}, staging / "trainer.pt")
    _fsync_tree(staging)
    retired = final.parent / f"{_RETIRED}{final.name}-{os.getpid()}"
    if final.exists():  # the same step saved again: swap it, never leave the step missing
        final.rename(retired)
    staging.rename(final)
    shutil.rmtree(retired, ignore_errors=True)
    directory = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    if keep is not None:
        prunable = [c for c in list_checkpoints(root) if c.step != 0]
        for old in prunable[:-keep]:
            shutil.rmtree(old.path, ignore_errors=True)
    return Checkpoint(step, final)
