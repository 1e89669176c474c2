"""CutMix (Yun et al. 2019) on one view of a batch, with the soft targets that mixing implies."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def cutmix_boxes(n: int, height: int, width: int, alpha: float, device: torch.device) -> tuple[Tensor, Tensor]:
    """CutMix boxes: λ ~ Beta(α, α), a box of side √(1-λ) centred uniformly, clipped to the image.

    Returns:
        (n, 4) long boxes ``x0, y0, x1, y1`` (exclusive ends) and (n,) λ recomputed from the
        clipped box as ``1 - box area / image area``.
    """
    lam = torch.distributions.Beta(alpha, alpha).sample((n,)).to(device)
    cut = torch.sqrt(1 - lam)
    cw, ch = (width * cut).long(), (height * cut).long()
    cx = torch.randint(width, (n,), device=device)
    cy = torch.randint(height, (n,), device=device)
    x0, x1 = (cx - cw // 2).clamp(0, width), (cx + cw // 2).clamp(0, width)
    y0, y1 = (cy - ch // 2).clamp(0, height), (cy + ch // 2).clamp(0, height)
    area = (x1 - x0) * (y1 - y0)
    return torch.stack([x0, y0, x1, y1], 1), 1 - area.float() / (height * width)


class CutMix(nn.Module):
    """Pastes a box of a partner image into one view, i-Mix style, and reports the mix.

    Args:
        alpha: α of the Beta(α, α) that λ is drawn from.
        p: probability that an image is mixed (the others keep λ = 1).
        view: which view to mix, counted among the global views (negative counts from the end).
    """

    def __init__(self, alpha: float = 1.0, p: float = 1.0, view: int = -1) -> None:
        super().__init__()
        if alpha <= 0 or not 0 <= p <= 1:
            raise ValueError(f"cutmix needs alpha > 0 and 0 <= p <= 1, got alpha={alpha}, p={p}")
        self.alpha = alpha
        self.p = p
        self.view = view

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Mix (B, C, H, W) images with a random permutation of themselves.

        Returns:
            the mixed images, the partner permutation (B,), and λ (B,).
        """
        b, _, h, w = x.shape
        dev = x.device
        partner = torch.randperm(b, device=dev)
        boxes, lam = cutmix_boxes(b, h, w, self.alpha, dev)
        off = torch.rand(b, device=dev) >= self.p
        boxes[off] = 0
        lam = torch.where(off, torch.ones_like(lam), lam)
        x0, y0, x1, y1 = (c.view(-1, 1, 1, 1) for c in boxes.unbind(1))
        xs = torch.arange(w, device=dev).view(1, 1, 1, -1)
        ys = torch.arange(h, device=dev).view(1, 1, -1, 1)
        inside = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
        return torch.where(inside, x[partner], x), partner, lam
