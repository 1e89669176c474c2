"""SwAV's swapped prediction of Sinkhorn-Knopp codes (Caron et al., NeurIPS 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.losses._sinkhorn import sinkhorn
from selfsup.schema import NonNegativeInt, Positive, PositiveInt


class SwAVLoss(nn.Module):
    """Swapped prediction: the codes of each of the first A views (the global ones) are predicted
    from every other view's softmax over the prototypes (the paper's Eq. 1-2; official code
    github.com/facebookresearch/swav, ``main_swav.py``):

    ``L = (1/A) Σ_{a<A} (1/(V-1)) Σ_{v≠a} mean_i -Σ_k q_a,i,k log softmax(c_k·z_v,i / τ)``

    where z are the L2-normalised projections of the V views, c_k the K prototypes (unit rows, a
    linear layer without bias: :meth:`normalize_prototypes` rescales them before each step, as the
    official loop does), and q_a the codes of view a by :func:`sinkhorn` over the global batch,
    without gradient. Rows of a queue (earlier batches' projections of view a) join the Sinkhorn
    problem only, as the official code's ``queue``: more rows make the equal partition over K
    prototypes more precise when batches are small.

    The prototypes are this loss's parameters, trained with the networks.

    Args:
        in_dim: D, the projection's width.
        prototypes: K (the paper: 3,000 on ImageNet).
        temperature: τ of the prediction's softmax (0.1).
        epsilon: ε of Sinkhorn-Knopp (0.05; the official notes suggest 0.03 against a collapse).
        sinkhorn_iterations: rescalings (3).

    Example:
        >>> from selfsup.losses.swav import SwAVLoss
        >>> loss = SwAVLoss(in_dim=16, prototypes=10)
        >>> z = torch.randn(4 * 8, 16)  # 4 views (2 global) of 8 images
        >>> loss(z, views=4, assign=2).shape
        torch.Size([])
    """

    def __init__(
        self,
        in_dim: PositiveInt = 128,
        prototypes: PositiveInt = 3000,
        temperature: Positive = 0.1,
        epsilon: Positive = 0.05,
        sinkhorn_iterations: NonNegativeInt = 3,
    ) -> None:
        super().__init__()
        self.prototypes = nn.Linear(in_dim, prototypes, bias=False)
        self.temperature, self.epsilon, self.sinkhorn_iterations = temperature, epsilon, sinkhorn_iterations

    @torch.no_grad()
    def normalize_prototypes(self) -> None:
        """Rescale each prototype to unit length (before each step)."""
        self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))

    def forward(self, z: Tensor, views: int, assign: int = 2, queue: list[Tensor] | None = None) -> Tensor:
        """Projections ``z`` (V*B, D) of V views, view-major; codes for the first ``assign`` views,
        each with its queue's rows ``queue[a]`` (L, D) (the same on every rank) if given; a scalar."""
        b = z.shape[0] // views
        if z.shape[0] % views or not 1 <= assign <= views or views < 2:
            raise ValueError(f"z must be (views*batch, D) with 1 <= assign <= views, views >= 2; got "
                             f"{tuple(z.shape)}, views={views}, assign={assign}")  # fmt: skip
        if queue is not None and len(queue) != assign:
            raise ValueError(f"queue has {len(queue)} parts for assign={assign} views")
        z = F.normalize(z, dim=1)
        scores = self.prototypes(z)  # (V*B, K)
        log_p = F.log_softmax(scores / self.temperature, dim=1).view(views, b, -1)
        terms = []
        for a in range(assign):
            own = scores[a * b : (a + 1) * b].detach()
            rows = 0
            if queue is not None and queue[a].shape[0]:
                own = torch.cat([self.prototypes(queue[a].to(z.dtype)).detach(), own])
                rows = queue[a].shape[0]
            q = sinkhorn(own, self.epsilon, self.sinkhorn_iterations, shared_rows=rows)[rows:]
            predicted = [-(q * log_p[v]).sum(1).mean() for v in range(views) if v != a]
            terms.append(torch.stack(predicted).sum() / (views - 1))
        return torch.stack(terms).mean()
