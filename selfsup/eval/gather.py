"""The held-out split as one set across ranks: every sample exactly once, in index order.

Under DDP each rank validates a shard, and the distributed sampler pads the shards to equal
length by repeating samples. Metrics on the concatenated shards would count those twice;
:func:`gather_unique` gathers every rank's rows and keeps each sample index once.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from selfsup.dist import world_size


def unique_by_index(rows: dict[str, Tensor]) -> dict[str, Tensor]:
    """The rows of ``rows`` (aligned tensors with an ``index`` entry) with each index once, sorted."""
    index = rows["index"]
    order = torch.argsort(index, stable=True)
    ordered = index[order]
    first = torch.ones_like(ordered, dtype=torch.bool)
    first[1:] = ordered[1:] != ordered[:-1]
    keep = order[first]
    return {k: v[keep] for k, v in rows.items()}


def gather_unique(rows: dict[str, Tensor], device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """Every rank's ``rows``, each sample index once, in index order; on the CPU.

    A collective: every rank calls it, with the same keys. Rows may differ in count per rank.

    Args:
        rows: aligned tensors (same first dimension), one of them ``index`` (N,) int64.
        device: where the collective runs (the rank's device: CUDA under NCCL, CPU under gloo).
    """
    world = world_size()
    if world == 1:
        return unique_by_index({k: v.cpu() for k, v in rows.items()})
    count = torch.tensor([rows["index"].shape[0]], device=device)
    counts = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(counts, count)
    sizes = [int(c) for c in counts]
    out: dict[str, Tensor] = {}
    for key in sorted(rows):  # the same order on every rank
        v = rows[key].to(device)
        padded = v.new_zeros((max(sizes), *v.shape[1:]))
        padded[: v.shape[0]] = v
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded)
        out[key] = torch.cat([p[:n] for p, n in zip(parts, sizes, strict=True)]).cpu()
    return unique_by_index(out)
