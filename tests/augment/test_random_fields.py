"""Gaussian random fields: identity at amplitude 0, the configured correlation length, the warp."""

from __future__ import annotations

import math

import pytest
import torch

from selfsup.augment import RandomFields
from selfsup.augment.random_fields import gaussian_random_field

ALL = ("translate", "rotate", "scale", "shear", "brightness", "contrast", "saturation", "hue")


def test_amplitude_zero_is_the_identity_bit_for_bit() -> None:
    x = torch.rand(6, 3, 16, 16)
    rf = RandomFields(**{name: (0.0, 4.0) for name in ALL})
    assert torch.equal(rf(x.clone()), x)
    assert torch.equal(RandomFields(p=0.0, rotate=(10.0, 4.0))(x.clone()), x)


@pytest.mark.parametrize("length_scale", [2.0, 4.0, 8.0])
def test_empirical_correlation_length_matches_the_configured_one(length_scale: float) -> None:
    torch.manual_seed(0)
    f = gaussian_random_field(400, 48, 48, length_scale, torch.device("cpu")).double()
    assert abs(f.var().item() - 1) < 0.05  # unit marginal variance
    lags = torch.arange(1, 16)
    corr = torch.stack([(f[..., :-r] * f[..., r:]).mean() / f.var() for r in lags.tolist()])
    corr_y = torch.stack([(f[:, :-r] * f[:, r:]).mean() / f.var() for r in lags.tolist()])
    want = torch.exp(-(lags.double() ** 2) / (2 * length_scale**2))
    assert (corr - want).abs().max() < 0.06 and (corr_y - want).abs().max() < 0.06
    # The length-scale read off the data: where the correlation falls to exp(-1/2).
    fine = torch.linspace(0, 15, 1501, dtype=torch.float64)
    interp = torch.from_numpy(__import__("numpy").interp(fine.numpy(), [0, *lags.tolist()], [1.0, *corr.tolist()]))
    measured = fine[(interp < math.exp(-0.5)).nonzero()[0, 0]].item()
    assert abs(measured - length_scale) / length_scale < 0.1, (measured, length_scale)


def test_zero_length_scale_is_white_noise() -> None:
    torch.manual_seed(0)
    f = gaussian_random_field(200, 32, 32, 0.0, torch.device("cpu"))
    assert abs((f[..., :-1] * f[..., 1:]).mean().item()) < 0.02


def test_translation_field_moves_content_smoothly_and_colour_fields_change_colour() -> None:
    torch.manual_seed(0)
    x = torch.rand(4, 3, 32, 32)
    warped = RandomFields(translate=(2.0, 8.0))(x.clone())
    assert not torch.allclose(warped, x) and warped.shape == x.shape
    # A constant image stays constant under any warp (border padding): only positions move.
    const = torch.full((2, 3, 16, 16), 0.3)
    moved = RandomFields(rotate=(20.0, 4.0), scale=(0.2, 4.0), shear=(0.2, 4.0))(const.clone())
    assert torch.allclose(moved, const, atol=1e-6)
    bright = RandomFields(brightness=(0.3, 8.0))(torch.full((2, 1, 16, 16), 0.5))
    assert bright.std() > 0.02 and bright.min() >= 0 and bright.max() <= 1
    hue = RandomFields(hue=(0.1, 8.0))(x.clone())
    assert torch.allclose(hue.max(1).values, x.max(1).values, atol=1e-5)  # hue keeps the HSV value


def test_fields_are_per_image_and_seeded() -> None:
    x = torch.rand(1, 3, 16, 16).repeat(4, 1, 1, 1)
    rf = RandomFields(translate=(1.5, 4.0), brightness=(0.2, 4.0))
    torch.manual_seed(5)
    a = rf(x.clone())
    torch.manual_seed(5)
    assert torch.equal(a, rf(x.clone()))
    assert not torch.allclose(a[0], a[1])


def test_bad_field_settings_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"random_fields.rotate"):
        RandomFields(rotate=(5.0,))
    with pytest.raises(ValueError, match=r"random_fields.hue"):
        RandomFields(hue=(-1.0, 4.0))
