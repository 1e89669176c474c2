"""CutMix (Yun et al. 2019) on one view of a batch, with the soft targets that mixing implies."""

from __future__ import annotations

import torch
from torch import Tensor

from selfsup.augment.batch_mix import BetaMix, beta


def cutmix_boxes(n: int, height: int, width: int, alpha: float, device: torch.device) -> tuple[Tensor, Tensor]:
    """CutMix boxes: λ ~ Beta(α, α), a box of side √(1-λ) centred uniformly, clipped to the image.

    Returns:
        (n, 4) long boxes ``x0, y0, x1, y1`` (exclusive ends) and (n,) λ recomputed from the
        clipped box as ``1 - box area / image area``.
    """
    lam = beta(alpha, n, device)
    cut = torch.sqrt(1 - lam)
    cw, ch = (width * cut).long(), (height * cut).long()
    cx = torch.randint(width, (n,), device=device)
    cy = torch.randint(height, (n,), device=device)
    x0, x1 = (cx - cw // 2).clamp(0, width), (cx + cw // 2).clamp(0, width)
    y0, y1 = (cy - ch // 2).clamp(0, height), (cy + ch // 2).clamp(0, height)
    area = (x1 - x0) * (y1 - y0)
    return torch.stack([x0, y0, x1, y1], 1), 1 - area.float() / (height * width)


def paste_boxes(x: Tensor, source: Tensor, boxes: Tensor) -> Tensor:
    """``x`` with each image's box ``x0, y0, x1, y1`` (exclusive ends) taken from ``source``."""
    _, _, h, w = x.shape
    x0, y0, x1, y1 = (c.view(-1, 1, 1, 1) for c in boxes.unbind(1))
    xs = torch.arange(w, device=x.device).view(1, 1, 1, -1)
    ys = torch.arange(h, device=x.device).view(1, 1, -1, 1)
    inside = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
    return torch.where(inside, source, x)


class CutMix(BetaMix):
    """Pastes a box of a partner image into one view, i-Mix style, and reports the mix.

    Args:
        alpha: α of the Beta(α, α) that λ is drawn from.
        p: probability that an image is mixed (the others keep λ = 1).
        view: which view to mix, counted among the global views (negative counts from the end).

    Example:
        >>> from selfsup.augment import CutMix, make_view_maker
        >>> view_maker = make_view_maker(views=2, size=16, mix=CutMix(alpha=1.0))  # mixes the last view
        >>> views = view_maker(torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8))
        >>> views.mix.view, views.mix.lam.shape  # the loss's soft targets: loss(z, views=2, mix=views.mix)
        (1, torch.Size([8]))
    """

    name = "cutmix"

    def paste(self, x: Tensor, partner: Tensor) -> tuple[Tensor, Tensor]:
        b, _, h, w = x.shape
        boxes, lam = cutmix_boxes(b, h, w, self.alpha, x.device)
        return paste_boxes(x, x[partner], boxes), lam
