"""Images of any channel count and bit depth as RGB pictures (the neighbours preview,
``scripts/show_augment.py``).

Grey is repeated into the three colours and RGB shown as it is. Other channel counts are shown in
false colour: three bands as red, green and blue (``bands``; by default the first, middle and last),
each stretched from its 2nd to its 98th percentile in every image, as multispectral and microscopy
viewers do, so that a band of 12-bit values in 16-bit files is not shown black.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def default_bands(channels: int) -> tuple[int, int, int]:
    """The bands shown as red, green and blue for ``channels`` other than 1 and 3: first, middle, last."""
    return (0, channels // 2, channels - 1)


def as_rgb(x: Tensor, bands: Sequence[int] | None = None) -> Tensor:
    """(B, C, H, W) float images in [0, 1] -> (B, 3, H, W) in [0, 1].

    Args:
        x: the images, values scaled to [0, 1] (by the bit depth, or denormalised views).
        bands: three channel indices shown as red, green and blue (any C; stretched as the module
            says); None: grey and RGB as they are, other counts :func:`default_bands`.
    """
    c = x.shape[1]
    if bands is None:
        if c == 1:
            return x.expand(-1, 3, -1, -1)
        if c == 3:
            return x
        bands = default_bands(c)
    if len(bands) != 3 or not all(0 <= b < c for b in bands):
        raise ValueError(f"bands {list(bands)}: expected three channel indices in 0..{c - 1}")
    picked = x[:, list(bands)].float()
    flat = picked.flatten(2)
    lo = flat.quantile(0.02, dim=2)[..., None, None]
    hi = flat.quantile(0.98, dim=2)[..., None, None]
    return ((picked - lo) / (hi - lo).clamp(min=1e-6)).clamp(0, 1)


def stored_as_float(x: Tensor) -> Tensor:
    """Stored images (uint8 or uint16) -> float in [0, 1], each dtype by its own maximum."""
    top = 255.0 if x.dtype == torch.uint8 else 65535.0
    return x.float() / top
