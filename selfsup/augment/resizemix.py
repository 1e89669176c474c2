"""ResizeMix (Qin et al. 2020) on one view of a batch: the whole partner, shrunk and pasted."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from selfsup.augment.batch_mix import BatchMix
from selfsup.schema import AreaRange, Probability


class ResizeMix(BatchMix):
    """Pastes each image's partner, resized by a scale s ~ U(scale), at a uniform random position.

    λ = 1 − pasted area / image area, from the integer patch size, so the targets match the
    pixels. The patch is the partner resized (bilinear, antialiased) to ``round(s·H) × round(s·W)``
    (at least one pixel).

    Args:
        scale: range of the patch's side as a fraction of the image's (the paper: 0.1 to 0.8).
        p: probability that an image is mixed (the others keep λ = 1).
        view: which view to mix, counted among the global views (negative counts from the end).

    Example:
        >>> from selfsup.augment import ResizeMix
        >>> mixed, partner, lam = ResizeMix(scale=(0.1, 0.8))(torch.rand(8, 3, 16, 16))  # one view
        >>> mixed.shape, partner.shape, lam.shape  # lam[i] = 1 - pasted area / image area
        (torch.Size([8, 3, 16, 16]), torch.Size([8]), torch.Size([8]))
    """

    name = "resizemix"

    def __init__(self, scale: AreaRange = (0.1, 0.8), p: Probability = 1.0, view: int = -1) -> None:
        super().__init__(p, view)
        lo, hi = (float(s) for s in scale)
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"augment.mix.scale={[lo, hi]}: expected 0 < low <= high <= 1 ({self.name})")
        self.scale = (lo, hi)

    def paste(self, x: Tensor, partner: Tensor) -> tuple[Tensor, Tensor]:
        b, _, h, w = x.shape
        dev = x.device
        s = torch.empty(b, device=dev).uniform_(*self.scale)
        ph = (s * h).round().long().clamp(1, h)
        pw = (s * w).round().long().clamp(1, w)
        y0 = (torch.rand(b, device=dev) * (h - ph + 1).float()).long()
        x0 = (torch.rand(b, device=dev) * (w - pw + 1).float()).long()
        out = x.clone()
        src = x[partner]
        # One interpolate per distinct patch size: images are few sizes apart at small resolutions.
        for size in torch.unique(torch.stack([ph, pw], 1), dim=0).tolist():
            sel = ((ph == size[0]) & (pw == size[1])).nonzero().flatten()
            patch = F.interpolate(src[sel], size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
            for k, i in enumerate(sel.tolist()):
                yi, xi = int(y0[i]), int(x0[i])
                out[i, :, yi : yi + size[0], xi : xi + size[1]] = patch[k]
        return out, 1 - (ph * pw).float() / (h * w)
