"""What a run writes besides checkpoints: metrics JSONL, TensorBoard events, samples, plots.

Layout of a run directory::

    config.yaml            the validated scenario, overrides applied
    metrics.jsonl          one JSON object per step (``step`` first)
    tensorboard/           TensorBoard events of the same scalars
    samples/step-000010.jsonl   a few transcripts of that step's rollouts
    failures.jsonl         dropped groups: an env raised, or a reward source cannot score a rollout
    eval.json              held-out evaluation before and after RL
    plots/*.png            curves drawn from metrics.jsonl at the end
    checkpoints/step-000010/    see :mod:`rlvr.training.checkpoint`

On resume from step ``s``, :meth:`RunLog.rewind` drops metric lines and sample files of steps
after ``s`` and TensorBoard purges its events after ``s``, so no step is logged twice.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rlvr.training.rollout import Rollout


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


class RunLog:
    """Writes a run's logs; only the main process (rank 0) makes one."""

    def __init__(self, root: Path, *, tensorboard: bool):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.metrics_path = root / "metrics.jsonl"
        self._tensorboard = tensorboard
        self._writer: Any = None

    def rewind(self, step: int) -> None:
        """Forget everything logged after ``step`` (the step of the checkpoint resumed)."""
        for path in (self.metrics_path, self.root / "failures.jsonl"):
            if path.exists():
                kept = [line for line in _complete_lines(path) if json.loads(line)["step"] <= step]
                _atomic_write(path, "".join(f"{line}\n" for line in kept))
        for sample in (self.root / "samples").glob("step-*.jsonl"):
            if int(sample.stem.split("-")[1]) > step:
                sample.unlink()
        self._open_tensorboard(purge_step=step + 1)

    def _open_tensorboard(self, purge_step: int | None = None) -> None:
        if not self._tensorboard or self._writer is not None:
            return
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(str(self.root / "tensorboard"), purge_step=purge_step)

    def log(self, step: int, metrics: Mapping[str, float | int | str | None]) -> None:
        """Append one step's metrics (flushed at once; a resume drops a line torn by a kill)."""
        record = {"step": step, **metrics}
        with self.metrics_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
        self._open_tensorboard()
        if self._writer is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self._writer.add_scalar(key, value, step)
            self._writer.flush()

    def samples(self, step: int, rollouts: Sequence[Rollout]) -> None:
        folder = self.root / "samples"
        folder.mkdir(exist_ok=True)
        lines = [json.dumps(_transcript(rollout)) for rollout in rollouts]
        _atomic_write(folder / f"step-{step:06d}.jsonl", "".join(f"{line}\n" for line in lines))

    def failures(self, step: int, rollouts: Sequence[Rollout]) -> None:
        with (self.root / "failures.jsonl").open("a", encoding="utf-8") as handle:
            for rollout in rollouts:
                handle.write(json.dumps({"step": step, **_transcript(rollout)}) + "\n")

    def write_json(self, name: str, data: Mapping[str, Any]) -> None:
        _atomic_write(self.root / name, json.dumps(data, indent=2) + "\n")

    def read_json(self, name: str) -> dict[str, Any] | None:
        path = self.root / name
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _complete_lines(path: Path) -> list[str]:
    """The JSON lines of ``path``, without a last line a kill tore in the middle."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if lines:
        try:
            json.loads(lines[-1])
        except json.JSONDecodeError:
            lines.pop()
    return lines


def _transcript(rollout: Rollout) -> dict[str, Any]:
    return {
        "env_id": rollout.env_id,
        "seed": rollout.seed,
        "difficulty": rollout.difficulty,
        "reward": rollout.reward,
        "success": rollout.success,
        "components": dict(rollout.components),
        "truncated": rollout.truncated,
        "error": rollout.error,
        "messages": [message.as_dict() for message in rollout.messages],
    }


PLOTTED = (
    ("reward", "reward (mean over rollouts)"),
    ("success", "success rate"),
    ("kl", "KL to reference"),
    ("entropy", "token entropy (nats)"),
    ("clip_fraction", "clipped token fraction"),
    ("completion_tokens", "policy tokens per episode"),
)


def plot_metrics(root: Path) -> list[Path]:
    """PNG curves of the main metrics (and every per-env reward) from ``metrics.jsonl``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = root / "metrics.jsonl"
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    keys = [key for key, _ in PLOTTED] + sorted(
        {k for r in records for k in r if k.startswith("env/") and k.endswith("/reward")}
    )
    titles: dict[str, str] = dict(PLOTTED)
    out = root / "plots"
    out.mkdir(exist_ok=True)
    written = []
    for key in keys:
        points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
        if not points:
            continue
        figure, axis = plt.subplots(figsize=(5, 3.2))
        axis.plot([p[0] for p in points], [p[1] for p in points], marker=".")
        axis.set_xlabel("step")
        axis.set_title(titles.get(key) or key)
        axis.grid(alpha=0.3)
        figure.tight_layout()
        target = out / f"{key.replace('/', '_')}.png"
        figure.savefig(target, dpi=100)
        plt.close(figure)
        written.append(target)
    return written
