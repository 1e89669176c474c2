"""Hard negatives for every contrastive loss: drop the most similar ones as probable false
negatives, or synthesise harder ones by mixing (MoCHi, Kalantidis et al., NeurIPS 2020).

Both act on the compared :class:`~selfsup.losses._pairs.Pairs` before a loss reduces them, so
``ntxent``, ``dcl``, ``dclw`` and ``hcl`` gain them with their candidates, whichever they are (the
batch, MoCo's queue, a memory bank).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor

from selfsup.losses._pairs import MASK_VALUE, Pairs


def negative_similarities(p: Pairs) -> Tensor:
    """(V*B, C) cosine similarities with every candidate that is a negative; -inf elsewhere."""
    return p.sim.masked_fill(p.masked | p.pos, float("-inf"))


def drop_most_similar(p: Pairs, k: int) -> Pairs:
    """Leave each anchor's ``k`` most similar negatives out of the softmax (probable false negatives:
    images of the anchor's own class), keeping at least one negative per anchor."""
    if k <= 0:
        return p
    neg = negative_similarities(p)
    available = int((neg > float("-inf")).sum(dim=1).min())
    k = min(k, available - 1)
    if k <= 0:
        return p
    drop = torch.zeros_like(p.masked).scatter_(1, neg.topk(k, dim=1).indices, True)
    masked = p.masked | drop
    return dataclasses.replace(p, masked=masked, logits=p.logits.masked_fill(drop, MASK_VALUE))


def mochi_negatives(
    p: Pairs, hardest: int, mixes: int, query_mixes: int, generator: torch.Generator | None = None
) -> Tensor:
    """(V*B, mixes + query_mixes, D) synthetic negatives per anchor, detached (MoCHi).

    From each anchor's ``hardest`` most similar negatives ñ: ``mixes`` of
    normalise(α ñ_i + (1 - α) ñ_j), α ~ U(0, 1), and ``query_mixes`` of normalise(β q + (1 - β) ñ_j),
    β ~ U(0, 0.5) (the anchor q contributes less than half), i and j uniform over the hardest.
    Draws in this order: i, j, α for the mixes, then j, β for the query mixes.
    """
    neg = negative_similarities(p).detach()
    n = min(hardest, int((neg > float("-inf")).sum(dim=1).min()))
    if n <= 0:
        raise ValueError("MoCHi needs negatives to mix: every candidate of an anchor is masked or positive")
    hard = p.candidates().detach()[neg.topk(n, dim=1).indices]  # (R, n, D), hardest first
    rows, dev, dtype = hard.shape[0], hard.device, hard.dtype
    out = []

    def pick(idx: Tensor) -> Tensor:  # (R, s) -> (R, s, D)
        return torch.gather(hard, 1, idx[..., None].expand(-1, -1, hard.shape[-1]))

    if mixes > 0:
        i = torch.randint(n, (rows, mixes), generator=generator, device=dev)
        j = torch.randint(n, (rows, mixes), generator=generator, device=dev)
        alpha = torch.rand(rows, mixes, 1, generator=generator, device=dev, dtype=dtype)
        out.append(F.normalize(alpha * pick(i) + (1 - alpha) * pick(j), dim=2))
    if query_mixes > 0:
        j = torch.randint(n, (rows, query_mixes), generator=generator, device=dev)
        beta = 0.5 * torch.rand(rows, query_mixes, 1, generator=generator, device=dev, dtype=dtype)
        q = p.anchors.detach()[:, None, :]
        out.append(F.normalize(beta * q + (1 - beta) * pick(j), dim=2))
    return torch.cat(out, dim=1)


def add_anchor_negatives(p: Pairs, extra: Tensor, temperature: float) -> Pairs:
    """Append per-anchor negatives (V*B, S, D) as S more columns (the gradient reaches the anchors)."""
    sim = torch.einsum("rd,rsd->rs", p.anchors, extra.to(p.anchors.dtype))
    pad = extra.shape[1]
    return dataclasses.replace(
        p,
        sim=torch.cat([p.sim, sim], dim=1),
        logits=torch.cat([p.logits, sim / temperature], dim=1),
        targets=F.pad(p.targets, (0, pad)),
        masked=F.pad(p.masked, (0, pad), value=False),
    )
