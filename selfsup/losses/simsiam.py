"""SimSiam's symmetrised negative cosine (Chen and He, CVPR 2021)."""

from __future__ import annotations

from torch import Tensor, nn

from selfsup.losses.byol import cross_view_cosine


class SimSiamLoss(nn.Module):
    """L = -Σ_{v≠u} mean_i cos(p_v,i, z_u,i) / (V (V - 1)).

    For two views this is the paper's D(p1, z2)/2 + D(p2, z1)/2 with D = -cos; the method passes
    ``z`` detached (the stop-gradient).
    """

    def forward(self, p: Tensor, z: Tensor, views: int = 2) -> Tensor:
        """Predictions ``p`` and (detached) projections ``z``, both (V*B, D); a scalar."""
        return -cross_view_cosine(p, z, views).sum() / (views * (views - 1))
