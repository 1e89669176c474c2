"""Rank and world size: the one place the package asks who it is under DDP.

Inside a running process group the answer comes from ``torch.distributed``. Before one exists
(when the run directory is laid out, before the trainer starts) it comes from the launcher's
environment, in Lightning's order: ``RANK`` (torchrun), ``LOCAL_RANK``, ``SLURM_PROCID``.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


def initialized() -> bool:
    """A process group is running."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank in the running group; 0 without one."""
    return dist.get_rank() if initialized() else 0


def world_size() -> int:
    """Processes in the running group; 1 without one."""
    return dist.get_world_size() if initialized() else 1


def launcher_rank_zero() -> bool:
    """Rank 0 according to the launcher's environment, known before any process group starts.

    On a node other than the first, launched without torchrun or SLURM, ``LOCAL_RANK`` 0 also
    counts as rank 0 here: such a process rewrites the same run-directory files, atomically.
    """
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        if key in os.environ:
            return int(os.environ[key]) == 0
    return True


def planned_world_size(accelerator: str, devices: Any, num_nodes: int) -> int:
    """The processes a Trainer with these settings will run, known before it is built: the
    launcher's ``WORLD_SIZE`` where there is one (torchrun), else devices per node, as Lightning's
    accelerator reads ``devices`` ("auto": every visible GPU, or one CPU process), times ``num_nodes``.
    Settings Lightning refuses count as one process per node (the Trainer then names the problem).
    """
    if "WORLD_SIZE" in os.environ:
        return int(os.environ["WORLD_SIZE"])
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.accelerators import CPUAccelerator, CUDAAccelerator

    gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    kind = CUDAAccelerator if gpu else CPUAccelerator
    try:
        parsed = kind.parse_devices(kind.auto_device_count() if devices == "auto" else devices)
    except (MisconfigurationException, TypeError, ValueError):
        return int(num_nodes)
    per_node = len(parsed) if isinstance(parsed, list) else int(parsed or 1)
    return per_node * int(num_nodes)


def gather_cat(x: Tensor) -> Tensor:
    """Every rank's ``x`` concatenated along dim 0 in rank order, without gradient (state updates:
    queues, memory banks, per-image state); ``x`` itself without a process group."""
    if world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def shared_permutations(rows: int, n: int, device: torch.device) -> Tensor:
    """(rows, n): ``rows`` random permutations of ``range(n)``, the same on every rank (rank 0's,
    broadcast), as MoCo's shuffle BN draws its shuffle (He et al. 2020, ``_batch_shuffle_ddp``)."""
    perms = torch.stack([torch.randperm(n) for _ in range(rows)]).to(device)
    if world_size() > 1:
        dist.broadcast(perms, src=0)
    return perms
