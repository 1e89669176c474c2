"""Shared plumbing of the contrastive losses: gathering, logits and masks (the loss base class that
uses them and the hard negatives of :mod:`selfsup.losses._hard_negatives`:
:mod:`selfsup.losses._contrastive`).

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
from selfsup.losses._feature_transform import FeatureTransform
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

    Columns: the V*N candidates of the global batch (view-major: column ``u * N + j`` is view
    ``u`` of global image ``j``; the anchors themselves or, with ``keys``, a target encoder's
    embeddings of the same views), then K extra ``negatives`` if given.

    Attributes:
        logits: (V*B, V*N + K) cosine similarities divided by the temperature, float32 or wider,
            the anchor itself and every candidate left out by ``batch_negatives`` set to ``MASK_VALUE``.
        sim: (V*B, V*N + K) the same cosine similarities, unscaled and unmasked.
        targets: (V*B, V*N + K) positive weights. Without mixing, 1 on the other views of the
            anchor's image and 0 elsewhere; with mixing, soft: for each other view the
            weights sum to 1 over the (at most two) candidates that share content.
        masked: (V*B, V*N + K) bool, True on the candidates that are not in the softmax.
        z_all: (V, N, D) normalised anchors of the global batch.
        keys_all: (V, N, D) normalised batch candidates (``z_all`` itself without ``keys``).
        offset: global image index of local image 0.
        anchors: (V*B, D) this rank's normalised anchors (the rows).
        negatives: (K, D) the normalised extra negatives, or None.
    """

    logits: Tensor
    sim: Tensor
    targets: Tensor
    masked: Tensor
    z_all: Tensor
    keys_all: Tensor
    offset: int
    anchors: Tensor
    negatives: Tensor | None = None

    def candidates(self) -> Tensor:
        """(V*N + K, D) the normalised vector of every shared column, in column order."""
        flat = self.keys_all.reshape(-1, self.keys_all.shape[-1])
        return flat if self.negatives is None else torch.cat([flat, self.negatives])

    @property
    def pos(self) -> Tensor:
        """(V*B, V*N + K) bool: candidates with a positive weight."""
        return self.targets > 0

    @property
    def batch_columns(self) -> int:
        """V*N: the columns of the batch's candidates (the extra negatives follow)."""
        return self.keys_all.shape[0] * self.keys_all.shape[1]


BATCH_NEGATIVES = ("all", "other_views", "none")


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


def gather_views(x: Tensor, views: int, gather_distributed: bool) -> Tensor:
    """(V*B, D) view-major rows of this rank -> (V, N, D) in global image order."""
    b = x.shape[0] // views
    parts = gather_with_grad(x) if gather_distributed else [x]
    return torch.cat([p.view(views, b, -1) for p in parts], dim=1)


def contrastive_pairs(
    z: Tensor,
    views: int,
    temperature: float,
    gather_distributed: bool,
    mix: Mix | None = None,
    keys: Tensor | None = None,
    negatives: Tensor | None = None,
    batch_negatives: str = "all",
    transform: FeatureTransform | None = None,
) -> Pairs:
    """Normalise, gather and compare.

    Args:
        z: (V*B, D) embeddings of the anchors, view-major.
        views: number of views V (at least 2).
        temperature: softmax temperature τ.
        gather_distributed: gather candidates from all ranks (negatives from the global batch).
        mix: how one view was mixed (CutMix), for soft targets; None for hard positives.
        keys: (V*B, D) the candidates' embeddings, view-major like ``z``, from a target encoder
            (MoCo's momentum encoder, NPID's memory bank); None compares ``z`` with itself.
        negatives: (K, D) extra candidates that are never positives (MoCo's queue, NPID's
            sampled bank rows); detached by the caller.
        batch_negatives: which candidates of the batch that are not positives stay in the
            softmax: ``all`` (SimCLR: every view of every other image), ``other_views`` (MoCo v3:
            the other views only, never the anchor's own view) or ``none`` (MoCo v2, NPID: only
            ``negatives``).
        transform: feature transformation (positive extrapolation before the gather, negative
            interpolation of the candidates that are not the anchor's positives), or None.
    """
    if views < 2:
        raise ValueError(f"contrastive losses need at least 2 views, got views={views}")
    if z.ndim != 2 or z.shape[0] % views:
        raise ValueError(f"z must be (views*batch, dim) with rows divisible by views={views}; got {tuple(z.shape)}")
    if keys is not None and keys.shape != z.shape:
        raise ValueError(f"keys must have the shape of z {tuple(z.shape)}; got {tuple(keys.shape)}")
    if batch_negatives not in BATCH_NEGATIVES:
        raise ValueError(f"batch_negatives={batch_negatives!r}; expected one of {list(BATCH_NEGATIVES)}")
    # Logits in float32 at least: exp(s/τ) overflows fp16 for τ ≲ 0.09 (docs/algorithms.md#numerics).
    dtype = torch.promote_types(z.dtype, torch.float32)
    z = F.normalize(z.to(dtype), dim=1)
    b = z.shape[0] // views
    unit_keys = None if keys is None else F.normalize(keys.to(dtype), dim=1)
    if transform is not None:  # an image's views are all on this rank: before the gather
        z, unit_keys = transform.extrapolate(z, unit_keys, views)
    z_all = gather_views(z, views, gather_distributed)
    keys_all = z_all if unit_keys is None else gather_views(unit_keys, views, gather_distributed)
    n = z_all.shape[1]
    offset = rank() * b if gather_distributed else 0

    sim = z @ keys_all.reshape(views * n, -1).T  # (V*B, V*N)
    dev = z.device
    anchor_img = torch.arange(b, device=dev).repeat(views) + offset  # (V*B,)
    anchor_view = torch.arange(views, device=dev).repeat_interleave(b)
    cand_img = torch.arange(n, device=dev).repeat(views)  # (V*N,)
    cand_view = torch.arange(views, device=dev).repeat_interleave(n)
    same_view = anchor_view[:, None] == cand_view[None, :]
    masked = (anchor_img[:, None] == cand_img[None, :]) & same_view  # the anchor itself
    if mix is not None and not (0 <= mix.view < views and mix.partner.shape == (b,) == mix.lam.shape):
        raise ValueError(f"mix must name a view in [0, {views}) and give partner and lam of shape ({b},)")
    targets = soft_targets(b, n, views, offset, mix, dev, sim.dtype)
    if batch_negatives == "other_views":
        masked = masked | (same_view & (targets == 0))
    elif batch_negatives == "none":
        masked = masked | (targets == 0)
    mu = transform.draw_mu(sim) if transform is not None else None
    if mu is not None:  # the negatives of the batch, mixed over images; positives stay as they are
        mixed = transform.interpolate(keys_all, mu, dim=1)  # type: ignore[union-attr]
        sim = torch.where(targets > 0, sim, z @ mixed.reshape(views * n, -1).T)
    extra = None
    if negatives is not None:
        extra = F.normalize(negatives.to(dtype), dim=1)
        if mu is not None:
            extra = transform.interpolate(extra, mu, dim=0)  # type: ignore[union-attr]
        sim = torch.cat([sim, z @ extra.T], dim=1)  # (V*B, V*N + K)
        targets = F.pad(targets, (0, extra.shape[0]))
        masked = F.pad(masked, (0, extra.shape[0]), value=False)
    logits = (sim / temperature).masked_fill(masked, MASK_VALUE)
    return Pairs(
        logits=logits,
        sim=sim,
        targets=targets,
        masked=masked,
        z_all=z_all,
        keys_all=keys_all,
        offset=offset,
        anchors=z,
        negatives=extra,
    )
