"""SimSiam's symmetrised negative cosine (Chen and He, CVPR 2021)."""

from __future__ import annotations

from torch import Tensor, nn

from selfsup.losses.byol import cross_view_cosine


class SimSiamLoss(nn.Module):
    """L = -Σ_{v≠u} mean_i cos(p_v,i, z_u,i) / (V (V - 1)).

    For two views this is the paper's D(p1, z2)/2 + D(p2, z1)/2 with D = -cos; the method passes
    ``z`` detached (the stop-gradient).

    Example:
        >>> from selfsup.losses import SimSiamLoss
        >>> z = torch.randn(2 * 8, 16)  # the projections of 2 views of 8 images, view-major
        >>> p = torch.randn(2 * 8, 16)  # the predictor's outputs for the same views
        >>> SimSiamLoss()(p, z.detach(), views=2).shape  # the stop-gradient: z detached
        torch.Size([])
    """

    def forward(self, p: Tensor, z: Tensor, views: int = 2) -> Tensor:
        """Predictions ``p`` and (detached) projections ``z``, both (V*B, D); a scalar."""
        return -cross_view_cosine(p, z, views).sum() / (views * (views - 1))
