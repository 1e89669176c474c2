"""What CutMix, Mixup and ResizeMix share: a partner permutation, a per-image coin, the report."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from selfsup.schema import Positive, Probability


class BatchMix(nn.Module):
    """Mixes each image of one view with a partner from the same batch and reports how.

    A subclass draws the mixed pictures and their λ (the fraction of each picture that is
    its own image) in :meth:`paste`, and may choose the partners (:meth:`partners`: a random
    permutation); this class keeps each image unmixed with probability ``1 - p`` (λ = 1) and
    checks the settings.

    Args:
        p: probability that an image is mixed.
        view: which view to mix, counted among the global views (negative counts from the end).
    """

    #: The name under ``augment.mix`` that error messages print.
    name = "mix"

    def __init__(self, p: Probability = 1.0, view: int = -1) -> None:
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"augment.mix.p={p}: expected 0 <= p <= 1 ({self.name})")
        self.p = p
        self.view = view

    def partners(self, n: int, device: torch.device) -> Tensor:
        """(n,) the partner of each of ``n`` images: a random permutation of the batch."""
        return torch.randperm(n, device=device)

    def paste(self, x: Tensor, partner: Tensor) -> tuple[Tensor, Tensor]:
        """(B, C, H, W) images and their partners' indices -> mixed images and λ (B,)."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Mix (B, C, H, W) images with a random permutation of themselves.

        Returns:
            the mixed images, the partner permutation (B,), and λ (B,).
        """
        partner = self.partners(x.shape[0], x.device)
        mixed, lam = self.paste(x, partner)
        off = torch.rand(x.shape[0], device=x.device) >= self.p
        keep = off.view(-1, 1, 1, 1)
        return torch.where(keep, x, mixed), partner, torch.where(off, torch.ones_like(lam), lam)


class BetaMix(BatchMix):
    """A :class:`BatchMix` whose λ comes from Beta(α, α) (CutMix, Mixup).

    Args:
        alpha: α of the Beta(α, α) that λ is drawn from.
        p: probability that an image is mixed (the others keep λ = 1).
        view: which view to mix, counted among the global views (negative counts from the end).
    """

    def __init__(self, alpha: Positive = 1.0, p: Probability = 1.0, view: int = -1) -> None:
        super().__init__(p, view)
        if alpha <= 0:
            raise ValueError(f"augment.mix.alpha={alpha}: expected alpha > 0 for Beta(alpha, alpha) ({self.name})")
        self.alpha = alpha


def beta(alpha: float, n: int, device: torch.device) -> Tensor:
    """n draws of Beta(α, α) on ``device``."""
    return torch.distributions.Beta(alpha, alpha).sample((n,)).to(device)
