"""AMCL: NT-Xent with a learned temperature per pair of embeddings, regularised (Wang, Koniusz,
Gedeon and Zheng, "Adaptive Multi-head Contrastive Learning", ECCV 2024)."""

from __future__ import annotations

from collections import deque

import torch
from torch import Tensor, nn

from selfsup.losses._pairs import MASK_VALUE, contrastive_pairs
from selfsup.schema import NonNegative, Positive, PositiveInt


class AMCL(nn.Module):
    """NT-Xent where every (anchor, candidate) pair has its own temperature, plus β Ω(τ).

    For unit embeddings a, c of one head: τ(a, c) = τ_min + (τ_max − τ_min) · sigmoid(−φ(a)·φ(c)),
    φ a small MLP (D → ``hidden`` → D) shared by the heads, whose output layer starts small
    (N(0, 0.01²) weights, zero bias), so every τ starts near (τ_min + τ_max)/2. The loss of anchor i with positive p is

        −s_ip/τ_ip + log Σ_{k≠i} exp(s_ik/τ_ik)  +  β · mean_{k≠i} Ω(τ_ik),   Ω(τ) = (D/2) log τ + 1/τ,

    averaged over anchors (and over the positives with V > 2 views, as NT-Xent). Ω is the
    normaliser of the likelihood of a similarity under a temperature (the paper's maximum-likelihood
    derivation), so it keeps temperatures from running off to the range's ends. Gradients reach
    the embeddings through s/τ and through φ. With β = 0 and φ's output at zero (τ constant) this is
    NT-Xent at τ = (τ_min + τ_max)/2 exactly. With ``head=multi`` the method sums one such loss per
    head (the paper: C = 3 heads), with the one φ.

    What differs from the paper, whose released code is not a faithful reference: the paper's
    table writes the loss linearly (−s⁺/τ⁺ plus the hardest negative's s/τ, its Ω subtracted); here
    the softmax over all candidates is kept and Ω is added for every pair, a proper penalty that
    the τ range alone does not have to bound. τ's range defaults to [0.05, 1.0] instead of the
    code's [1e-5, 2], whose small end overflows float32 logits.

    Args:
        dim: D, the head's embedding width (Ω's D/2 and φ's width).
        hidden: φ's hidden width.
        tau_min: lower end of the temperatures.
        tau_max: upper end.
        beta: β ≥ 0, the weight of Ω (the paper: 0.1).
        gather_distributed: candidates from every DDP rank (with gradient).

    Example:
        >>> from selfsup.losses import AMCL
        >>> loss = AMCL(dim=16)  # dim: the embeddings' width; train loss.parameters() (φ) with the model
        >>> z = torch.randn(2 * 8, 16)  # 2 views of 8 images, view-major
        >>> loss(z, views=2).shape
        torch.Size([])
    """

    def __init__(
        self,
        dim: PositiveInt = 128,
        hidden: PositiveInt = 128,
        tau_min: Positive = 0.05,
        tau_max: Positive = 1.0,
        beta: NonNegative = 0.1,
        gather_distributed: bool = True,
    ) -> None:
        super().__init__()
        if dim < 1 or hidden < 1:
            raise ValueError(f"loss.dim={dim}, loss.hidden={hidden}: expected positive widths")
        if not 0 < tau_min < tau_max:
            raise ValueError(f"loss.tau_min={tau_min}, loss.tau_max={tau_max}: expected 0 < tau_min < tau_max")
        if beta < 0:
            raise ValueError(f"loss.beta={beta}: expected beta >= 0 (the weight of the temperature regulariser)")
        self.dim, self.tau_min, self.tau_max, self.beta = dim, tau_min, tau_max, beta
        self.gather_distributed = gather_distributed
        out = nn.Linear(hidden, dim)  # small, not zero: at zero φ(a)·φ(c) would have no gradient
        nn.init.normal_(out.weight, std=0.01)
        nn.init.zeros_(out.bias)
        self.phi = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), out)
        self._recent: deque[tuple[Tensor, Tensor]] = deque(maxlen=16)

    def temperatures(self, anchors: Tensor, candidates: Tensor) -> Tensor:
        """(R, D) and (C, D) unit embeddings -> (R, C) temperatures in [tau_min, tau_max]."""
        r = self.phi(anchors) @ self.phi(candidates).T
        return self.tau_min + (self.tau_max - self.tau_min) * torch.sigmoid(-r)

    def forward(self, z: Tensor, views: int = 2) -> Tensor:
        """Embeddings ``z`` (V*B, D) of one head, view-major; a scalar."""
        if z.ndim != 2 or z.shape[1] != self.dim:
            raise ValueError(
                f"loss=amcl has loss.dim={self.dim}; got embeddings {tuple(z.shape)} (every head's out_dim must be it)"
            )
        p = contrastive_pairs(z, views, 1.0, self.gather_distributed)
        tau = self.temperatures(p.anchors, p.candidates())  # (V*B, V*N)
        logits = (p.sim / tau).masked_fill(p.masked, MASK_VALUE)
        nt_xent = torch.logsumexp(logits, dim=1) - (logits * p.targets).sum(1) / (views - 1)
        pairs = ~p.masked
        omega = (self.dim / 2) * torch.log(tau) + 1 / tau
        reg = (omega * pairs).sum(1) / pairs.sum(1)
        with torch.no_grad():
            t = tau.detach().float()
            self._recent.append((t[p.targets > 0], t[pairs & (p.targets == 0)]))
        return (nt_xent + self.beta * reg).mean()

    def logged(self) -> dict[str, Tensor]:
        """Quantiles of the positive and negative pairs' temperatures of the recent calls."""
        if not self._recent:
            return {}
        pos = torch.cat([a for a, _ in self._recent])
        neg = torch.cat([b for _, b in self._recent])
        self._recent.clear()
        q = torch.tensor([0.1, 0.5, 0.9], device=pos.device)
        out: dict[str, Tensor] = {}
        for name, t in (("pos", pos), ("neg", neg)):
            t = t[:: -(-t.numel() // 1_000_000)]  # a subsample of at most 1M values
            for label, v in zip(("q10", "median", "q90"), torch.quantile(t, q), strict=True):
                out[f"tau_{name}_{label}"] = v
        return out
