"""Decoupled Contrastive Learning loss (Yeh et al., ECCV 2022)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from selfsup.losses._contrastive import ContrastiveLoss
from selfsup.losses._pairs import MASK_VALUE, Pairs


class DCL(ContrastiveLoss):
    """NT-Xent with the positive removed from the denominator.

    L_i = -w_i·s(z_i¹, z_i²)/τ + log Σ_{l∈{1,2}, j≠i} exp(s(z_i¹, z_j^l)/τ), symmetrised over
    the two directions (a mean over all V*B anchors). With V > 2 views the positive terms of
    an anchor are averaged and *all* its positives are removed from the denominator.
    Plain DCL has w_i = 1; ``DCLW`` overrides :meth:`positive_weights`.

    With mixed views (CutMix) an anchor has soft positives: for each other view, weights that
    sum to 1 over the (up to two) candidates sharing its content. The positive term is the
    weighted sum of their logits, and *every* candidate with a non-zero weight leaves the
    denominator, which then holds only candidates sharing no content with the anchor. λ = 1
    gives the unmixed loss exactly.

    Args:
        temperature: τ.
        gather_distributed: take negatives from every DDP rank (with gradient).
        **options: the hard-negative options ``drop_top_k``, MoCHi's ``mochi_hardest``,
            ``mochi_mixes``, ``mochi_query_mixes``, and feature transformation's ``ft_pos_alpha``,
            ``ft_neg_alpha``, ``ft_normalize`` (:class:`~selfsup.losses._contrastive.ContrastiveLoss`).

    Example:
        >>> from selfsup.losses import DCL
        >>> loss = DCL(temperature=0.1)
        >>> z = torch.randn(2 * 8, 16)  # 2 views of 8 images, view-major
        >>> loss(z, views=2).shape
        torch.Size([])
    """

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = True, **options: Any) -> None:
        super().__init__(temperature, gather_distributed, **options)

    def positive_weights(self, p: Pairs, views: int) -> Tensor | None:
        """Weight of each anchor's positive term per view, (V*B, V); None means 1."""
        return None

    def reduce(self, p: Pairs, views: int) -> Tensor:
        neg_logits = p.logits.masked_fill(p.pos, MASK_VALUE)  # decoupling: no positive below
        log_denom = torch.logsumexp(neg_logits, dim=1)  # (V*B,)
        nb = p.batch_columns  # positives are among the batch's candidates, never the extra negatives
        pos_terms = p.sim[:, :nb] / self.temperature * p.targets[:, :nb]
        w = self.positive_weights(p, views)
        if w is not None:  # one weight per (anchor, view), spread over that view's candidates
            pos_terms = pos_terms * w.repeat_interleave(p.keys_all.shape[1], dim=1)
        pos_logit = pos_terms.sum(dim=1) / (views - 1)
        return (log_denom - pos_logit).mean()
