"""Batched colour operations on float images in [0, 1], one parameter per image.

Each follows the torchvision functional op of the same name (``adjust_brightness``, ...).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _b(f: Tensor) -> Tensor:
    return f.view(-1, 1, 1, 1)


def grayscale(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, 1, H, W) luma (ITU-R 601-2), or ``x`` itself when C == 1."""
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(1)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(1)  # torchvision's weights


def _blend(x: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    return (_b(factor) * x + (1 - _b(factor)) * other).clamp(0, 1)


def adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    return (x * _b(factor)).clamp(0, 1)


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    mean = grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(x, mean, factor)


def adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    if x.shape[1] == 1:
        return x
    return _blend(x, grayscale(x), factor)


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate hue by ``shift`` (B,) in [-0.5, 0.5] turns, via HSV like torchvision."""
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(1)
    maxc, _ = x.max(1)
    minc, _ = x.min(1)
    v = maxc
    delta = maxc - minc
    s = torch.where(maxc > 0, delta / maxc.clamp(min=1e-12), torch.zeros_like(maxc))
    dc = delta.clamp(min=1e-12)
    rc, gc, bc = (maxc - r) / dc, (maxc - g) / dc, (maxc - b) / dc
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    h = (h + shift.view(-1, 1, 1)) % 1.0
    # HSV -> RGB
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    p = v * (1 - s)
    q = v * (1 - s * f)
    t = v * (1 - s * (1 - f))
    i = i.long() % 6
    rgb = torch.stack(
        [
            torch.stack([v, q, p, p, t, v], 1),
            torch.stack([t, v, v, q, p, p], 1),
            torch.stack([p, p, t, v, v, q], 1),
        ],
        1,
    )  # (B, 3, 6, H, W)
    return rgb.gather(2, i[:, None, None].expand(-1, 3, 1, -1, -1)).squeeze(2)


def solarize(x: Tensor, threshold: float = 0.5) -> Tensor:
    return torch.where(x >= threshold, 1 - x, x)


def gaussian_blur(x: Tensor, sigma: Tensor, kernel_size: int) -> Tensor:
    """Separable Gaussian blur, one sigma per image, reflect padding like torchvision.

    Args:
        x: (B, C, H, W).
        sigma: (B,) standard deviations in pixels.
        kernel_size: odd kernel side.
    """
    b, c, height, width = x.shape
    half = kernel_size // 2
    t = torch.arange(-half, half + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t[None] / sigma[:, None].to(x.dtype)) ** 2)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (B*C, K)
    y = x.reshape(1, b * c, height, width)
    mode = "reflect" if half < min(height, width) else "replicate"  # reflect needs pad < side
    y = torch.nn.functional.pad(y, [half, half, half, half], mode=mode)
    y = torch.nn.functional.conv2d(y, k[:, None, None, :], groups=b * c)
    y = torch.nn.functional.conv2d(y, k[:, None, :, None], groups=b * c)
    return y.view(b, c, height, width)
