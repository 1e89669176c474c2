"""Every backbone: forward + backward on tiny input, features of width num_features."""

from __future__ import annotations

import pytest
import torch

from selfsup.backbones import SmallCNN, TimmBackbone
from selfsup.heads import MLPHead

BACKBONES = {
    "small_cnn": lambda c: SmallCNN(in_chans=c, widths=(8, 16)),
    "resnet18": lambda c: TimmBackbone("resnet18", in_chans=c),
    "resnet18_cifar_stem": lambda c: TimmBackbone("resnet18", in_chans=c, cifar_stem=True),
    "vit_tiny": lambda c: TimmBackbone(
        "vit_tiny_patch16_224", in_chans=c, model_kwargs={"img_size": 32, "patch_size": 8}
    ),
    "convnext_atto": lambda c: TimmBackbone("convnext_atto", in_chans=c),
}


@pytest.mark.parametrize("name", list(BACKBONES))
@pytest.mark.parametrize("channels", [1, 3])
def test_forward_backward_contract(name: str, channels: int) -> None:
    net = BACKBONES[name](channels)
    x = torch.randn(2, channels, 32, 32)
    h = net(x)
    assert h.shape == (2, net.num_features)
    h.sum().backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_cifar_stem_keeps_resolution() -> None:
    plain = TimmBackbone("resnet18", in_chans=3).model
    stem = TimmBackbone("resnet18", in_chans=3, cifar_stem=True).model
    x = torch.randn(2, 3, 32, 32)
    assert plain.forward_features(x).shape[-1] == 1 and stem.forward_features(x).shape[-1] == 4


def test_bad_backbone_names_fail_clearly() -> None:
    with pytest.raises(ValueError, match="not a timm model"):
        TimmBackbone("resnet_does_not_exist")
    with pytest.raises(ValueError, match="cifar_stem"):
        TimmBackbone("vit_tiny_patch16_224", cifar_stem=True)


@pytest.mark.parametrize("hidden,bn,last_bn", [((), True, False), ((32,), True, False), ((32, 32), False, True)])
def test_mlp_head(hidden: tuple[int, ...], bn: bool, last_bn: bool) -> None:
    head = MLPHead(12, hidden_dims=hidden, out_dim=5, batch_norm=bn, last_bn=last_bn)
    out = head(torch.randn(4, 12))
    assert out.shape == (4, 5)
    out.sum().backward()
