"""Shared plumbing of the contrastive losses: gathering, logits and masks.

Rows of ``z`` are view-major: row ``v * B + i`` is view ``v`` of local image ``i``.
Under DDP, candidates come from every rank (gathered with gradient), and the image
index of local row ``i`` on rank ``k`` is ``k * B + i`` in the global batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

# Large finite negative used to mask logits: -inf would give NaN gradients in corner cases.
MASK_VALUE = -1e9


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_with_grad(x: Tensor) -> list[Tensor]:
    """All-gather ``x`` from every rank; gradients flow back to the rank that owns each slice."""
    _, world = _world()
    if world == 1:
        return [x]
    from torch.distributed.nn.functional import all_gather

    return list(all_gather(x))


@dataclass
class Pairs:
    """Similarity logits of local anchors against all candidates, with their masks.

    Attributes:
        logits: (V*B, V*N) cosine similarities divided by the temperature, float32 or wider,
            self-similarity already masked with ``MASK_VALUE``.
        sim: (V*B, V*N) the same cosine similarities, unscaled and unmasked.
        pos: (V*B, V*N) bool, True where the candidate is another view of the anchor's image.
        self_mask: (V*B, V*N) bool, True on the anchor itself.
        z_all: (V, N, D) normalised embeddings of the global batch.
        offset: global image index of local image 0.
    """

    logits: Tensor
    sim: Tensor
    pos: Tensor
    self_mask: Tensor
    z_all: Tensor
    offset: int


def contrastive_pairs(z: Tensor, views: int, temperature: float, gather_distributed: bool) -> Pairs:
    """Normalise, gather and compare.

    Args:
        z: (V*B, D) embeddings, view-major.
        views: number of views V (at least 2).
        temperature: softmax temperature τ.
        gather_distributed: gather candidates from all ranks (negatives from the global batch).
    """
    if views < 2:
        raise ValueError(f"contrastive losses need at least 2 views, got views={views}")
    if z.ndim != 2 or z.shape[0] % views:
        raise ValueError(f"z must be (views*batch, dim) with rows divisible by views={views}; got {tuple(z.shape)}")
    # Logits in float32 at least: exp(s/τ) overflows fp16 for τ ≲ 0.09 (SPEC.md).
    z = F.normalize(z.to(torch.promote_types(z.dtype, torch.float32)), dim=1)
    b = z.shape[0] // views
    rank, _ = _world()
    parts = gather_with_grad(z) if gather_distributed else [z]
    # Each rank's block is (V*B, D) view-major; regroup to (V, N, D) in global image order.
    z_all = torch.cat([p.view(views, b, -1) for p in parts], dim=1)
    n = z_all.shape[1]
    offset = rank * b if gather_distributed else 0

    sim = z @ z_all.reshape(views * n, -1).T  # (V*B, V*N)
    dev = z.device
    anchor_img = torch.arange(b, device=dev).repeat(views) + offset  # (V*B,)
    anchor_view = torch.arange(views, device=dev).repeat_interleave(b)
    cand_img = torch.arange(n, device=dev).repeat(views)  # (V*N,)
    cand_view = torch.arange(views, device=dev).repeat_interleave(n)
    same_img = anchor_img[:, None] == cand_img[None, :]
    same_view = anchor_view[:, None] == cand_view[None, :]
    self_mask = same_img & same_view
    pos = same_img & ~same_view
    logits = (sim / temperature).masked_fill(self_mask, MASK_VALUE)
    return Pairs(logits=logits, sim=sim, pos=pos, self_mask=self_mask, z_all=z_all, offset=offset)
