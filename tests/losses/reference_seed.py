"""Naive float64 loops of the seed papers' objectives, one anchor / one pair at a time, written from
the formulas in docs/algorithms.md (HCL: Robinson et al. 2021; alignment and uniformity: Wang and
Isola 2020). Torch scalars, so autograd gives the gradients."""

from __future__ import annotations

import math
from collections.abc import Callable

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


def isogclr_naive(
    z: Tensor, index: list[int], views: int, state: dict[str, list[float]], **hp: float
) -> tuple[Tensor, Tensor, dict[str, list[float]]]:
    """iSogCLR (Qiu et al. 2023) one step, one anchor at a time. Anchor (v, i) of image index[i]
    with temperature τ: negatives s_n (every view of the other images), s⁺ the mean cosine to i's
    other views; g = mean_n e^{s_n/τ}, u_a = g (image unseen, u = 0) or (1-γ)u + γg,
    w_n = e^{s_n/τ}/u_a; the surrogate mean_n w_n s_n - s⁺ (w detached), the value
    τ (log mean_n e^{(s_n - s⁺)/τ} + ρ), ∂τ = log u_a + ρ - mean_n w_n s_n/τ. Per image: u ← mean
    over views of u_a, m ← (1-β)m + β clip(mean ∂τ), τ ← clip(τ - η m, τ_min, τ_max).
    Returns (value, surrogate) averaged over anchors and the new state."""
    n = z.shape[0] // views
    new = {k: list(v) for k, v in state.items()}
    value, surrogate = z.new_zeros(()), z.new_zeros(())
    per_image: dict[int, list[tuple[float, float]]] = {}
    for a in range(views * n):
        v, i = divmod(a, n)
        r = index[i]
        tau, u_old = state["tau"][r], state["u"][r]
        za = _unit(z[a])
        negs = [za @ x for x in batch_negative_keys(z, v, i, views, "all")]
        num = [float(s.detach()) for s in negs]  # the detached estimates and weights
        s_pos = sum(za @ _unit(z[u * n + i]) for u in range(views) if u != v) / (views - 1)
        g = sum(math.exp(s / tau) for s in num) / len(negs)
        u_a = g if u_old == 0 else (1 - hp["gamma"]) * u_old + hp["gamma"] * g
        w = [math.exp(s / tau) / u_a for s in num]
        surrogate = surrogate + sum(wn * s for wn, s in zip(w, negs, strict=True)) / len(negs) - s_pos
        value = value + tau * (torch.log(sum(torch.exp((s - s_pos) / tau) for s in negs) / len(negs)) + hp["rho"])
        d_tau = math.log(u_a) + hp["rho"] - sum(wn * s / tau for wn, s in zip(w, num, strict=True)) / len(negs)
        per_image.setdefault(r, []).append((u_a, d_tau))
    for r, pairs in per_image.items():
        new["u"][r] = sum(p[0] for p in pairs) / len(pairs)
        d_tau = max(-hp["grad_clip"], min(hp["grad_clip"], sum(p[1] for p in pairs) / len(pairs)))
        m = (1 - hp["tau_momentum"]) * state["tau_grad"][r] + hp["tau_momentum"] * d_tau
        new["tau_grad"][r] = m
        new["tau"][r] = max(hp["tau_min"], min(hp["tau_max"], state["tau"][r] - hp["tau_lr"] * m))
    return value / (views * n), surrogate / (views * n), new


def infonce_ft_naive(
    q: Tensor,
    k: Tensor | None,
    queue: Tensor | None,
    tau: float,
    lam: float,
    mu: float | None,
    perm: list[int] | None = None,
    queue_perm: list[int] | None = None,
    batch_negatives: str = "all",
    normalize: bool = False,
) -> Tensor:
    """NT-Xent/InfoNCE, two views, with feature transformation (Zhu et al. 2021): anchor (v, i)
    and its positive (1 - v, i) become q̂ = λ q + (1 - λ) k and k̂ = λ k + (1 - λ) q (unit inputs;
    without keys, the other view is both); each negative n_j is replaced by μ n_j + (1 - μ) n_π(j)
    (π = ``perm`` over the batch's images, ``queue_perm`` over the queue); ``normalize``
    re-normalises the transformed vectors. Positives stay in the denominator."""
    unit = _unit if normalize else (lambda x: x)
    n = q.shape[0] // 2
    qs = [_unit(x) for x in q]
    ks = qs if k is None else [_unit(x) for x in k]
    # Extrapolate each image's two views against each other's partner.
    qh = [unit(lam * qs[v * n + i] + (1 - lam) * ks[(1 - v) * n + i]) for v in range(2) for i in range(n)]
    kh = (
        qh
        if k is None
        else [unit(lam * ks[v * n + i] + (1 - lam) * qs[(1 - v) * n + i]) for v in range(2) for i in range(n)]
    )

    def batch_neg(u: int, j: int) -> Tensor:
        if mu is None or perm is None:
            return kh[u * n + j]
        return unit(mu * kh[u * n + j] + (1 - mu) * kh[u * n + perm[j]])

    queued: list[Tensor] = []
    if queue is not None:
        qu = [_unit(x) for x in queue]
        queued = (
            qu
            if mu is None or queue_perm is None
            else [unit(mu * qu[m] + (1 - mu) * qu[queue_perm[m]]) for m in range(len(qu))]
        )
    total = q.new_zeros(())
    for a in range(2 * n):
        v, i = divmod(a, n)
        negs = [
            batch_neg(u, j)
            for u in range(2)
            for j in range(n)
            if j != i and (batch_negatives == "all" or (batch_negatives == "other_views" and u != v))
        ] + queued
        pos = qh[a] @ kh[(1 - v) * n + i] / tau
        denom = torch.exp(pos) + sum(torch.exp(qh[a] @ x / tau) for x in negs)
        total = total - torch.log(torch.exp(pos) / denom)
    return total / (2 * n)


def amcl_naive(
    z: Tensor, views: int, phi: Callable[[Tensor], Tensor], tau_min: float, tau_max: float, beta: float
) -> Tensor:
    """AMCL (Wang et al. 2024) as selfsup defines it, one pair at a time: unit a, c;
    τ = τ_min + (τ_max − τ_min) sigmoid(−φ(a)·φ(c)); per anchor −mean_p s_p/τ_p + log Σ_{k≠a} e^{s_k/τ_k}
    + β mean_{k≠a} ((D/2) log τ_k + 1/τ_k); averaged over anchors."""
    n, d = z.shape[0] // views, z.shape[1]
    units = [_unit(x) for x in z]
    total = z.new_zeros(())
    for a in range(views * n):
        v, i = divmod(a, n)
        logits, omegas, pos = [], [], []
        for c in range(views * n):
            if c == a:
                continue
            tau = tau_min + (tau_max - tau_min) * torch.sigmoid(-(phi(units[a]) @ phi(units[c])))
            logit = units[a] @ units[c] / tau
            logits.append(logit)
            omegas.append(d / 2 * torch.log(tau) + 1 / tau)
            if c % n == i:
                pos.append(logit)
        lse = torch.log(sum(torch.exp(x) for x in logits))
        total = total + lse - sum(pos) / len(pos) + beta * sum(omegas) / len(omegas)
    return total / (views * n)
