"""Decoupled Contrastive Learning loss (Yeh et al., ECCV 2022)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from selfsup.losses._pairs import MASK_VALUE, Pairs, contrastive_pairs


class DCL(nn.Module):
    """NT-Xent with the positive removed from the denominator.

    L_i = -w_i·s(z_i¹, z_i²)/τ + log Σ_{l∈{1,2}, j≠i} exp(s(z_i¹, z_j^l)/τ), symmetrised over
    the two directions (a mean over all V*B anchors). With V > 2 views the positive terms of
    an anchor are averaged and *all* its positives are removed from the denominator.
    Plain DCL has w_i = 1; ``DCLW`` overrides :meth:`positive_weights`.

    Args:
        temperature: τ.
        gather_distributed: take negatives from every DDP rank (with gradient).
    """

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = True) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    def positive_weights(self, p: Pairs, views: int) -> Tensor | None:
        """Weights of the positive terms, (V*B, V*N) aligned with ``p.pos``; None means 1."""
        return None

    def forward(self, z: Tensor, views: int = 2) -> Tensor:
        """Loss of embeddings ``z`` (V*B, D), view-major; returns a scalar."""
        p = contrastive_pairs(z, views, self.temperature, self.gather_distributed)
        neg_logits = p.logits.masked_fill(p.pos, MASK_VALUE)  # decoupling: no positive below
        log_denom = torch.logsumexp(neg_logits, dim=1)  # (V*B,)
        pos_terms = p.sim / self.temperature * p.pos
        w = self.positive_weights(p, views)
        if w is not None:
            pos_terms = pos_terms * w
        pos_logit = pos_terms.sum(dim=1) / (views - 1)
        return (log_denom - pos_logit).mean()
