"""Any timm model as a feature extractor, with a CIFAR-style stem switch for small images."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import timm
import torch
from torch import Tensor, nn


class TimmBackbone(nn.Module):
    """A timm model without its classifier; forward returns the pooled features (B, F).

    Args:
        name: any name ``timm.list_models()`` knows (``resnet18``, ``vit_tiny_patch16_224``, ...).
        in_chans: input channels.
        cifar_stem: replace a ResNet-style stem (7x7 stride-2 conv + max-pool) by a 3x3
            stride-1 conv and no pooling, as is usual for 32 px images.
        pretrained: load timm's pretrained weights (needs them in the local cache; nothing is
            downloaded on machines without internet).
        model_kwargs: extra keyword arguments for ``timm.create_model`` (e.g. ``img_size`` for ViTs).
    """

    def __init__(
        self,
        name: str = "resnet18",
        in_chans: int = 3,
        cifar_stem: bool = False,
        pretrained: bool = False,
        model_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if name not in timm.list_models(pretrained=False) and not timm.is_model(name):
            raise ValueError(f"backbone.name={name!r} is not a timm model; see timm.list_models()")
        self.model = timm.create_model(
            name, pretrained=pretrained, num_classes=0, in_chans=in_chans, **dict(model_kwargs or {})
        )
        if cifar_stem:
            self._cifar_stem(name, in_chans)
        self.num_features: int = int(self.model.num_features)  # type: ignore[arg-type]
        self._name, self._cifar_stem_on = name, cifar_stem
        self._model_args: dict[str, Any] = {"in_chans": in_chans, **dict(model_kwargs or {})}

    def _cifar_stem(self, name: str, in_chans: int) -> None:
        conv1 = getattr(self.model, "conv1", None)
        if not isinstance(conv1, nn.Conv2d) or not hasattr(self.model, "maxpool"):
            raise ValueError(
                f"backbone.cifar_stem=true needs a ResNet-style model with conv1 and maxpool; {name!r} has none"
            )
        self.model.conv1 = nn.Conv2d(in_chans, conv1.out_channels, 3, stride=1, padding=1, bias=False)
        self.model.maxpool = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, num_features)."""
        return torch.flatten(self.model(x), 1)

    @property
    def stages(self) -> list[str]:
        """The names of the feature stages :meth:`stage` indexes (timm's ``feature_info``: for a
        ResNet ``act1`` (the stem), ``layer1`` ... ``layer4``; for a ViT each block)."""
        info: list[dict[str, Any]] = self.model.feature_info  # type: ignore[assignment]
        return [str(f["module"]) for f in info]

    def stage(self, x: Tensor, index: int) -> Tensor:
        """(B, C, H, W) -> the feature map (B, C_i, H_i, W_i) of stage ``index`` (timm's
        ``forward_intermediates``, stopping there; a ViT's tokens as a map, without the class token)."""
        out = self.model.forward_intermediates(  # type: ignore[operator]
            x, indices=[index], intermediates_only=True, stop_early=True
        )
        return out[0]  # type: ignore[no-any-return]

    def export_config(self) -> dict[str, Any]:
        """What :func:`selfsup.export.export_encoder` writes: timm's name and arguments, and the
        timm model's own state dict (its keys, so plain timm loads it)."""
        return {
            "architecture": self._name,
            "model_args": dict(self._model_args),
            "cifar_stem": self._cifar_stem_on,
            "state_dict": self.model.state_dict(),
        }
