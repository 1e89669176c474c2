"""Gaussian random-field augmentations (Mansfield et al. 2023), batched on the device.

Each transformation parameter becomes a smooth random function of pixel position: white
noise filtered in Fourier space by a Gaussian of length-scale ℓ, so that the field has the
squared-exponential covariance σ²·exp(-r²/2ℓ²). Geometric fields move pixels through one
sampling grid; colour fields scale pixels one by one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from selfsup.augment import color
from selfsup.augment.geometry import pixel_grid, sample_at
from selfsup.schema import Probability


def gaussian_random_field(n: int, height: int, width: int, length_scale: float, device: torch.device) -> Tensor:
    """``n`` stationary fields of unit variance with correlation exp(-r²/(2ℓ²)), r in pixels.

    Drawn on a grid padded by 4ℓ and cropped, so that the periodicity of the FFT leaves a
    wrap-around correlation below exp(-8). Cost O(n·HW·log HW).

    Returns:
        (n, height, width) float32.
    """
    if length_scale < 0:
        raise ValueError(f"length_scale must be >= 0, got {length_scale}")
    pad = math.ceil(4 * length_scale)
    ph, pw = height + pad, width + pad
    fy = torch.fft.fftfreq(ph, device=device)
    fx = torch.fft.fftfreq(pw, device=device)
    k2 = (2 * math.pi) ** 2 * (fy[:, None] ** 2 + fx[None, :] ** 2)
    # Amplitude filter = sqrt of the squared-exponential spectrum, exp(-ℓ²k²/2).
    g = torch.exp(-(length_scale**2) * k2 / 4)
    noise = torch.randn(n, ph, pw, device=device)
    field = torch.fft.ifft2(torch.fft.fft2(noise) * g).real
    # Parseval: the filtered field's variance is mean(g²); divide it out for unit variance.
    field = field / g.pow(2).mean().sqrt()
    return field[:, :height, :width].contiguous()


_GEOMETRIC = ("translate", "rotate", "scale", "shear")
_COLOUR = ("brightness", "contrast", "saturation", "hue")


class RandomFields(nn.Module):
    """Per-pixel random translation, rotation, scale, shear, brightness, contrast, saturation, hue.

    Every field is given as ``(amplitude, length_scale)``: the field's standard deviation in
    the parameter's unit, and its correlation length in pixels of the view. Amplitude 0
    switches a field off; all off is the identity.

    Units: translate in pixels (x and y drawn independently), rotate in degrees, scale as a
    log factor (the local zoom is exp(field)), shear as a shear factor; brightness, contrast
    and saturation as factor - 1 (the factor is 1 + field), hue in turns.

    Geometric fields map each output pixel p (relative to the centre) to the input point
    R(θ(p))·diag(e^{s(p)})·[[1, sh(p)], [0, 1]]·p + t(p), sampled bilinearly (border padding).

    Args:
        p: probability that an image gets the fields (each image draws once).
        translate: ``(amplitude, ℓ)`` of the translation field, in pixels.
        rotate: ``(amplitude, ℓ)`` of the rotation field, in degrees.
        scale: ``(amplitude, ℓ)`` of the log-zoom field.
        shear: ``(amplitude, ℓ)`` of the shear field.
        brightness: ``(amplitude, ℓ)`` of the brightness field (factor - 1).
        contrast: ``(amplitude, ℓ)`` of the contrast field (factor - 1).
        saturation: ``(amplitude, ℓ)`` of the saturation field (factor - 1).
        hue: ``(amplitude, ℓ)`` of the hue field, in turns.

    Example:
        >>> from selfsup.augment import RandomFields
        >>> fields = RandomFields(translate=(1.0, 4.0), rotate=(5.0, 4.0), brightness=(0.1, 4.0))
        >>> fields(torch.rand(8, 3, 16, 16)).shape  # float images in [0, 1], changed in place
        torch.Size([8, 3, 16, 16])
    """

    def __init__(
        self,
        p: Probability = 1.0,
        translate: Sequence[float] = (0.0, 8.0),
        rotate: Sequence[float] = (0.0, 8.0),
        scale: Sequence[float] = (0.0, 8.0),
        shear: Sequence[float] = (0.0, 8.0),
        brightness: Sequence[float] = (0.0, 8.0),
        contrast: Sequence[float] = (0.0, 8.0),
        saturation: Sequence[float] = (0.0, 8.0),
        hue: Sequence[float] = (0.0, 8.0),
    ) -> None:
        super().__init__()
        given = dict(
            translate=translate, rotate=rotate, scale=scale, shear=shear,
            brightness=brightness, contrast=contrast, saturation=saturation, hue=hue,
        )  # fmt: skip
        self.fields: dict[str, tuple[float, float]] = {}
        for name, value in given.items():
            if len(value) != 2 or value[0] < 0 or value[1] < 0:
                raise ValueError(f"random_fields.{name} must be [amplitude >= 0, length_scale >= 0], got {list(value)}")
            self.fields[name] = (float(value[0]), float(value[1]))
        if not 0 <= p <= 1:
            raise ValueError(f"random_fields.p must lie in [0, 1], got {p}")
        self.p = p

    def active(self, names: Sequence[str]) -> list[str]:
        return [n for n in names if self.fields[n][0] > 0]

    def _field(self, name: str, b: int, h: int, w: int, dev: torch.device) -> Tensor:
        amp, ell = self.fields[name]
        return amp * gaussian_random_field(b, h, w, ell, dev)

    def forward(self, x: Tensor) -> Tensor:
        """Float images in [0, 1], (B, C, H, W) -> same shape."""
        geometric, colours = self.active(_GEOMETRIC), self.active(_COLOUR)
        if not (geometric or colours) or self.p == 0:
            return x
        sel = torch.rand(x.shape[0], device=x.device) < self.p
        if not sel.any():
            return x
        y = x[sel]
        if geometric:
            y = self._warp(y)
        for name in colours:
            y = self._colour(name, y)
        x[sel] = y
        return x

    def _warp(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        dev = x.device
        zero = torch.zeros(b, h, w, device=dev)

        def f(name: str) -> Tensor:
            return self._field(name, b, h, w, dev) if self.fields[name][0] > 0 else zero

        theta = torch.deg2rad(f("rotate"))
        zoom = torch.exp(f("scale"))
        sh = f("shear")
        tx, ty = f("translate"), f("translate")
        p = pixel_grid(h, w, dev, x.dtype)  # (H, W, 2)
        px, py = p[..., 0], p[..., 1]
        # Shear, then scale, then rotate the centred coordinates, per pixel.
        sx, sy = zoom * (px + sh * py), zoom * py
        cos, sin = torch.cos(theta), torch.sin(theta)
        src = torch.stack([cos * sx - sin * sy + tx, sin * sx + cos * sy + ty], -1)
        return sample_at(x, src, mode="bilinear", padding_mode="border")

    def _colour(self, name: str, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        field = self._field(name, b, h, w, x.device)[:, None]  # (B, 1, H, W)
        if name == "hue":
            return color.adjust_hue(x, field)
        factor = (1 + field).clamp(min=0)
        if name == "brightness":
            return color.adjust_brightness(x, factor)
        if name == "contrast":
            return color.adjust_contrast(x, factor)
        return color.adjust_saturation(x, factor)

    def extra_repr(self) -> str:
        on = {k: v for k, v in self.fields.items() if v[0] > 0}
        return f"p={self.p}, fields={on}"
