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


def inverse_affine_matrix(
    angle: Tensor, translate: Tensor, shear: Tensor, center: Tensor, scale: Tensor | None = None
) -> Tensor:
    """Output-to-input pixel maps of torchvision's ``affine``, one per image.

    Rotation by ``angle`` degrees (counter-clockwise as torchvision's ``rotate`` is, when
    negated by the caller), shear (degrees, x and y), translation in pixels and scale about
    ``center``, all in pixel coordinates relative to the image centre.

    Args:
        angle: (B,) degrees. translate: (B, 2) pixels. shear: (B, 2) degrees.
        center: (B, 2) pixel coordinates relative to the image centre.
        scale: (B,) factors; None is 1.

    Returns:
        (B, 2, 3) matrices mapping an output pixel to the input pixel it samples.
    """
    rot = torch.deg2rad(angle)
    sx, sy = torch.deg2rad(shear).unbind(1)
    cx, cy = center.unbind(1)
    tx, ty = translate.unbind(1)
    a = torch.cos(rot - sy) / torch.cos(sy)
    b = -torch.cos(rot - sy) * torch.tan(sx) / torch.cos(sy) - torch.sin(rot)
    c = torch.sin(rot - sy) / torch.cos(sy)
    d = -torch.sin(rot - sy) * torch.tan(sx) / torch.cos(sy) + torch.cos(rot)
    s = torch.ones_like(angle) if scale is None else scale
    m0, m1, m3, m4 = d / s, -b / s, -c / s, a / s
    m2 = m0 * (-cx - tx) + m1 * (-cy - ty) + cx
    m5 = m3 * (-cx - tx) + m4 * (-cy - ty) + cy
    return torch.stack([torch.stack([m0, m1, m2], 1), torch.stack([m3, m4, m5], 1)], 1)


def pixel_grid(height: int, width: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """(H, W, 2) pixel-centre coordinates (x, y) relative to the image centre."""
    xs = torch.arange(width, device=device, dtype=dtype) + 0.5 - width / 2
    ys = torch.arange(height, device=device, dtype=dtype) + 0.5 - height / 2
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx, yy], -1)


def sample_at(x: Tensor, src: Tensor, mode: str = "bilinear", padding_mode: str = "zeros") -> Tensor:
    """Sample ``x`` (B, C, H, W) at centred pixel coordinates ``src`` (B, H, W, 2)."""
    height, width = x.shape[-2:]
    half = torch.tensor([width / 2, height / 2], device=x.device, dtype=x.dtype)
    return F.grid_sample(x, src / half, mode=mode, padding_mode=padding_mode, align_corners=False)


def affine(
    x: Tensor,
    angle: Tensor,
    translate: Tensor,
    shear: Tensor,
    center: Tensor | None = None,
    mode: str = "nearest",
) -> Tensor:
    """torchvision's ``affine`` for a batch with per-image parameters; outside pixels are 0.

    Args:
        x: (B, C, H, W). angle: (B,) degrees. translate: (B, 2) pixels. shear: (B, 2) degrees.
        center: (B, 2) in pixels from the top-left corner; None is the image centre.
        mode: "nearest" (RandAugment's) or "bilinear".
    """
    b, _, height, width = x.shape
    if center is None:
        c = torch.zeros(b, 2, device=x.device, dtype=x.dtype)
    else:
        c = center.to(x.dtype) - torch.tensor([width / 2, height / 2], device=x.device, dtype=x.dtype)
    f64 = torch.float64  # the matrix in double precision, as torchvision computes it
    m = inverse_affine_matrix(angle.to(f64), translate.to(f64), shear.to(f64), c.to(f64)).to(x.dtype)
    g = pixel_grid(height, width, x.device, x.dtype)  # (H, W, 2)
    src = torch.einsum("bij,hwj->bhwi", m[:, :, :2], g) + m[:, None, None, :, 2]
    return sample_at(x, src, mode=mode, padding_mode="zeros")
