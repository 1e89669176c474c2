"""RandAugment (Cubuk et al. 2020), batched: every image draws its own ops, signs and magnitudes."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Annotated

import torch
from annotated_types import Ge
from torch import Tensor, nn

from selfsup.augment import color
from selfsup.augment.geometry import affine
from selfsup.schema import NonNegative, NonNegativeInt, Probability

# Op -> magnitude at full strength, in torchvision's units (docs/algorithms.md#randaugment).
# Signed ops draw a sign.
_MAX = {
    "ShearX": 0.3,  # shear factor; applied as atan(factor) degrees about the top-left corner
    "ShearY": 0.3,
    "TranslateX": 150 / 331,  # fraction of the width
    "TranslateY": 150 / 331,
    "Rotate": 30.0,  # degrees
    "Brightness": 0.9,  # factor 1 ± m
    "Color": 0.9,
    "Contrast": 0.9,
    "Sharpness": 0.9,
    "Posterize": 4.0,  # bits removed: 8 -> 4
    "Solarize": 1.0,  # threshold falls from 1 to 0
    "SolarizeAdd": 110 / 255,
}
_SIGNED = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast", "Sharpness"}
OP_SETS = {
    # torchvision.transforms.RandAugment's 14 ops.
    "torchvision": (
        "Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness",
        "Color", "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize",
    ),
    # timm's `rand-` set: no Identity, adds Invert and SolarizeAdd.
    "timm": (
        "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd",
        "Color", "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateX", "TranslateY",
    ),
}  # fmt: skip


def _apply(name: str, x: Tensor, m: Tensor) -> Tensor:
    """One op on float images ``x`` (b, C, H, W) with signed magnitudes ``m`` (b,) in its units."""
    b, _, height, width = x.shape
    zero, zero2 = torch.zeros_like(m), torch.zeros(b, 2, device=x.device, dtype=m.dtype)
    corner = torch.zeros(b, 2, device=x.device, dtype=m.dtype)
    ops: dict[str, Callable[[], Tensor]] = {
        "Identity": lambda: x,
        "ShearX": lambda: affine(x, zero, zero2, torch.stack([torch.rad2deg(torch.atan(m)), zero], 1), corner),
        "ShearY": lambda: affine(x, zero, zero2, torch.stack([zero, torch.rad2deg(torch.atan(m))], 1), corner),
        # torchvision translates by whole pixels: int(magnitude).
        "TranslateX": lambda: affine(x, zero, torch.stack([torch.trunc(m * width), zero], 1), zero2),
        "TranslateY": lambda: affine(x, zero, torch.stack([zero, torch.trunc(m * height)], 1), zero2),
        "Rotate": lambda: affine(x, -m, zero2, zero2),  # counter-clockwise, like torchvision's rotate
        "Brightness": lambda: color.adjust_brightness(x, 1 + m),
        "Color": lambda: color.adjust_saturation(x, 1 + m),
        "Contrast": lambda: color.adjust_contrast(x, 1 + m),
        "Sharpness": lambda: color.adjust_sharpness(x, 1 + m),
        "Posterize": lambda: color.posterize(x, 8 - torch.round(m)),
        "Solarize": lambda: color.solarize(x, 1 - m),
        "SolarizeAdd": lambda: color.solarize_add(x, m),
        "AutoContrast": lambda: color.autocontrast(x),
        "Equalize": lambda: color.equalize(x),
        "Invert": lambda: color.invert(x),
    }
    return ops[name]()


class RandAugment(nn.Module):
    """``num_ops`` ops per image at magnitude ``magnitude`` of ``num_magnitude_bins - 1``.

    torchvision's defaults (N=2, M=9 of 31 bins, every chosen op applied, its 14 ops) are the
    defaults here; ``op_set="timm", op_p=0.5, magnitude_std=0.5, num_magnitude_bins=11``
    gives timm's ``rand-m9-mstd0.5``, with torchvision's value ranges for the shared ops.
    Posterize and Solarize use the level as torchvision does (bits = 8 - round(4·m/M_max),
    threshold = 1 - m/M_max).

    Args:
        num_ops: N, ops applied in sequence to each image (each drawn independently per image).
        magnitude: M, the level, out of ``num_magnitude_bins - 1``.
        num_magnitude_bins: levels + 1 (torchvision 31; timm's levels go to 10, so 11).
        op_set: "torchvision" or "timm", or a list of op names to draw from.
        op_p: probability that a drawn op is applied (torchvision 1.0, timm 0.5).
        magnitude_std: per-op Gaussian noise on the level, clipped to [0, max level] (timm 0.5).

    Example:
        >>> from selfsup.augment import RandAugment
        >>> randaugment = RandAugment(num_ops=2, magnitude=9)
        >>> randaugment(torch.rand(8, 3, 16, 16)).shape  # float images in [0, 1], changed in place
        torch.Size([8, 3, 16, 16])
    """

    def __init__(
        self,
        num_ops: NonNegativeInt = 2,
        magnitude: NonNegative = 9,
        num_magnitude_bins: Annotated[int, Ge(2)] = 31,
        op_set: str | Sequence[str] = "torchvision",
        op_p: Probability = 1.0,
        magnitude_std: NonNegative = 0.0,
    ) -> None:
        super().__init__()
        ops = OP_SETS.get(op_set) if isinstance(op_set, str) else tuple(op_set)
        if ops is None:
            raise ValueError(f"op_set={op_set!r}; expected one of {sorted(OP_SETS)} or a list of op names")
        known = set(OP_SETS["torchvision"]) | set(OP_SETS["timm"])
        unknown = [o for o in ops if o not in known]
        if unknown or not ops:
            raise ValueError(f"unknown RandAugment ops {unknown}; known ops: {sorted(known)}")
        if not 0 <= magnitude <= num_magnitude_bins - 1:
            raise ValueError(
                f"magnitude={magnitude} must lie in [0, num_magnitude_bins - 1 = {num_magnitude_bins - 1}]"
            )
        if num_ops < 0 or not 0 <= op_p <= 1 or magnitude_std < 0:
            raise ValueError(
                f"need num_ops >= 0, 0 <= op_p <= 1, magnitude_std >= 0; got {num_ops}, {op_p}, {magnitude_std}"
            )
        self.ops = ops
        self.num_ops = num_ops
        self.magnitude = float(magnitude)
        self.max_level = float(num_magnitude_bins - 1)
        self.op_p = op_p
        self.magnitude_std = magnitude_std

    def forward(self, x: Tensor) -> Tensor:
        """Float images in [0, 1], (B, C, H, W) -> same shape."""
        b, dev = x.shape[0], x.device
        for _ in range(self.num_ops):
            choice = torch.randint(len(self.ops), (b,), device=dev)
            applied = torch.rand(b, device=dev) < self.op_p
            level = torch.full((b,), self.magnitude, device=dev)
            if self.magnitude_std > 0:
                level = (level + self.magnitude_std * torch.randn(b, device=dev)).clamp(0, self.max_level)
            frac = level / self.max_level
            sign = torch.where(torch.rand(b, device=dev) < 0.5, -1.0, 1.0)
            for k, name in enumerate(self.ops):
                sel = (choice == k) & applied
                if name == "Identity" or not sel.any():
                    continue
                m = frac[sel] * _MAX.get(name, 0.0)
                if name in _SIGNED:
                    m = m * sign[sel]
                x[sel] = _apply(name, x[sel], m)
        return x

    def extra_repr(self) -> str:
        return f"num_ops={self.num_ops}, magnitude={self.magnitude:g}/{self.max_level:g}, ops={len(self.ops)}"


def torchvision_equivalent(ra: RandAugment) -> bool:
    """True when ``ra`` is exactly what ``torchvision.transforms.v2.RandAugment`` can do."""
    return (
        ra.ops == OP_SETS["torchvision"]
        and ra.op_p == 1.0
        and ra.magnitude_std == 0
        and math.isclose(ra.magnitude, round(ra.magnitude))
    )
