"""Batched colour operations on float images in [0, 1], one parameter per image.

Each follows the torchvision functional op of the same name (``adjust_brightness``, ...).
Factors are (B,) per image, (B, C, 1, 1) per image and channel, or (B, 1, H, W) per pixel
(random fields); ops that torchvision defines on uint8 levels (posterize, equalize) quantise to
256 levels like it does.

Channels: grey (C = 1) and RGB (C = 3) follow torchvision. Other channel counts (multispectral,
microscopy) have no luma: contrast blends each channel with its own mean, and the RGB ops
(grayscale, saturation, hue) raise :class:`RGBOnly`; the view makers refuse them before any run
starts (:class:`~selfsup.augment.views.ViewPipeline`).
"""

from __future__ import annotations

import torch
from torch import Tensor


class RGBOnly(ValueError):
    """An op defined on RGB (grayscale, saturation, hue) applied to images of another channel count."""


def _b(f: Tensor) -> Tensor:
    return f.view(-1, 1, 1, 1) if f.ndim == 1 else f


def grayscale(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, 1, H, W) luma (ITU-R 601-2), or ``x`` itself when C == 1."""
    if x.shape[1] == 1:
        return x
    if x.shape[1] != 3:
        raise RGBOnly(f"grayscale is an RGB op; the images have {x.shape[1]} channels")
    r, g, b = x.unbind(1)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(1)  # torchvision's weights


def _blend(x: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    return (_b(factor) * x + (1 - _b(factor)) * other).clamp(0, 1)


def adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    return (x * _b(factor)).clamp(0, 1)


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    """Blend with the mean luma (grey, RGB: torchvision's), or each channel with its own mean."""
    if x.shape[1] in (1, 3):
        mean = grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    else:
        mean = x.mean(dim=(2, 3), keepdim=True)
    return _blend(x, mean, factor)


def adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    if x.shape[1] == 1:
        return x
    if x.shape[1] != 3:
        raise RGBOnly(f"saturation is an RGB op; the images have {x.shape[1]} channels")
    return _blend(x, grayscale(x), factor)


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate hue by ``shift`` in [-0.5, 0.5] turns, (B,) or (B, 1, H, W), via HSV like torchvision."""
    if x.shape[1] == 1:
        return x
    if x.shape[1] != 3:
        raise RGBOnly(f"hue is an RGB op; the images have {x.shape[1]} channels")
    r, g, b = x.unbind(1)
    maxc, minc = x.amax(1), x.amin(1)  # not max(1): that also computes indices, ~50x slower on CPU
    delta = maxc - minc  # = v·s, the chroma
    dc = delta.clamp(min=1e-12)  # grey pixels: every term below is 0, so h = 0 as in torchvision
    rc, gc, bc = (maxc - r) / dc, (maxc - g) / dc, (maxc - b) / dc
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = h / 6.0 + (shift.view(-1, 1, 1) if shift.ndim == 1 else shift[:, 0])
    h = h - torch.floor(h)  # hue in [0, 1) turns
    # HSV -> RGB in closed form, channel n in (5, 3, 1): v - v·s·clamp(min(k, 4 - k), 0, 1),
    # k = (n + 6h) mod 6; equal to the six-sector table torchvision indexes, without building it.
    k = torch.tensor([5.0, 3.0, 1.0], device=x.device, dtype=x.dtype).view(1, 3, 1, 1) + 6 * h.unsqueeze(1)
    k = k - 6 * torch.floor(k / 6)
    return maxc.unsqueeze(1) - delta.unsqueeze(1) * torch.minimum(k, 4 - k).clamp(0, 1)


def solarize(x: Tensor, threshold: float | Tensor = 0.5) -> Tensor:
    """Invert pixels at or above ``threshold`` (a float or (B,) per image)."""
    t = _b(threshold) if isinstance(threshold, Tensor) else threshold
    return torch.where(x >= t, 1 - x, x)


def solarize_add(x: Tensor, add: Tensor, threshold: float = 128 / 255) -> Tensor:
    """timm's SolarizeAdd: add ``add`` (B,) to pixels below ``threshold``, clipped at 1."""
    return torch.where(x < threshold, (x + _b(add)).clamp(max=1), x)


def invert(x: Tensor) -> Tensor:
    return 1 - x


def _levels(x: Tensor) -> Tensor:
    """Float [0, 1] -> integer levels 0..255 (what torchvision's uint8 conversion gives)."""
    return (x * 255).round().clamp(0, 255)


def posterize(x: Tensor, bits: Tensor) -> Tensor:
    """Keep the ``bits`` (B,) most significant bits of each uint8 level."""
    step = torch.pow(2.0, 8 - _b(bits).to(x.dtype))
    return torch.floor(_levels(x) / step) * step / 255


def autocontrast(x: Tensor) -> Tensor:
    """Stretch each channel to [0, 1]; constant channels are left alone (torchvision's rule)."""
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    flat = hi == lo
    lo = torch.where(flat, torch.zeros_like(lo), lo)
    hi = torch.where(flat, torch.ones_like(hi), hi)
    return ((x - lo) / (hi - lo)).clamp(0, 1)


def equalize(x: Tensor) -> Tensor:
    """Histogram equalisation per channel on uint8 levels, torchvision's lookup table."""
    b, c, height, width = x.shape
    q = _levels(x).long().view(b * c, -1)
    hist = torch.zeros(b * c, 256, device=x.device, dtype=torch.long).scatter_add_(1, q, torch.ones_like(q))
    # The step leaves out the count of the highest level present (torchvision's `nonzero_hist[:-1]`).
    top = 255 - (hist.flip(1) > 0).long().argmax(1, keepdim=True)
    step = (q.shape[1] - hist.gather(1, top)) // 255  # (BC, 1)
    safe = step.clamp(min=1)
    lut = (hist.cumsum(1) + safe // 2) // safe
    lut = torch.cat([torch.zeros_like(lut[:, :1]), lut[:, :-1]], 1).clamp(0, 255)
    out = lut.gather(1, q).to(x.dtype) / 255
    out = torch.where(step > 0, out, q.to(x.dtype) / 255)
    return out.view(b, c, height, width)


def adjust_sharpness(x: Tensor, factor: Tensor) -> Tensor:
    """Blend with a smoothed copy (3x3 kernel 1,1,1/1,5,1/1,1,1 over 13; borders kept), like torchvision."""
    b, c, height, width = x.shape
    if height <= 2 or width <= 2:
        return x
    k = torch.ones(3, 3, device=x.device, dtype=x.dtype)
    k[1, 1] = 5
    k = (k / 13).expand(c, 1, 3, 3)
    smooth = torch.nn.functional.conv2d(x, k, groups=c)
    degenerate = x.clone()
    degenerate[..., 1:-1, 1:-1] = smooth
    return _blend(x, degenerate, factor)


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
