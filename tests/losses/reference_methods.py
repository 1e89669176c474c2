"""Naive float64 loops of the method losses, one anchor / one matrix entry at a time, written from
the papers' formulas (docs/algorithms.md, Methods). Torch scalars, so autograd gives the gradients."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor


def leaf(*shape: int, seed: int) -> Tensor:
    """A float64 (shape) input that requires grad, from its own seeded generator."""
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)).requires_grad_(True)


def assert_same(got: Tensor, want: Tensor, inputs: list[Tensor]) -> None:
    """Equal values, and equal gradients with respect to every input."""
    assert got.item() == pytest.approx(want.item(), rel=1e-9, abs=1e-10)
    g_got = torch.autograd.grad(got, inputs, retain_graph=True)
    g_want = torch.autograd.grad(want, inputs)
    for a, b in zip(g_got, g_want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def _unit(x: Tensor) -> Tensor:
    return x / x.norm()


def _cos(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum() / (a.norm() * b.norm())


def batch_negative_keys(k: Tensor, v: int, i: int, views: int, batch_negatives: str) -> list[Tensor]:
    """The batch's keys that are negatives of anchor (v, i), unit length, in column order: every
    view of the other images (``all``), their other views only (``other_views``), or none."""
    n = k.shape[0] // views
    return [
        _unit(k[u * n + j])
        for u in range(views)
        for j in range(n)
        if j != i and (batch_negatives == "all" or (batch_negatives == "other_views" and u != v))
    ]


def infonce_keys_naive(
    q: Tensor, k: Tensor, queue: Tensor | None, views: int, tau: float, batch_negatives: str, decoupled: bool
) -> Tensor:
    """MoCo-style InfoNCE: query (v, i) against key (u, i), u ≠ v, as the positive; negatives the
    queue plus, by ``batch_negatives``, the batch's keys: ``all`` (every key but the anchor's own
    view of i and the positives), ``other_views`` (keys of the other views, other images), ``none``.
    Positive terms of one anchor averaged; DCL (``decoupled``) drops them from the denominator."""
    n = q.shape[0] // views
    total = q.new_zeros(())
    for a in range(views * n):
        v, i = divmod(a, n)
        qa = _unit(q[a])
        negs = [] if queue is None else [torch.exp(qa @ _unit(x) / tau) for x in queue]
        negs += [torch.exp(qa @ x / tau) for x in batch_negative_keys(k, v, i, views, batch_negatives)]
        neg = torch.stack(negs).sum()
        pos = [torch.exp(qa @ _unit(k[u * n + i]) / tau) for u in range(views) if u != v]
        # NT-Xent keeps every positive in the denominator; DCL keeps none.
        denom = neg if decoupled else neg + torch.stack(pos).sum()
        total = total + sum(-torch.log(p / denom) for p in pos) / len(pos)
    return total / (views * n)


def byol_naive(p: Tensor, z: Tensor, views: int) -> Tensor:
    """Σ over ordered view pairs v ≠ u of mean_i (2 - 2 cos(p_v,i, z_u,i)), over V - 1."""
    n = p.shape[0] // views
    total = p.new_zeros(())
    for v in range(views):
        for u in range(views):
            if u != v:
                total = total + sum(2 - 2 * _cos(p[v * n + i], z[u * n + i]) for i in range(n)) / n
    return total / (views - 1)


def simsiam_naive(p: Tensor, z: Tensor, views: int) -> Tensor:
    """Mean over ordered view pairs v ≠ u of mean_i -cos(p_v,i, z_u,i)."""
    n = p.shape[0] // views
    total = p.new_zeros(())
    for v in range(views):
        for u in range(views):
            if u != v:
                total = total - sum(_cos(p[v * n + i], z[u * n + i]) for i in range(n)) / n
    return total / (views * (views - 1))


def _standardised_column(x: Tensor, d: int, eps: float) -> Tensor:
    col = x[:, d]
    mean = col.sum() / col.shape[0]
    var = ((col - mean) ** 2).sum() / col.shape[0]
    return (col - mean) / torch.sqrt(var + eps)


def barlow_naive(z: Tensor, views: int, lambd: float, eps: float = 1e-5) -> Tensor:
    """C_ij = Σ_b a_bi c_bj / N with a, c the two views standardised per dimension;
    Σ_i (1 - C_ii)² + λ Σ_{i≠j} C_ij², averaged over view pairs."""
    n = z.shape[0] // views
    dim = z.shape[1]
    cols = [[_standardised_column(z[v * n : (v + 1) * n], d, eps) for d in range(dim)] for v in range(views)]
    total, pairs = z.new_zeros(()), 0
    for v in range(views):
        for u in range(v + 1, views):
            loss = z.new_zeros(())
            for i in range(dim):
                for j in range(dim):
                    c = (cols[v][i] * cols[u][j]).sum() / n
                    loss = loss + ((1 - c) ** 2 if i == j else lambd * c**2)
            total, pairs = total + loss, pairs + 1
    return total / pairs


def vicreg_naive(z: Tensor, views: int, lam: float, mu: float, nu: float, eps: float = 1e-4) -> Tensor:
    """The paper's Algorithm 1, entry by entry, averaged over view pairs."""
    n = z.shape[0] // views
    dim = z.shape[1]

    def var_cov(x: Tensor) -> tuple[Tensor, Tensor]:
        means = [x[:, d].sum() / n for d in range(dim)]
        std = [torch.sqrt(((x[:, d] - means[d]) ** 2).sum() / (n - 1) + eps) for d in range(dim)]
        var = sum(torch.relu(1 - s) for s in std) / dim
        cov = x.new_zeros(())
        for i in range(dim):
            for j in range(dim):
                if i != j:
                    c = ((x[:, i] - means[i]) * (x[:, j] - means[j])).sum() / (n - 1)
                    cov = cov + c**2
        return var, cov / dim

    total, pairs = z.new_zeros(()), 0
    for v in range(views):
        for u in range(v + 1, views):
            a, b = z[v * n : (v + 1) * n], z[u * n : (u + 1) * n]
            inv = sum(((a[i, d] - b[i, d]) ** 2) for i in range(n) for d in range(dim)) / (n * dim)
            (va, ca), (vb, cb) = var_cov(a), var_cov(b)
            total = total + lam * inv + mu * (va / 2 + vb / 2) + nu * (ca + cb)
            pairs += 1
    return total / pairs
