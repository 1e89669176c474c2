"""NT-Xent / InfoNCE loss of SimCLR (Chen et al., ICML 2020)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from selfsup.losses._contrastive import ContrastiveLoss
from selfsup.losses._pairs import Pairs


class NTXent(ContrastiveLoss):
    """Normalised temperature-scaled cross-entropy over all 2N (V*N) views.

    ℓ(i, p) = -log[exp(s_ip/τ) / Σ_{k≠i} exp(s_ik/τ)], averaged over anchors.
    With V > 2 views, every other view of the same image is a positive and the per-positive
    terms are averaged (SupCon's "L_out" form); the other positives stay in the denominator.
    For V = 2 this is exactly SimCLR's loss with the paper's 1/(2N) normalisation. With a
    method's own candidates (keys from a momentum encoder, a queue of negatives) it is MoCo's
    InfoNCE: -log exp(q·k⁺/τ) / (exp(q·k⁺/τ) + Σ_n exp(q·n/τ)).
    With mixed views (CutMix), each positive term is a soft-target cross-entropy over the
    candidates of that view (``Pairs.targets``); λ = 1 gives the unmixed loss exactly.

    Args:
        temperature: τ.
        gather_distributed: take negatives from every DDP rank (with gradient).
        **options: the hard-negative options ``drop_top_k``, MoCHi's ``mochi_hardest``,
            ``mochi_mixes``, ``mochi_query_mixes``, and feature transformation's ``ft_pos_alpha``,
            ``ft_neg_alpha``, ``ft_normalize`` (:class:`~selfsup.losses._contrastive.ContrastiveLoss`).

    Example:
        >>> from selfsup.losses import NTXent
        >>> loss = NTXent(temperature=0.2)
        >>> z1, z2 = torch.randn(8, 16), torch.randn(8, 16)  # two views' embeddings of 8 images
        >>> loss(torch.cat([z1, z2]), views=2).shape  # rows view-major: every view 0, then every view 1
        torch.Size([])
    """

    def __init__(self, temperature: float = 0.5, gather_distributed: bool = True, **options: Any) -> None:
        super().__init__(temperature, gather_distributed, **options)

    def reduce(self, p: Pairs, views: int) -> Tensor:
        log_denom = torch.logsumexp(p.logits, dim=1)  # (V*B,)
        pos_logit = (p.logits * p.targets).sum(dim=1) / (views - 1)  # mean over positive views
        return (log_denom - pos_logit).mean()
