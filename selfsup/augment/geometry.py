"""Batched random resized crop + horizontal flip through one sampling grid per image."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def sample_crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    device: torch.device,
    attempts: int = 10,
) -> Tensor:
    """Boxes of torchvision's ``RandomResizedCrop.get_params``, drawn for ``n`` images at once.

    Area fraction ~ U(scale), log aspect ratio ~ U(log ratio); the first of ``attempts``
    draws that fits inside the image is kept, else the centre crop with the ratio clamped.

    Returns:
        (n, 4) float boxes ``x0, y0, w, h`` in pixels.
    """
    area = height * width
    s = torch.empty(n, attempts, device=device).uniform_(*scale) * area
    log_r = torch.empty(n, attempts, device=device).uniform_(math.log(ratio[0]), math.log(ratio[1]))
    r = torch.exp(log_r)
    w = torch.sqrt(s * r).round()
    h = torch.sqrt(s / r).round()
    ok = (w > 0) & (h > 0) & (w <= width) & (h <= height)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((n,), -1, device=device))
    idx = first.clamp(min=0)[:, None]
    w, h = w.gather(1, idx).squeeze(1), h.gather(1, idx).squeeze(1)

    # Fallback (no draw fitted): the whole image, cropped to the nearest allowed ratio.
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        fw, fh = round(height * ratio[1]), height
    else:
        fw, fh = width, height
    bad = first < 0
    w = torch.where(bad, torch.full_like(w, fw), w)
    h = torch.where(bad, torch.full_like(h, fh), h)
    x0 = torch.floor(torch.rand(n, device=device) * (width - w + 1))
    y0 = torch.floor(torch.rand(n, device=device) * (height - h + 1))
    return torch.stack([x0, y0, w, h], dim=1)


def resized_crop(x: Tensor, boxes: Tensor, size: int, flip: Tensor | None = None) -> Tensor:
    """Crop each image to its box, optionally mirror it, and resample to ``size`` (bilinear).

    Args:
        x: (B, C, H, W) float images.
        boxes: (B, 4) ``x0, y0, w, h`` in pixels.
        size: output side length.
        flip: (B,) bool, mirror horizontally.

    Returns:
        (B, C, size, size)
    """
    b, _, height, width = x.shape
    x0, y0, w, h = boxes.to(x.dtype).unbind(1)
    sx, sy = w / width, h / height
    if flip is not None:
        sx = torch.where(flip, -sx, sx)
    # align_corners=False: pixel edges at -1 and 1, so the box [x0, x0+w] maps to these.
    tx = (2 * x0 + w) / width - 1
    ty = (2 * y0 + h) / height - 1
    zero = torch.zeros_like(sx)
    theta = torch.stack([torch.stack([sx, zero, tx], 1), torch.stack([zero, sy, ty], 1)], 1)
    grid = F.affine_grid(theta, [b, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
