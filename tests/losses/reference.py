"""Naive per-anchor loop implementations of the losses, written straight from the definitions
in docs/algorithms.md (Contrastive objectives)."""

from __future__ import annotations

import math

from torch import Tensor


def _cos(z: Tensor) -> list[list[float]]:
    z = z.double()
    z = z / z.norm(dim=1, keepdim=True)
    return (z @ z.T).tolist()


def ntxent_naive(z: Tensor, views: int, tau: float) -> float:
    n = z.shape[0] // views
    s = _cos(z)
    total = 0.0
    for a in range(views * n):
        i = a % n
        denom = sum(math.exp(s[a][k] / tau) for k in range(views * n) if k != a)
        pos = [u * n + i for u in range(views) if u * n + i != a]
        total += sum(-math.log(math.exp(s[a][p] / tau) / denom) for p in pos) / len(pos)
    return total / (views * n)


def dclw_weights_naive(z: Tensor, views: int, sigma: float) -> dict[tuple[int, int, int], float]:
    """w[(v, u, i)] = 2 - N softmax_i(s(z_i^v, z_i^u) / σ)."""
    n = z.shape[0] // views
    s = _cos(z)
    w = {}
    for v in range(views):
        for u in range(views):
            if u == v:
                continue
            e = [math.exp(s[v * n + j][u * n + j] / sigma) for j in range(n)]
            for i in range(n):
                w[(v, u, i)] = 2 - n * e[i] / sum(e)
    return w


def dcl_naive(z: Tensor, views: int, tau: float, sigma: float | None = None) -> float:
    """DCL; with ``sigma`` the positive term carries DCLW's weight."""
    n = z.shape[0] // views
    s = _cos(z)
    w = dclw_weights_naive(z, views, sigma) if sigma is not None else None
    total = 0.0
    for a in range(views * n):
        v, i = divmod(a, n)
        neg = sum(math.exp(s[a][k] / tau) for k in range(views * n) if k % n != i)
        terms = []
        for u in range(views):
            if u == v:
                continue
            weight = 1.0 if w is None else w[(v, u, i)]
            terms.append(-weight * s[a][u * n + i] / tau + math.log(neg))
        total += sum(terms) / len(terms)
    return total / (views * n)


def _content(views: int, n: int, mix_view: int, partner: list[int], lam: list[float]) -> list[dict[int, float]]:
    """Which images each row's picture is made of: view m of image j is λ_j of j, 1-λ_j of π(j)."""
    out = []
    for a in range(views * n):
        v, j = divmod(a, n)
        c = {j: 1.0}
        if v == mix_view:
            c = {j: lam[j]}
            c[partner[j]] = c.get(partner[j], 0.0) + 1 - lam[j]
        out.append(c)
    return out


def _overlaps(c: list[dict[int, float]], a: int, views: int, n: int) -> tuple[list[float], set[int]]:
    """Content shared by anchor a with every candidate, and the candidates of other views sharing any."""
    overlap = [sum(c[a].get(k, 0.0) * w for k, w in c[b].items()) for b in range(views * n)]
    return overlap, {b for b in range(views * n) if b // n != a // n and overlap[b] > 0}


def mixed_naive(
    z: Tensor, views: int, tau: float, mix_view: int, partner: list[int], lam: list[float], decoupled: bool
) -> float:
    """Soft-target NT-Xent (``decoupled=False``) or DCL, from the content overlap of the pictures.

    Target of anchor a on candidate b = Σ_img content_a[img]·content_b[img], normalised over the
    candidates of each other view; DCL leaves every candidate with a non-zero target out of the
    denominator.
    """
    n = z.shape[0] // views
    s = _cos(z)
    c = _content(views, n, mix_view, partner, lam)
    total = 0.0
    for a in range(views * n):
        v = a // n
        overlap, positives = _overlaps(c, a, views, n)
        if decoupled:
            denom = sum(math.exp(s[a][k] / tau) for k in range(views * n) if k != a and k not in positives)
        else:
            denom = sum(math.exp(s[a][k] / tau) for k in range(views * n) if k != a)
        terms = 0.0
        for u in range(views):
            if u == v:
                continue
            cols = range(u * n, (u + 1) * n)
            norm = sum(overlap[b] for b in cols)
            terms += sum(overlap[b] / norm * -(s[a][b] / tau - math.log(denom)) for b in cols if overlap[b] > 0)
        total += terms / (views - 1)
    return total / (views * n)


def mixed_hcl_naive(
    z: Tensor, views: int, tau: float, beta: float, tau_plus: float, mix_view: int, partner: list[int], lam: list[float]
) -> float:
    """HCL with soft positives: the positive logit of view u is the overlap-weighted mean of the
    logits of u's candidates sharing content with the anchor; every such candidate leaves the
    negatives, which are reweighted (w ∝ e^{β l}, mean 1) and debiased as in HCL."""
    n = z.shape[0] // views
    s = _cos(z)
    c = _content(views, n, mix_view, partner, lam)
    total = 0.0
    for a in range(views * n):
        v = a // n
        overlap, positives = _overlaps(c, a, views, n)
        negs = [s[a][k] / tau for k in range(views * n) if k != a and k not in positives]
        imp = [math.exp(beta * x) for x in negs]
        reweighted = sum(w * math.exp(x) for w, x in zip(imp, negs, strict=True)) / (sum(imp) / len(negs))
        terms = 0.0
        for u in range(views):
            if u == v:
                continue
            cols = range(u * n, (u + 1) * n)
            norm = sum(overlap[b] for b in cols)
            p = sum(overlap[b] / norm * s[a][b] / tau for b in cols if overlap[b] > 0)
            ng = max((reweighted - tau_plus * len(negs) * math.exp(p)) / (1 - tau_plus), len(negs) * math.exp(-1 / tau))
            terms += -math.log(math.exp(p) / (math.exp(p) + ng))
        total += terms / (views - 1)
    return total / (views * n)
