"""Alignment and uniformity of L2-normalised embeddings (Wang & Isola, ICML 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def alignment(x: Tensor, y: Tensor, alpha: float = 2.0) -> Tensor:
    """E ‖x̂ − ŷ‖^α over positive pairs (rows of ``x`` and ``y``); lower is better aligned.

    Args:
        x: (N, D) embeddings of one view. y: (N, D) embeddings of the other view.
        alpha: exponent α.

    Example:
        >>> from selfsup.metrics import alignment
        >>> x = torch.randn(8, 16)
        >>> round(alignment(x, 2 * x).item(), 2), round(alignment(x, -x).item(), 2)  # same, opposite directions
        (0.0, 4.0)
    """
    return (F.normalize(x, dim=1) - F.normalize(y, dim=1)).norm(dim=1).pow(alpha).mean()


def uniformity(x: Tensor, t: float = 2.0) -> Tensor:
    """log E exp(−t ‖x̂_i − x̂_j‖²) over all pairs i < j; lower is more uniform on the sphere.

    Args:
        x: (N, D) embeddings, N ≥ 2.
        t: the Gaussian potential's scale.

    Example:
        >>> from selfsup.metrics import uniformity
        >>> round(uniformity(torch.eye(16)).item(), 2)  # orthogonal: every squared distance 2, log e^(-2·2)
        -4.0
        >>> uniformity(torch.ones(8, 16)).item()  # every embedding alike: the maximum, log 1
        0.0
    """
    sq = torch.pdist(F.normalize(x, dim=1), p=2).pow(2)
    return sq.mul(-t).exp().mean().log()
