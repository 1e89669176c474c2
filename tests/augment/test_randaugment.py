"""RandAugment's ops against torchvision's functional ops, and the batched per-image choice."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from selfsup.augment import RandAugment, color
from selfsup.augment.geometry import affine
from selfsup.augment.randaugment import OP_SETS, _apply

NEAREST = InterpolationMode.NEAREST


def _uint8(b: int = 4, size: int = 24, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 3, size, size), generator=g, dtype=torch.uint8)


def _per_image(fn, u: torch.Tensor, params: list[float]) -> torch.Tensor:  # type: ignore[no-untyped-def]
    return torch.stack([fn(u[i], p) for i, p in enumerate(params)]).float() / 255


# torchvision.transforms.v2.RandAugment's op -> functional call, magnitude m in its own units.
TORCHVISION = {
    "ShearX": lambda img, m: TF.affine(img, angle=0.0, translate=[0, 0], scale=1.0,
                                       shear=[math.degrees(math.atan(m)), 0.0], interpolation=NEAREST, center=[0, 0]),
    "ShearY": lambda img, m: TF.affine(img, angle=0.0, translate=[0, 0], scale=1.0,
                                       shear=[0.0, math.degrees(math.atan(m))], interpolation=NEAREST, center=[0, 0]),
    "TranslateX": lambda img, m: TF.affine(img, angle=0.0, translate=[int(m * img.shape[-1]), 0], scale=1.0,
                                           shear=[0.0, 0.0], interpolation=NEAREST),
    "TranslateY": lambda img, m: TF.affine(img, angle=0.0, translate=[0, int(m * img.shape[-2])], scale=1.0,
                                           shear=[0.0, 0.0], interpolation=NEAREST),
    "Rotate": lambda img, m: TF.rotate(img, m, interpolation=NEAREST),
    "Brightness": lambda img, m: TF.adjust_brightness(img, 1 + m),
    "Color": lambda img, m: TF.adjust_saturation(img, 1 + m),
    "Contrast": lambda img, m: TF.adjust_contrast(img, 1 + m),
    "Sharpness": lambda img, m: TF.adjust_sharpness(img, 1 + m),
    "Posterize": lambda img, m: TF.posterize(img, int(8 - round(m))),
    "Solarize": lambda img, m: TF.solarize(img, 255 * (1 - m)),
    "AutoContrast": lambda img, m: TF.autocontrast(img),
    "Equalize": lambda img, m: TF.equalize(img),
    "Invert": lambda img, m: TF.invert(img),
}  # fmt: skip
MAGNITUDES = {
    "ShearX": [0.3, -0.21, 0.09, -0.05],
    "ShearY": [0.3, -0.21, 0.09, -0.05],
    "TranslateX": [0.45, -0.3, 0.1, -0.02],
    "TranslateY": [0.45, -0.3, 0.1, -0.02],
    "Rotate": [30.0, -17.0, 4.5, -1.0],
    "Brightness": [0.9, -0.9, 0.3, -0.27],
    "Color": [0.9, -0.9, 0.3, -0.27],
    "Contrast": [0.9, -0.9, 0.3, -0.27],
    "Sharpness": [0.9, -0.9, 0.3, -0.27],
    "Posterize": [0.0, 1.0, 3.0, 4.0],
    "Solarize": [0.0, 0.3, 0.7, 1.0],
}


FLOAT_PATH = {"Brightness", "Color", "Contrast", "Sharpness", "AutoContrast"}


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_each_op_matches_torchvision(name: str) -> None:
    """Ops defined on uint8 levels and geometric ops: vs torchvision on the uint8 originals, exact.

    Blends and AutoContrast: vs torchvision's float path (its uint8 path rounds the result and
    the blended intermediate, and a blend factor up to 1.9 amplifies that past one level).
    """
    u = _uint8()
    mags = MAGNITUDES.get(name, [0.0] * 4)
    got = _apply(name, u.float() / 255, torch.tensor(mags))
    if name in FLOAT_PATH:
        f = u.float() / 255
        want = torch.stack([TORCHVISION[name](f[i], m) for i, m in enumerate(mags)])
    else:
        want = _per_image(TORCHVISION[name], u, mags)
    assert (got - want).abs().max().item() <= 1e-5, name


def test_solarize_add_and_colour_ops_on_float_images() -> None:
    x = torch.rand(3, 3, 10, 10, generator=torch.Generator().manual_seed(1))
    add = torch.tensor([0.0, 0.2, 110 / 255])
    got = color.solarize_add(x, add)
    for i in range(3):
        low = x[i] < 128 / 255
        assert torch.allclose(got[i][low], (x[i][low] + add[i]).clamp(max=1))
        assert torch.equal(got[i][~low], x[i][~low])
    thr = torch.tensor([0.2, 0.5, 0.9])
    want = torch.stack([TF.solarize(x[i], float(thr[i])) for i in range(3)])
    assert torch.allclose(color.solarize(x, thr), want)


def test_rotation_about_the_centre_and_translation_are_exact() -> None:
    x = torch.rand(2, 1, 9, 9)
    z, z2 = torch.zeros(2), torch.zeros(2, 2)
    four = affine(x, torch.full((2,), 90.0), z2, z2)  # 90° turns map the pixel grid onto itself
    assert torch.allclose(four, torch.rot90(x, k=-1, dims=(-2, -1)), atol=1e-6)
    moved = affine(x, z, torch.tensor([[2.0, 0.0], [0.0, -3.0]]), z2)
    assert torch.equal(moved[0, ..., 2:], x[0, ..., :-2]) and (moved[0, ..., :2] == 0).all()
    assert torch.equal(moved[1, ..., :-3, :], x[1, ..., 3:, :]) and (moved[1, ..., -3:, :] == 0).all()


def test_ops_are_drawn_per_image_uniformly() -> None:
    torch.manual_seed(0)
    ra = RandAugment(num_ops=1, magnitude=9, op_set=["Invert", "Identity"])
    x = torch.rand(4000, 1, 2, 2)
    out = ra(x.clone())
    inverted = torch.isclose(out, 1 - x).all(dim=(1, 2, 3)) & ~torch.isclose(out, x).all(dim=(1, 2, 3))
    frac = inverted.float().mean().item()
    assert abs(frac - 0.5) < 0.03  # each image draws its own op


def test_op_probability_zero_and_zero_ops_are_the_identity() -> None:
    x = torch.rand(8, 3, 12, 12)
    assert torch.equal(RandAugment(num_ops=0)(x.clone()), x)
    assert torch.equal(RandAugment(op_set="timm", op_p=0.0, magnitude_std=0.5, num_magnitude_bins=11)(x.clone()), x)


def test_magnitude_noise_stays_in_range_and_changes_strength() -> None:
    torch.manual_seed(0)
    x = torch.full((2000, 1, 4, 4), 0.5)
    ra = RandAugment(num_ops=1, magnitude=5, num_magnitude_bins=11, op_set=["Brightness"], magnitude_std=1.0)
    factors = ra(x.clone())[:, 0, 0, 0] / 0.5
    m = (factors - 1).abs() / 0.9 * 10  # recovered level
    assert m.max() <= 10 + 1e-4 and m.std() > 0.5
    fixed = RandAugment(num_ops=1, magnitude=5, num_magnitude_bins=11, op_set=["Brightness"])(x.clone())[:, 0, 0, 0]
    assert torch.allclose((fixed / 0.5 - 1).abs(), torch.full_like(fixed, 0.45), atol=1e-5)


def test_op_sets_and_bad_arguments() -> None:
    assert len(OP_SETS["torchvision"]) == 14 and "Identity" in OP_SETS["torchvision"]
    assert len(OP_SETS["timm"]) == 15 and {"Invert", "SolarizeAdd"} <= set(OP_SETS["timm"])
    with pytest.raises(ValueError, match="op_set"):
        RandAugment(op_set="autoaugment")
    with pytest.raises(ValueError, match="unknown RandAugment ops"):
        RandAugment(op_set=["Rotate", "Wobble"])
    with pytest.raises(ValueError, match="magnitude=40"):
        RandAugment(magnitude=40)
