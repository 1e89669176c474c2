"""Alignment and uniformity as the objective (Wang and Isola, ICML 2020)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from selfsup.losses._pairs import gather_views
from selfsup.metrics.alignment import alignment, uniformity
from selfsup.schema import NonNegative, Positive


class AlignUniform(nn.Module):
    """w_a · align + w_u · uniform on L2-normalised embeddings.

    align = E ‖ẑ¹ - ẑ²‖^α over positive pairs, uniform = log E exp(-t ‖ẑ_i - ẑ_j‖²) over all
    pairs of one view's embeddings, averaged over the views (the paper's
    ``align_loss(x, y) + (uniform_loss(x) + uniform_loss(y)) / 2``; α 2, t 2, both weights 1).
    With V > 2 views alignment is averaged over the pairs of views. Under DDP the terms are
    computed over the global batch (gathered with gradient), as one process would; the paper's
    code computes them per GPU.

    Args:
        alpha: α ≥ 1, the alignment exponent.
        t: the uniformity potential's scale.
        align_weight: w_a.
        uniform_weight: w_u.
        gather_distributed: the global batch (every DDP rank's embeddings) in both terms.

    Example:
        >>> from selfsup.losses import AlignUniform
        >>> loss = AlignUniform(alpha=2.0, t=2.0)
        >>> z = torch.randn(2 * 8, 16)  # 2 views of 8 images, view-major
        >>> loss(z, views=2).shape
        torch.Size([])
    """

    def __init__(
        self,
        alpha: Positive = 2.0,
        t: Positive = 2.0,
        align_weight: NonNegative = 1.0,
        uniform_weight: NonNegative = 1.0,
        gather_distributed: bool = True,
    ) -> None:
        super().__init__()
        if alpha < 1 or t <= 0:  # α < 1: ‖x - y‖^α has no gradient where the views coincide
            raise ValueError(f"align_uniform needs alpha >= 1 and t > 0; got alpha={alpha}, t={t}")
        self.alpha, self.t = alpha, t
        self.align_weight, self.uniform_weight = align_weight, uniform_weight
        self.gather_distributed = gather_distributed

    def forward(self, z: Tensor, views: int = 2) -> Tensor:
        """Embeddings ``z`` (V*B, D), view-major; a scalar."""
        if views < 2 or z.ndim != 2 or z.shape[0] % views:
            raise ValueError(f"z must be (views*batch, dim) with views >= 2; got {tuple(z.shape)}, views={views}")
        z_all = gather_views(z, views, self.gather_distributed)  # (V, N, D)
        if z_all.shape[1] < 2:
            raise ValueError("uniformity needs at least 2 images in the batch")
        pairs = [(v, u) for v in range(views) for u in range(v + 1, views)]
        align = torch.stack([alignment(z_all[v], z_all[u], self.alpha) for v, u in pairs]).mean()
        uniform = torch.stack([uniformity(z_all[v], self.t) for v in range(views)]).mean()
        return self.align_weight * align + self.uniform_weight * uniform
