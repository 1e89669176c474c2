"""Naive float64 loops of the seed papers' objectives, one anchor / one pair at a time, written from
the formulas in docs/algorithms.md (HCL: Robinson et al. 2021; alignment and uniformity: Wang and
Isola 2020). Torch scalars, so autograd gives the gradients."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tests.losses.reference_methods import batch_negative_keys


def _unit(x: Tensor) -> Tensor:
    return x / x.norm()


def hcl_naive(
    q: Tensor,
    k: Tensor | None,
    queue: Tensor | None,
    views: int,
    tau: float,
    beta: float,
    tau_plus: float,
    batch_negatives: str = "all",
) -> Tensor:
    """Anchor (v, i); positives: the keys of image i in the other views; negatives: the queue and,
    by ``batch_negatives``, other images' keys (``all``: every view, ``other_views``: views u ≠ v).
    w_j = e^{β l_j} / mean e^{β l}; Ng = max((Σ w_j e^{l_j} - τ⁺ N e^{p}) / (1 - τ⁺), N e^{-1/τ});
    loss -log e^{p} / (e^{p} + Ng), averaged over the positives, then over anchors."""
    k = q if k is None else k
    n = q.shape[0] // views
    total = q.new_zeros(())
    for a in range(views * n):
        v, i = divmod(a, n)
        qa = _unit(q[a])
        negs = [] if queue is None else [qa @ _unit(x) / tau for x in queue]
        negs += [qa @ x / tau for x in batch_negative_keys(k, v, i, views, batch_negatives)]
        count = len(negs)
        imp = [torch.exp(beta * lj) for lj in negs]
        mean_imp = sum(imp) / count
        reweighted = sum(w / mean_imp * torch.exp(lj) for w, lj in zip(imp, negs, strict=True))
        terms = []
        for u in range(views):
            if u == v:
                continue
            p = qa @ _unit(k[u * n + i]) / tau
            ng = (reweighted - tau_plus * count * torch.exp(p)) / (1 - tau_plus)
            ng = torch.clamp(ng, min=count * math.exp(-1 / tau))
            terms.append(-torch.log(torch.exp(p) / (torch.exp(p) + ng)))
        total = total + sum(terms) / len(terms)
    return total / (views * n)


def debiased_naive(z: Tensor, tau: float, tau_plus: float) -> Tensor:
    """Chuang et al. (2020), two views, the batch's other images as negatives (N = 2B - 2):
    Ng = max((Σ_j e^{l_j} - τ⁺ N e^{p}) / (1 - τ⁺), N e^{-1/τ})."""
    n = z.shape[0] // 2
    total = z.new_zeros(())
    for a in range(2 * n):
        v, i = divmod(a, n)
        za = _unit(z[a])
        negs = [torch.exp(za @ _unit(z[c]) / tau) for c in range(2 * n) if c % n != i]
        pos = torch.exp(za @ _unit(z[(1 - v) * n + i]) / tau)
        ng = torch.clamp((sum(negs) - tau_plus * len(negs) * pos) / (1 - tau_plus), min=len(negs) * math.exp(-1 / tau))
        total = total - torch.log(pos / (pos + ng))
    return total / (2 * n)


def align_uniform_naive(z: Tensor, views: int, alpha: float, t: float, w_align: float, w_uniform: float) -> Tensor:
    """w_a · mean over view pairs of mean_i ‖ẑ_i^v - ẑ_i^u‖^α
    + w_u · mean over views of log mean_{i<j} exp(-t ‖ẑ_i^v - ẑ_j^v‖²)."""
    n = z.shape[0] // views
    u = [[_unit(z[v * n + i]) for i in range(n)] for v in range(views)]
    align = [
        sum((u[v][i] - u[w][i]).norm() ** alpha for i in range(n)) / n
        for v in range(views)
        for w in range(v + 1, views)
    ]
    uniform = []
    for v in range(views):
        pairs = [torch.exp(-t * (u[v][i] - u[v][j]).norm() ** 2) for i in range(n) for j in range(i + 1, n)]
        uniform.append(torch.log(sum(pairs) / len(pairs)))
    return w_align * sum(align) / len(align) + w_uniform * sum(uniform) / len(uniform)


def infonce_hard_naive(
    q: Tensor,
    k: Tensor | None,
    queue: Tensor | None,
    views: int,
    tau: float,
    batch_negatives: str = "all",
    drop: int = 0,
    draws: dict[str, Tensor] | None = None,
    hardest: int = 0,
) -> Tensor:
    """NT-Xent/InfoNCE where each anchor first loses its ``drop`` most similar negatives, then gains
    MoCHi's synthetic negatives built from its ``hardest`` remaining ones with the given ``draws``
    (``i``, ``j``, ``alpha`` for the mixes; ``jq``, ``beta`` for the query mixes; per anchor row),
    detached. Positives stay in the denominator."""
    k = q if k is None else k
    n = q.shape[0] // views
    total = q.new_zeros(())
    for a in range(views * n):
        v, i = divmod(a, n)
        qa = _unit(q[a])
        queued = [] if queue is None else [_unit(x) for x in queue]
        negs = batch_negative_keys(k, v, i, views, batch_negatives) + queued  # column order
        ranked = sorted(negs, key=lambda x: float((qa @ x).detach()), reverse=True)  # hardest first
        kept = ranked[drop:]
        logits = [qa @ x / tau for x in kept]
        if draws is not None:
            hard = [x.detach() for x in kept[:hardest]]
            for s in range(draws["i"].shape[1]):
                al = float(draws["alpha"][a, s])
                h = _unit(al * hard[int(draws["i"][a, s])] + (1 - al) * hard[int(draws["j"][a, s])])
                logits.append(qa @ h / tau)
            for s in range(draws["jq"].shape[1]):
                be = float(draws["beta"][a, s])
                h = _unit(be * qa.detach() + (1 - be) * hard[int(draws["jq"][a, s])])
                logits.append(qa @ h / tau)
        pos = [qa @ _unit(k[u * n + i]) / tau for u in range(views) if u != v]
        denom = sum(torch.exp(x) for x in logits) + sum(torch.exp(x) for x in pos)
        total = total + sum(-torch.log(torch.exp(x) / denom) for x in pos) / len(pos)
    return total / (views * n)
