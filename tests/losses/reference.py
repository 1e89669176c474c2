"""Naive per-anchor loop implementations of the losses, written straight from SPEC.md."""

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
