"""Hard-negative contrastive loss, HCL (Robinson, Chuang, Sra and Jegelka, ICLR 2021)."""

from __future__ import annotations

import math
from typing import Annotated, Any

import torch
from annotated_types import Interval
from torch import Tensor

from selfsup.losses._contrastive import ContrastiveLoss
from selfsup.losses._pairs import Pairs
from selfsup.schema import NonNegative


class HCL(ContrastiveLoss):
    """NT-Xent whose negatives are reweighted towards the hard ones and debiased.

    For an anchor with positive logit p = s⁺/τ and N negatives with logits l_j = s_j/τ:
    importance weights w_j = exp(β l_j) / mean_k exp(β l_k) (mean 1 over the negatives),
    Ng = max((Σ_j w_j e^{l_j} - τ⁺ N e^{p}) / (1 - τ⁺), N e^{-1/τ}) and
    L = -log(e^{p} / (e^{p} + Ng)). β = 0 is the debiased loss of Chuang et al. (2020);
    β = 0 and τ⁺ = 0 is NT-Xent exactly for two unmixed views (with more views NT-Xent keeps the
    other positives in its denominator, HCL does not). The paper's code runs STL-10 with τ 0.5,
    τ⁺ 0.1, β 1.0 (87.44 % linear; 86.38 % with β 0.5).

    Negatives are every candidate that is neither the anchor nor a positive: the other images'
    views (2B - 2 for two views and B images, as in the paper's code) and a method's extra ``negatives``.
    With V > 2 views the loss is averaged over the anchor's positive views, each positive
    against the same negatives. With mixed views (CutMix) the positive logit of a view is the
    target-weighted sum over that view's candidates, and every candidate of another view sharing
    content is out of the negatives; λ = 1 gives the unmixed loss exactly. Computed in log space.

    Args:
        temperature: τ.
        beta: β, the concentration on hard negatives (0: uniform weights).
        tau_plus: τ⁺, the class prior: the share of negatives assumed to be false (0: no debiasing).
        gather_distributed: take negatives from every DDP rank (with gradient).
        **options: the hard-negative options ``drop_top_k``, MoCHi's ``mochi_hardest``,
            ``mochi_mixes``, ``mochi_query_mixes``, and feature transformation's ``ft_pos_alpha``,
            ``ft_neg_alpha``, ``ft_normalize`` (:class:`~selfsup.losses._contrastive.ContrastiveLoss`).

    Example:
        >>> from selfsup.losses import HCL
        >>> loss = HCL(temperature=0.5, beta=1.0, tau_plus=0.1)
        >>> z = torch.randn(2 * 8, 16)  # 2 views of 8 images, view-major
        >>> loss(z, views=2).shape
        torch.Size([])
    """

    def __init__(
        self,
        temperature: float = 0.5,
        beta: NonNegative = 1.0,
        tau_plus: Annotated[float, Interval(ge=0, lt=1)] = 0.1,
        gather_distributed: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(temperature, gather_distributed, **options)
        if beta < 0:
            raise ValueError(f"loss.beta={beta}: expected beta >= 0 (0: the debiased loss)")
        if not 0 <= tau_plus < 1:
            raise ValueError(f"loss.tau_plus={tau_plus}: expected 0 <= tau_plus < 1 (a class prior)")
        self.beta, self.tau_plus = beta, tau_plus

    def reduce(self, p: Pairs, views: int) -> Tensor:
        neg = ~(p.masked | p.pos)  # (V*B, V*N + K)
        n_neg = neg.sum(dim=1).to(p.sim.dtype)  # N per anchor
        if bool((n_neg == 0).any()):
            raise ValueError("HCL needs at least one negative per anchor (a batch of 2 or more images)")
        logits = (p.sim / self.temperature).masked_fill(~neg, -math.inf)
        log_n = n_neg.log()
        # log Σ_j w_j e^{l_j} = LSE((1+β) l) - LSE(β l) + log N; with β = 0 the weights are 1
        log_reweighted = torch.logsumexp((1 + self.beta) * logits, dim=1)
        if self.beta > 0:
            log_reweighted = log_reweighted - torch.logsumexp(self.beta * logits, dim=1) + log_n
        nb, n = p.batch_columns, p.keys_all.shape[1]
        per_view = (p.sim[:, :nb] * p.targets[:, :nb]).view(-1, views, n).sum(-1) / self.temperature  # (V*B, V)
        has_pos = p.targets[:, :nb].view(-1, views, n).sum(-1) > 0  # the anchor's other views
        floor = log_n - 1 / self.temperature  # log(N e^{-1/τ})
        # Shift every term by c = max(...) so the exponentials stay in (0, 1].
        c = torch.maximum(torch.maximum(log_reweighted, floor)[:, None], per_view)
        reweighted = torch.exp(log_reweighted[:, None] - c)  # Σ w_j e^{l_j}, shifted
        false_negatives = self.tau_plus * n_neg[:, None] * torch.exp(per_view - c)  # τ⁺ N e^{p}, shifted
        ng = (reweighted - false_negatives) / (1 - self.tau_plus)
        ng = torch.maximum(ng, torch.exp(floor[:, None] - c))
        loss = -per_view + c + torch.log(torch.exp(per_view - c) + ng)  # (V*B, V)
        return (loss * has_pos).sum(dim=1).div(views - 1).mean()
