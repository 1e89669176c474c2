"""VICReg's variance-invariance-covariance loss (Bardes, Ponce and LeCun, ICLR 2022)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.losses._pairs import gather_views
from selfsup.schema import NonNegative, Positive


class VICRegLoss(nn.Module):
    """λ·inv + μ·var + ν·cov over the global batch (the paper's Algorithm 1).

    - inv = mean over images and dims of (z¹ - z²)²;
    - var = Σ_branches mean_d relu(1 - sqrt(Var(z_d) + ε)) / 2 (unbiased variance, ε 1e-4);
    - cov = Σ_branches Σ_{i≠j} Cov(z)_ij² / D.

    With V > 2 views the loss is averaged over the pairs of views. Under DDP every rank gathers
    the global batch (with gradient) and computes the same loss, as one process would.

    Args:
        invariance: λ (25).
        variance: μ (25).
        covariance: ν (1).
        eps: ε inside the square root.
        gather_distributed: batch statistics over every DDP rank's embeddings.

    Example:
        >>> from selfsup.losses import VICRegLoss
        >>> loss = VICRegLoss(invariance=25.0, variance=25.0, covariance=1.0)
        >>> z = torch.randn(2 * 8, 16)  # 2 views of 8 images, view-major
        >>> loss(z, views=2).shape
        torch.Size([])
    """

    def __init__(
        self,
        invariance: NonNegative = 25.0,
        variance: NonNegative = 25.0,
        covariance: NonNegative = 1.0,
        eps: Positive = 1e-4,
        gather_distributed: bool = True,
    ) -> None:
        super().__init__()
        self.invariance, self.variance, self.covariance, self.eps = invariance, variance, covariance, eps
        self.gather_distributed = gather_distributed

    def _var_cov(self, z: Tensor) -> tuple[Tensor, Tensor]:
        n, d = z.shape
        z = z - z.mean(0)
        std = torch.sqrt(z.var(0) + self.eps)
        cov = z.T @ z / (n - 1)
        off = cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()
        return F.relu(1 - std).mean(), off / d

    def forward(self, z: Tensor, views: int = 2) -> Tensor:
        """Embeddings ``z`` (V*B, D), view-major; a scalar."""
        if views < 2 or z.shape[0] % views:
            raise ValueError(f"z must be (views*batch, dim) with views >= 2; got {tuple(z.shape)}, {views}")
        z_all = gather_views(z, views, self.gather_distributed)  # (V, N, D), with gradient
        stats = [self._var_cov(z_all[v]) for v in range(views)]
        total = z.new_zeros(())
        pairs = 0
        for v in range(views):
            for u in range(v + 1, views):
                inv = F.mse_loss(z_all[v], z_all[u])
                var = (stats[v][0] + stats[u][0]) / 2
                cov = stats[v][1] + stats[u][1]
                total = total + self.invariance * inv + self.variance * var + self.covariance * cov
                pairs += 1
        return total / pairs
