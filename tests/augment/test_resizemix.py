"""ResizeMix of one view: the whole partner, shrunk by s ~ U(scale), pasted; λ = 1 - patch area."""

from __future__ import annotations

import pytest
import torch

from selfsup.augment import ResizeMix


def test_the_patch_is_the_whole_partner_shrunk_and_lambda_is_its_complement() -> None:
    torch.manual_seed(0)
    b, h, w = 300, 20, 30
    # Each image constant at its own index: the patch is then exactly the partner's value.
    x = torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1).expand(b, 1, h, w).clone()
    mixed, partner, lam = ResizeMix(scale=(0.1, 0.8))(x)
    assert sorted(partner.tolist()) == list(range(b))
    moved = partner != torch.arange(b)
    own = (mixed == x).float().mean(dim=(1, 2, 3))
    other = torch.isclose(mixed, x[partner], atol=1e-3).float().mean(dim=(1, 2, 3))  # resampled: ~exact
    assert torch.allclose(own[moved], lam[moved]) and torch.allclose(other[moved], 1 - lam[moved])
    for i in torch.nonzero(moved).flatten()[:50].tolist():  # the patch is one axis-aligned rectangle
        rows, cols = torch.isclose(mixed[i, 0], x[partner[i], 0], atol=1e-3).nonzero().unbind(1)
        ph, pw = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
        assert ph * pw == len(rows) and abs(ph / h - pw / w) <= 1 / min(h, w) + 1e-6
        assert 0.1 - 1 / h <= ph / h <= 0.8 + 1 / h
    side = torch.sqrt(1 - lam)  # side fraction, for a patch of the image's aspect ratio
    assert side.min() < 0.2 and side.max() > 0.7


def test_the_patch_is_a_resized_picture_not_a_crop() -> None:
    """A left-dark, right-bright partner stays left-dark, right-bright once shrunk."""
    torch.manual_seed(1)
    x = torch.zeros(2, 1, 16, 16)
    x[:, :, :, 8:] = 1.0
    x[1] = -1.0  # image 1 receives image 0 (the only non-trivial permutation of 2 elements)
    while True:
        mixed, partner, lam = ResizeMix(scale=(0.5, 0.5))(x)
        if partner[1] == 0:
            break
    patch = mixed[1, 0][mixed[1, 0] > -1].view(8, 8)
    assert (patch[:, :4] < 0.5).all() and (patch[:, 4:] > 0.5).all() and lam[1] == 0.75


@pytest.mark.parametrize("scale", [(0.0, 0.5), (0.6, 0.4), (0.5, 1.2)])
def test_a_bad_scale_names_the_key(scale) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=r"augment.mix.scale=.*expected 0 < low <= high <= 1"):
        ResizeMix(scale=scale)
