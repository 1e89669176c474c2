"""The Kozachenko-Leonenko entropy regulariser (KoLeo; Sablayrolles et al., ICLR 2019), as DINOv2
adds it to its class tokens (Oquab et al., TMLR 2024; official code
github.com/facebookresearch/dinov2, ``KoLeoLoss``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from selfsup.losses._pairs import gather_with_grad


def koleo(x: Tensor, eps: float = 1e-8) -> Tensor:
    """``-(1/n) Σ_i log(‖u_i − u_j(i)‖ + eps)`` over the n rows of ``x`` (n, D), L2-normalised to
    u, j(i) the row nearest to u_i (largest dot product, i excluded): small when every row has
    a neighbour close by, so minimising it spreads the rows over the sphere. A scalar.

    Under DDP the rows are the global batch's (every rank's, gathered with their gradients), so
    two processes equal one; DINOv2's are each GPU's own."""
    u = F.normalize(torch.cat(gather_with_grad(x)), p=2, dim=-1, eps=eps)
    with torch.no_grad():
        dots = u @ u.t()
        dots.fill_diagonal_(-2.0)  # below any cosine: a row is not its own neighbour
        nearest = dots.argmax(1)
    distances = F.pairwise_distance(u, u[nearest], p=2, eps=eps)
    return -torch.log(distances + eps).mean()
