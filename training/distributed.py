"""Process-group helpers: the same code runs alone or under ``torchrun --nproc_per_node N``.

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; then the trainer joins a process
group (NCCL when every rank has a CUDA device, gloo otherwise), wraps the policy in
``DistributedDataParallel`` for the loss, and each rank plays its share of the prompt groups.
Alone, every helper here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | None) -> tuple[DistInfo, torch.device]:
    """Join the process group when launched by ``torchrun``; the device of this rank."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    info = DistInfo(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    cuda = torch.cuda.is_available() and (device is None or device.startswith("cuda"))
    chosen = torch.device(f"cuda:{info.local_rank}" if cuda else (device or "cpu"))
    if cuda:
        torch.cuda.set_device(chosen)
    if info.enabled and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return info, chosen


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_sum(info: DistInfo, value: float, device: torch.device) -> float:
    if not info.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return float(tensor.item())


def all_min(info: DistInfo, value: int, device: torch.device) -> int:
    if not info.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.long, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return int(tensor.item())


def gather_objects(info: DistInfo, value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank."""
    if not info.enabled:
        return [value]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, value)
    return out


def broadcast_object(info: DistInfo, value: Any) -> Any:
    """Rank 0's ``value`` on every rank."""
    if not info.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wrap(info: DistInfo, model: Any, device: torch.device) -> Any:
    """The module the loss runs through: DDP under torchrun, else the model itself."""
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
