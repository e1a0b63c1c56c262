"""The process group: started by ``torchrun`` (DDP) or absent (one process).

``torchrun --nproc_per_node N -m humansd_core.cli train ...`` sets ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`init_distributed` then joins the group with
NCCL on CUDA devices and gloo on the CPU. Rank 0 writes every file; the helpers below
are no-ops for a single process.
"""
from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """This process's place: ``rank`` of ``world_size``, its ``device``."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "") -> DistInfo:
    """Join the process group when launched by torchrun, and pick the device.

    ``device`` empty: ``cuda:<LOCAL_RANK>`` when CUDA is available, else the CPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device:
        dev = torch.device(device)
    else:
        dev = torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
        logger.info("rank %d/%d on %s (%s)", rank, world_size, dev, backend)
    return DistInfo(rank, world_size, local_rank, dev)


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def any_true(info: DistInfo, flag: bool) -> bool:
    """True when ``flag`` is true on some rank (every rank must call)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def mean_over_ranks(info: DistInfo, values: torch.Tensor) -> torch.Tensor:
    """The element-wise mean of ``values`` over ranks (every rank must call)."""
    if not info.enabled:
        return values
    out = values.detach().clone().to(info.device)
    dist.all_reduce(out)
    return out / info.world_size


def gather_objects(info: DistInfo, obj: object) -> list[object]:
    """Every rank's ``obj`` (JSON-like data), in rank order, on every rank."""
    if not info.enabled:
        return [obj]
    out: list[object] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out
