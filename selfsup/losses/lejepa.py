"""LeJEPA's objective (Balestriero and LeCun 2025): the views' prediction of the global views' mean
plus SIGReg, a sliced Epps-Pulley test of the embeddings against an isotropic Gaussian."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from selfsup.losses._pairs import gather_views
from selfsup.schema import PositiveInt, Probability


class LeJEPALoss(nn.Module):
    """``(1 - λ) · pred + λ · SIGReg`` (the paper's Algorithm 2; official code
    github.com/rbalestr-lab/lejepa, ``lejepa/univariate/epps_pulley.py``,
    ``lejepa/multivariate/slicing.py``).

    - pred: the mean over the V views, the images and the K dimensions of
      ``(μ_i - z_{v,i})²``, with μ_i the mean of image i's global views (no stop-gradient).
    - SIGReg of one view's N embeddings: over S random unit directions a (drawn anew at every call),
      the Epps-Pulley statistic of the projections x = aᵀz against N(0, 1),
      ``N ∫ |φ̂(t) - φ(t)|² φ(t) dt`` with the empirical characteristic function
      φ̂(t) = mean_j exp(i t x_j) and φ(t) = exp(-t²/2), integrated by the trapezoid rule on
      ``n_points`` knots of [0, t_max] and doubled (the integrand is even), as the official code;
      averaged over the directions, then over the views.

    The batch is every DDP rank's (gathered with gradient), so each rank computes the loss of the
    global batch, as one process would. The directions come from a generator seeded with the loss's
    call count (a buffer, in every checkpoint): the same on every rank, and a resumed run draws what
    the uninterrupted one would.

    Args:
        lambd: λ (the paper recommends 0.05).
        num_slices: S, the random directions (the paper: 1024).
        t_max: the integration range's end (the official code: 3; the paper's Algorithm 1: 5).
        n_points: the knots of the trapezoid rule (17).
        gather_distributed: the batch over every DDP rank's embeddings.

    Example:
        >>> from selfsup.losses.lejepa import LeJEPALoss
        >>> z = torch.randn(4 * 8, 16)  # 4 views (2 global) of 8 images, view-major
        >>> LeJEPALoss(num_slices=64)(z, views=4, global_views=2).shape
        torch.Size([])
    """

    calls: Tensor
    t: Tensor
    phi: Tensor
    weights: Tensor

    def __init__(
        self,
        lambd: Probability = 0.05,
        num_slices: PositiveInt = 1024,
        t_max: float = 3.0,
        n_points: PositiveInt = 17,
        gather_distributed: bool = True,
    ) -> None:
        super().__init__()
        if t_max <= 0 or n_points < 2:
            raise ValueError(f"need t_max > 0 and n_points >= 2; got t_max={t_max}, n_points={n_points}")
        self.lambd, self.num_slices, self.gather_distributed = lambd, num_slices, gather_distributed
        t = torch.linspace(0, t_max, n_points, dtype=torch.float64)
        weights = torch.full((n_points,), 2 * t_max / (n_points - 1), dtype=torch.float64)
        weights[[0, -1]] /= 2
        self.register_buffer("t", t, persistent=False)
        self.register_buffer("phi", torch.exp(-(t**2) / 2), persistent=False)
        self.register_buffer("weights", weights * torch.exp(-(t**2) / 2), persistent=False)
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def directions(self, dim: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        """(dim, S) unit directions of this call, from a generator seeded with the call count."""
        g = torch.Generator().manual_seed(int(self.calls))
        a = torch.randn(dim, self.num_slices, generator=g, dtype=torch.float64)
        return (a / a.norm(dim=0, keepdim=True)).to(device=device, dtype=dtype)

    def sigreg(self, z: Tensor, a: Tensor) -> Tensor:
        """SIGReg of the (N, K) embeddings ``z`` along the (K, S) directions ``a``."""
        x = (z @ a)[..., None] * self.t.to(z.dtype)  # (N, S, T)
        err = (x.cos().mean(0) - self.phi.to(z.dtype)) ** 2 + x.sin().mean(0) ** 2  # (S, T)
        return (err @ self.weights.to(z.dtype) * z.shape[0]).mean()

    def forward(self, z: Tensor, views: int, global_views: int | None = None) -> Tensor:
        """Embeddings ``z`` (V*B, K), view-major, the first ``global_views`` views global (all by
        default); a scalar."""
        g = views if global_views is None else global_views
        if views < 1 or z.shape[0] % views or not 1 <= g <= views:
            raise ValueError(
                f"z must be (views*batch, K) with 1 <= global_views <= views; got {tuple(z.shape)}, {views}, {g}"
            )
        z_all = gather_views(z, views, self.gather_distributed)  # (V, N, K)
        pred = (z_all[:g].mean(0, keepdim=True) - z_all).square().mean()
        a = self.directions(z.shape[1], z.device, z.dtype)
        with torch.no_grad():
            self.calls += 1
        sigreg = torch.stack([self.sigreg(z_all[v], a) for v in range(views)]).mean()
        return (1 - self.lambd) * pred + self.lambd * sigreg
