"""BYOL's normalised MSE (Grill et al., NeurIPS 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def cross_view_cosine(p: Tensor, z: Tensor, views: int) -> Tensor:
    """Mean cosine of each view's ``p`` against every *other* view's ``z`` of the same image.

    Args:
        p: (V*B, D) predictions, view-major.
        z: (V*B, D) targets, view-major (detached by the caller where the method stops gradients).
        views: V, at least 2.

    Returns:
        (V, V) matrix of batch-mean cosines, entry (v, u) = mean_i cos(p_v,i, z_u,i); the
        diagonal (same view) is zero and never used.
    """
    if views < 2 or p.shape != z.shape or p.shape[0] % views:
        raise ValueError(f"p and z must both be (views*batch, dim) with views >= 2; got {tuple(p.shape)}, {views}")
    pn = F.normalize(p, dim=1).view(views, -1, p.shape[1])
    zn = F.normalize(z, dim=1).view(views, -1, z.shape[1])
    cos = (pn[:, None] * zn[None, :]).sum(-1).mean(-1)  # (V, V)
    return cos * (1 - torch.eye(views, dtype=cos.dtype, device=cos.device))


class BYOLLoss(nn.Module):
    """L = Σ_{v≠u} mean_i (2 - 2 cos(p_v,i, z'_u,i)) / (V - 1).

    For two views this is the paper's symmetrised L + L̃: each view's prediction against the
    target's projection of the other view, summed over both directions.

    Example:
        >>> from selfsup.losses import BYOLLoss
        >>> p = torch.randn(2 * 8, 16)  # the online predictor's outputs, 2 views of 8 images
        >>> z = torch.randn(2 * 8, 16)  # the momentum target's projections of the same views
        >>> BYOLLoss()(p, z.detach(), views=2).shape
        torch.Size([])
    """

    def forward(self, p: Tensor, z: Tensor, views: int = 2) -> Tensor:
        """Online predictions ``p`` and target projections ``z``, both (V*B, D); a scalar."""
        cos = cross_view_cosine(p, z, views)
        return (2 * views * (views - 1) - 2 * cos.sum()) / (views - 1)
