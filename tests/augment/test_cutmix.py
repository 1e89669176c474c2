"""CutMix boxes and mixing: λ from the clipped box, pixels from the right image."""

from __future__ import annotations

import torch

from selfsup.augment import CutMix, ViewMaker
from selfsup.augment.cutmix import cutmix_boxes


def test_lambda_is_one_minus_the_clipped_box_area() -> None:
    torch.manual_seed(0)
    boxes, lam = cutmix_boxes(5000, 20, 30, 1.0, torch.device("cpu"))
    x0, y0, x1, y1 = boxes.unbind(1)
    assert (x0 >= 0).all() and (x1 <= 30).all() and (y0 >= 0).all() and (y1 <= 20).all()
    assert (x1 >= x0).all() and (y1 >= y0).all()
    assert torch.allclose(lam, 1 - ((x1 - x0) * (y1 - y0)).float() / 600)
    # Beta(1, 1) draws then clipping: mean λ above 1/2, spread over (0, 1].
    assert 0.5 < lam.mean() < 0.75 and lam.min() < 0.3 and lam.max() == 1.0


def test_mixed_pixels_come_from_the_partner_inside_the_box_only() -> None:
    torch.manual_seed(1)
    b = 64
    x = torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1).expand(b, 1, 16, 16).clone()
    mixed, partner, lam = CutMix(alpha=1.0)(x)
    assert sorted(partner.tolist()) == list(range(b))
    own = (mixed == x).float().mean(dim=(1, 2, 3))
    other = (mixed == x[partner]).float().mean(dim=(1, 2, 3))
    fixed = partner == torch.arange(b)
    assert torch.allclose(own[~fixed], lam[~fixed]) and torch.allclose(other[~fixed], 1 - lam[~fixed])


def test_probability_zero_leaves_images_alone_and_view_maker_reports_the_mix() -> None:
    x = torch.rand(8, 3, 8, 8)
    mixed, _, lam = CutMix(p=0.0)(x)
    assert torch.equal(mixed, x) and (lam == 1).all()
    vm = ViewMaker(views=2, size=8, mix=CutMix(view=-1))
    u = (torch.rand(8, 3, 8, 8) * 255).to(torch.uint8)
    torch.manual_seed(2)
    out = vm(u)
    assert out.mix is not None and out.mix.view == 1 and out.mix.lam.shape == (8,)
    torch.manual_seed(2)
    plain = vm.global_views(u)
    assert torch.equal(out.groups[0][:8], plain[:8])  # the other view is untouched
