"""Shared plumbing of the contrastive losses: gathering, logits and masks.

Rows of ``z`` are view-major: row ``v * B + i`` is view ``v`` of local image ``i``.
Under DDP, candidates come from every rank (gathered with gradient), and the image
index of local row ``i`` on rank ``k`` is ``k * B + i`` in the global batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from selfsup.dist import rank, world_size
from selfsup.mix import Mix

# Large finite negative used to mask logits: -inf would give NaN gradients in corner cases.
MASK_VALUE = -1e9


def gather_with_grad(x: Tensor) -> list[Tensor]:
    """All-gather ``x`` from every rank; gradients flow back to the rank that owns each slice."""
    if world_size() == 1:
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
        targets: (V*B, V*N) positive weights. Without mixing, 1 on the other views of the
            anchor's image and 0 elsewhere; with mixing, soft: for each other view the
            weights sum to 1 over the (at most two) candidates that share content.
        self_mask: (V*B, V*N) bool, True on the anchor itself.
        z_all: (V, N, D) normalised embeddings of the global batch.
        offset: global image index of local image 0.
    """

    logits: Tensor
    sim: Tensor
    targets: Tensor
    self_mask: Tensor
    z_all: Tensor
    offset: int

    @property
    def pos(self) -> Tensor:
        """(V*B, V*N) bool: candidates with a positive weight."""
        return self.targets > 0


def soft_targets(
    b: int, n: int, views: int, offset: int, mix: Mix | None, device: torch.device, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Positive weights of local anchors (V*B rows) over the global candidates (V*N columns).

    With ``mix`` (view m of image i = λ_i of i + (1-λ_i) of partner π(i)):
    a mixed anchor (m, i) puts λ_i on (u, i) and 1-λ_i on (u, π(i)) for every other view u;
    an unmixed anchor (v, i) puts weights ∝ λ_i on (m, i) and ∝ 1-λ_k on (m, k), where
    π(k) = i, normalised to sum to 1; between unmixed views the positive stays hard. With
    every λ = 1 this is exactly the unmixed target.
    """
    t = torch.zeros(views * b, views * n, device=device, dtype=dtype)
    local = torch.arange(b, device=device)
    m = mix.view if mix is not None else -1
    if mix is not None:
        lam = mix.lam.to(device=device, dtype=t.dtype)
        partner = mix.partner.to(device)
        inverse = torch.argsort(partner)  # inverse[i] = k with partner[k] = i
        w_own, w_in = lam, 1 - lam[inverse]
        norm = (w_own + w_in).clamp(min=torch.finfo(t.dtype).tiny)
    for v in range(views):
        rows = v * b + local
        for u in range(views):
            if u == v:
                continue
            col = u * n + offset
            if mix is None or m not in (u, v):
                t[rows, col + local] = 1.0
            elif v == m:  # the mixed anchor
                t.index_put_((rows, col + local), lam, accumulate=True)
                t.index_put_((rows, col + partner), 1 - lam, accumulate=True)
            else:  # an unmixed anchor against the mixed view
                t.index_put_((rows, col + local), w_own / norm, accumulate=True)
                t.index_put_((rows, col + inverse), w_in / norm, accumulate=True)
    return t


def contrastive_pairs(
    z: Tensor, views: int, temperature: float, gather_distributed: bool, mix: Mix | None = None
) -> Pairs:
    """Normalise, gather and compare.

    Args:
        z: (V*B, D) embeddings, view-major.
        views: number of views V (at least 2).
        temperature: softmax temperature τ.
        gather_distributed: gather candidates from all ranks (negatives from the global batch).
        mix: how one view was mixed (CutMix), for soft targets; None for hard positives.
    """
    if views < 2:
        raise ValueError(f"contrastive losses need at least 2 views, got views={views}")
    if z.ndim != 2 or z.shape[0] % views:
        raise ValueError(f"z must be (views*batch, dim) with rows divisible by views={views}; got {tuple(z.shape)}")
    # Logits in float32 at least: exp(s/τ) overflows fp16 for τ ≲ 0.09 (SPEC.md).
    z = F.normalize(z.to(torch.promote_types(z.dtype, torch.float32)), dim=1)
    b = z.shape[0] // views
    parts = gather_with_grad(z) if gather_distributed else [z]
    # Each rank's block is (V*B, D) view-major; regroup to (V, N, D) in global image order.
    z_all = torch.cat([p.view(views, b, -1) for p in parts], dim=1)
    n = z_all.shape[1]
    offset = rank() * b if gather_distributed else 0

    sim = z @ z_all.reshape(views * n, -1).T  # (V*B, V*N)
    dev = z.device
    anchor_img = torch.arange(b, device=dev).repeat(views) + offset  # (V*B,)
    anchor_view = torch.arange(views, device=dev).repeat_interleave(b)
    cand_img = torch.arange(n, device=dev).repeat(views)  # (V*N,)
    cand_view = torch.arange(views, device=dev).repeat_interleave(n)
    self_mask = (anchor_img[:, None] == cand_img[None, :]) & (anchor_view[:, None] == cand_view[None, :])
    if mix is not None and not (0 <= mix.view < views and mix.partner.shape == (b,) == mix.lam.shape):
        raise ValueError(f"mix must name a view in [0, {views}) and give partner and lam of shape ({b},)")
    targets = soft_targets(b, n, views, offset, mix, dev, sim.dtype)
    logits = (sim / temperature).masked_fill(self_mask, MASK_VALUE)
    return Pairs(logits=logits, sim=sim, targets=targets, self_mask=self_mask, z_all=z_all, offset=offset)
