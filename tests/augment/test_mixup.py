"""Mixup of one view: each picture is λ·own + (1-λ)·partner, λ ~ Beta(α, α), reported per image."""

from __future__ import annotations

import pytest
import torch

from selfsup.augment import Mixup, ViewMaker


def test_each_picture_is_the_lambda_blend_of_itself_and_its_partner() -> None:
    torch.manual_seed(0)
    b = 4000
    x = torch.rand(b, 2, 3, 3, dtype=torch.float64)
    mixed, partner, lam = Mixup(alpha=1.0)(x)
    assert sorted(partner.tolist()) == list(range(b))
    for i in range(0, b, 397):  # a naive per-image check
        want = lam[i] * x[i] + (1 - lam[i]) * x[int(partner[i])]
        assert torch.allclose(mixed[i], want)
    # Beta(1, 1) is uniform: mean 1/2, variance 1/12.
    assert abs(lam.mean() - 0.5) < 0.02 and abs(lam.var() - 1 / 12) < 0.01
    # Beta(0.2, 0.2) puts most mass near 0 and 1.
    _, _, lam = Mixup(alpha=0.2)(x)
    assert ((lam < 0.1) | (lam > 0.9)).float().mean() > 0.5


def test_unmixed_images_keep_lambda_one_and_the_view_maker_reports_the_mix() -> None:
    x = torch.rand(8, 3, 8, 8)
    mixed, _, lam = Mixup(p=0.0)(x)
    assert torch.equal(mixed, x) and (lam == 1).all()
    torch.manual_seed(3)
    _, _, lam = Mixup(p=0.5)(torch.rand(2000, 1, 2, 2))
    assert 0.4 < (lam == 1).float().mean() < 0.6
    vm = ViewMaker(views=2, size=8, mix=Mixup(view=0))
    out = vm((torch.rand(8, 3, 8, 8) * 255).to(torch.uint8))
    assert out.mix is not None and out.mix.view == 0 and out.mix.lam.shape == (8,)


@pytest.mark.parametrize("kwargs,key", [({"alpha": 0.0}, "augment.mix.alpha=0.0"), ({"p": 1.5}, "augment.mix.p=1.5")])
def test_bad_settings_name_the_key(kwargs, key) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=key):
        Mixup(**kwargs)
    with pytest.raises(ValueError, match=r"augment.mix.view=2: expected one of the 2 global views \(-2..1\)"):
        ViewMaker(views=2, size=8, mix=Mixup(view=2))
