"""method=mae: the loss against a float64 loop of the paper's masked, normalised-pixel MSE, the
masks (the ratio, per image, split-invariant over ranks), patchify as the official code lays
patches out, the decoder's inputs (the encoder sees only visible patches; masked places hold the
mask token), the objective as that loss of its own networks, and the one-line refusals."""

from __future__ import annotations

import re

import pytest
import torch
from torch import Tensor

from selfsup import registry
from selfsup.build import ConfigError, build_module
from selfsup.losses.mae import MAELoss
from selfsup.methods.mae import patchify
from tests.losses.reference_methods import assert_same, leaf
from tests.methods.test_distributed_methods import eval_module, global_views, tiny_cfg


def mae_reference(pred: Tensor, target: Tensor, mask: Tensor, norm_pix: bool) -> Tensor:
    """One patch at a time: each masked patch's mean squared error (its target standardised with
    the unbiased variance), averaged over the masked patches of the batch."""
    total, count = torch.zeros((), dtype=torch.float64), 0
    for i in range(pred.shape[0]):
        for n in range(pred.shape[1]):
            if not mask[i, n]:
                continue
            y = target[i, n]
            if norm_pix:
                mean = y.sum() / y.numel()
                var = ((y - mean) ** 2).sum() / (y.numel() - 1)
                y = (y - mean) / torch.sqrt(var + 1e-6)
            total = total + ((pred[i, n] - y) ** 2).sum() / y.numel()
            count += 1
    return total / count


@pytest.mark.parametrize("norm_pix", [True, False])
def test_the_loss_is_the_papers(norm_pix: bool) -> None:
    pred, target = leaf(3, 8, 12, seed=0), leaf(3, 8, 12, seed=1)
    mask = torch.rand(3, 8, generator=torch.Generator().manual_seed(2)) < 0.6
    got = MAELoss(norm_pix=norm_pix)(pred, target=target, mask=mask)
    assert_same(got, mae_reference(pred, target, mask, norm_pix), [pred, target])


def test_patchify_lays_out_patches_row_by_row_with_channels_last() -> None:
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float64).reshape(2, 3, 4, 6)
    p = patchify(x, 2)  # a 2 x 3 grid of 2 x 2 patches of 3 channels
    assert p.shape == (2, 6, 12)
    for i in range(2):
        for r in range(2):
            for c in range(3):
                patch = x[i, :, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2]  # (C, 2, 2)
                torch.testing.assert_close(p[i, r * 3 + c], patch.permute(1, 2, 0).reshape(-1))


def test_masks_hold_the_ratio_per_image_and_do_not_depend_on_the_split() -> None:
    module = eval_module(tiny_cfg("mae", "mae"))
    torch.manual_seed(0)
    mask = module.random_mask(8, 16, torch.device("cpu"))
    assert mask.shape == (8, 16) and mask.sum(1).tolist() == [12] * 8
    assert len({tuple(row.tolist()) for row in mask}) > 1  # drawn per image
    module.mask_ratio = 1.0
    with pytest.raises(ValueError, match="mask_ratio=1.0 keeps 0 of 16 patches"):
        module.random_mask(8, 16, torch.device("cpu"))


def test_the_objective_is_the_loss_of_its_own_encoder_and_decoder() -> None:
    module = eval_module(tiny_cfg("mae", "mae"))
    views, index = global_views(module)
    assert views.count == 1 and len(views.groups) == 1
    x = views.groups[0]
    torch.manual_seed(5)
    loss, h, z = module.objective(views, index)
    torch.manual_seed(5)
    grid = x.shape[-1] // module.patch_size
    mask = module.random_mask(x.shape[0], grid * grid, x.device)
    # What the encoder sees: the visible patches only. Masked pixels changed change nothing.
    blanked = patchify(x, module.patch_size).clone()
    blanked[mask] = 7.0
    vit = module.backbone.model
    p = module.patch_size
    images = blanked.reshape(x.shape[0], grid, grid, p, p, -1).permute(0, 5, 1, 3, 2, 4).reshape(x.shape)
    tokens = module.backbone.tokens(images, mask=mask)
    torch.testing.assert_close(h, tokens.pooled)
    torch.testing.assert_close(z, h)  # no projector: the evaluation reads the features
    # The decoder by hand: visible tokens embedded in place, the mask token elsewhere.
    dec = module.head
    full = dec.mask_token.expand(x.shape[0], grid * grid, dec.dim).clone()
    full[~mask] = dec.embed(tokens.patches).reshape(-1, dec.dim)
    from timm.layers import build_sincos2d_pos_embed

    seq = torch.cat(
        [dec.embed(tokens.prefix), full + build_sincos2d_pos_embed([grid, grid], dec.dim, dtype=x.dtype)], 1
    )
    pred = dec.pred(dec.norm(dec.blocks(seq)))[:, vit.num_prefix_tokens :]
    want = mae_reference(pred, patchify(x, p), mask, norm_pix=True)
    params = [q for m in module.trained_modules() for q in m.parameters() if q.requires_grad]
    assert_same(loss, want, params)


def test_refusals_name_the_backbone_and_the_views(composed) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="MAE needs a backbone's patch tokens, and backbone.name=resnet18 has none"):
        build_module(
            composed(
                "method=mae",
                "backbone.name=resnet18",
                "~backbone.model_kwargs.img_size",
                "~backbone.model_kwargs.patch_size",
            )
        )
    with pytest.raises(ConfigError, match="MAE uses global views only; set augment.local_views=0"):
        build_module(composed("method=mae", "augment.local_views=2"))
    one_view = "|".join(m for m in registry.methods() if registry.method_class(m).min_views <= 1)
    assert "mae" in one_view.split("|")
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "SimCLR compares views of an image; set augment.views=2 or more "
            f"(augment.views=1 works with method={one_view})"
        ),
    ):
        build_module(composed("method=simclr", "augment.views=1"))
