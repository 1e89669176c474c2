"""A Vision Transformer's patch tokens (TimmBackbone.tokens): timm's own forward when nothing is masked;
masked patches replaced by a mask token (iBOT) or dropped (MAE, checked against timm's attention mask);
a backbone without tokens refused by a method that needs them, in one line."""

from __future__ import annotations

import functools

import pytest
import torch

from selfsup.augment import ViewMaker
from selfsup.backbones import SmallCNN, TimmBackbone
from selfsup.heads import MLPHead
from selfsup.losses import NTXent
from selfsup.methods.base import Method

B, SIZE, PATCH = 3, 16, 4
N = (SIZE // PATCH) ** 2


@pytest.fixture(scope="module")
def vit() -> TimmBackbone:
    torch.manual_seed(0)
    kwargs = {"img_size": SIZE, "patch_size": PATCH, "depth": 2}
    return TimmBackbone("vit_tiny_patch16_224", in_chans=1, model_kwargs=kwargs).double().eval()


def _images(seed: int = 1) -> torch.Tensor:
    return torch.randn(B, 1, SIZE, SIZE, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _mask(masked: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(2)
    return torch.stack([torch.randperm(N, generator=g) < masked for _ in range(B)])


def _repaint_masked(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x`` with new pixels in every masked patch."""
    per_patch = mask.view(B, 1, SIZE // PATCH, SIZE // PATCH).double()
    pixels = per_patch.repeat_interleave(PATCH, 2).repeat_interleave(PATCH, 3).bool()
    return torch.where(pixels, torch.randn_like(x), x)


def test_unmasked_tokens_are_timms_forward(vit: TimmBackbone) -> None:
    x = _images()
    t = vit.tokens(x)
    assert t.prefix.shape == (B, 1, 192) and t.patches.shape == (B, N, 192) and vit.num_patches(SIZE) == N
    assert torch.allclose(torch.cat([t.prefix, t.patches], 1), vit.model.forward_features(x), atol=1e-12)
    assert torch.allclose(t.pooled, vit(x), atol=1e-12)


def test_a_mask_token_replaces_the_masked_patches(vit: TimmBackbone) -> None:
    x, mask, token = _images(), _mask(6), torch.randn(192, dtype=torch.float64)
    t = vit.tokens(x, mask, mask_token=token)
    assert t.patches.shape == (B, N, 192)
    again = vit.tokens(_repaint_masked(x, mask), mask, mask_token=token)
    assert torch.allclose(again.patches, t.patches, atol=1e-12)  # the masked pixels are not seen
    assert not torch.allclose(vit.tokens(x).patches, t.patches)
    nothing = torch.zeros(B, N, dtype=torch.bool)
    assert torch.allclose(vit.tokens(x, nothing, mask_token=token).patches, vit.tokens(x).patches, atol=1e-12)


def test_dropped_patches_are_as_if_attention_never_saw_them(vit: TimmBackbone) -> None:
    x, mask = _images(), _mask(12)
    t = vit.tokens(x, mask)
    assert t.patches.shape == (B, N - 12, 192)
    # timm's own forward with the masked tokens excluded from every attention: the kept rows agree.
    seen = torch.cat([torch.ones(B, 1, dtype=torch.bool), ~mask], 1)  # the class token, the kept patches
    full = vit.model.forward_features(x, attn_mask=seen[:, None, None, :])
    for i in range(B):
        assert torch.allclose(t.patches[i], full[i, 1:][~mask[i]], atol=1e-10)
        assert torch.allclose(t.prefix[i], full[i, :1], atol=1e-10)
    assert torch.allclose(vit.tokens(_repaint_masked(x, mask), mask).patches, t.patches, atol=1e-12)


def test_a_bad_mask_is_refused(vit: TimmBackbone) -> None:
    with pytest.raises(ValueError, match=r"mask: expected \(3, 16\)"):
        vit.tokens(_images(), torch.zeros(B, N - 1, dtype=torch.bool))
    uneven = _mask(4)
    uneven[0] = False
    with pytest.raises(ValueError, match="as many masked patches in every image"):
        vit.tokens(_images(), uneven)


class _ReadsTokens(Method):
    needs_tokens = True


@pytest.mark.parametrize("backbone", ["small_cnn", "resnet18"])
def test_a_method_that_needs_tokens_refuses_a_backbone_without_them(backbone: str) -> None:
    net = SmallCNN(in_chans=1, widths=(8,)) if backbone == "small_cnn" else TimmBackbone("resnet18", in_chans=1)
    parts = dict(loss=NTXent(), view_maker=ViewMaker(), optimizer=functools.partial(torch.optim.SGD, lr=0.1))
    with pytest.raises(ValueError) as e:
        _ReadsTokens(backbone=net, head=MLPHead(net.num_features, out_dim=4), **parts)
    named = "backbone SmallCNN" if backbone == "small_cnn" else "backbone.name=resnet18"
    assert str(e.value).startswith(f"_ReadsTokens needs a backbone's patch tokens, and {named} has none; use a Vision")
    assert "\n" not in str(e.value)
    vit = TimmBackbone("vit_tiny_patch16_224", in_chans=1, model_kwargs={"img_size": SIZE, "patch_size": PATCH})
    assert _ReadsTokens(backbone=vit, head=MLPHead(vit.num_features, out_dim=4), **parts).backbone is vit
