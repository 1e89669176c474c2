"""Mixup (Zhang et al. 2018) on one view of a batch, as i-Mix (Lee et al. 2021) uses it."""

from __future__ import annotations

from torch import Tensor

from selfsup.augment.batch_mix import BetaMix, beta


class Mixup(BetaMix):
    """Blends each image of one view with a partner: ``λ x_i + (1 - λ) x_π(i)``, λ ~ Beta(α, α).

    Args:
        alpha: α of the Beta(α, α) that λ is drawn from (i-Mix uses 1).
        p: probability that an image is mixed (the others keep λ = 1).
        view: which view to mix, counted among the global views (negative counts from the end).

    Example:
        >>> from selfsup.augment import Mixup
        >>> mixed, partner, lam = Mixup(alpha=1.0)(torch.rand(8, 3, 16, 16))  # one view
        >>> mixed.shape, partner.shape, lam.shape  # image i is lam[i] of i and 1 - lam[i] of partner[i]
        (torch.Size([8, 3, 16, 16]), torch.Size([8]), torch.Size([8]))
    """

    name = "mixup"

    def paste(self, x: Tensor, partner: Tensor) -> tuple[Tensor, Tensor]:
        lam = beta(self.alpha, x.shape[0], x.device).to(x.dtype)
        w = lam.view(-1, 1, 1, 1)
        return w * x + (1 - w) * x[partner], lam
