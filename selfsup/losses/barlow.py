"""Barlow Twins' redundancy-reduction loss (Zbontar et al., ICML 2021)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from selfsup.losses._pairs import gather_views
from selfsup.schema import NonNegative


def standardise(z: Tensor, eps: float = 1e-5) -> Tensor:
    """(N, D) -> each column minus its mean, over its std (biased, as BatchNorm in training mode)."""
    return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + eps)


class BarlowTwinsLoss(nn.Module):
    """L = Σ_i (1 - C_ii)² + λ Σ_{i≠j} C_ij², C = BN(z¹)ᵀ BN(z²) / N over the global batch.

    With V > 2 views the loss is averaged over the pairs of views. Under DDP every rank gathers
    the global batch (with gradient) and computes the same loss, as one process would.

    Args:
        lambd: λ, the off-diagonal weight (5e-3 in the paper).
        gather_distributed: batch statistics over every DDP rank's embeddings.

    Example:
        >>> from selfsup.losses import BarlowTwinsLoss
        >>> loss = BarlowTwinsLoss(lambd=5e-3)
        >>> z = torch.randn(2 * 8, 16)  # 2 views of 8 images, view-major
        >>> loss(z, views=2).shape
        torch.Size([])
    """

    def __init__(self, lambd: NonNegative = 5e-3, gather_distributed: bool = True) -> None:
        super().__init__()
        if lambd < 0:
            raise ValueError(f"lambd must be >= 0, got {lambd}")
        self.lambd = lambd
        self.gather_distributed = gather_distributed

    def forward(self, z: Tensor, views: int = 2) -> Tensor:
        """Embeddings ``z`` (V*B, D), view-major; a scalar."""
        if views < 2 or z.shape[0] % views:
            raise ValueError(f"z must be (views*batch, dim) with views >= 2; got {tuple(z.shape)}, {views}")
        z_all = gather_views(z, views, self.gather_distributed)  # (V, N, D), with gradient
        n = z_all.shape[1]
        zs = [standardise(z_all[v]) for v in range(views)]
        total = z.new_zeros(())
        pairs = 0
        for v in range(views):
            for u in range(v + 1, views):
                c = zs[v].T @ zs[u] / n  # (D, D)
                on = (torch.diagonal(c) - 1).pow(2).sum()
                off = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
                total = total + on + self.lambd * off
                pairs += 1
        return total / pairs
