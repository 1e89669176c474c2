"""A small convolutional network for tiny images (8-32 px) that trains in seconds on a CPU."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from annotated_types import MinLen
from torch import Tensor, nn

from selfsup.schema import PositiveInt

_STAGE_LAYERS = 6  # conv-BN-ReLU twice


class SmallCNN(nn.Module):
    """Stages of two 3x3 conv-BN-ReLU layers; every stage after the first halves the resolution.

    Args:
        in_chans: input channels.
        widths: channels of each stage.

    Example:
        >>> from selfsup.backbones import SmallCNN
        >>> encoder = SmallCNN(in_chans=3, widths=(16, 32))
        >>> encoder(torch.randn(8, 3, 16, 16)).shape, encoder.num_features  # pooled features (B, F)
        (torch.Size([8, 32]), 32)
    """

    def __init__(self, in_chans: int = 3, widths: Annotated[Sequence[PositiveInt], MinLen(1)] = (32, 64, 128)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_chans
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            layers += [
                nn.Conv2d(prev, w, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(w),
                nn.ReLU(inplace=True),
                nn.Conv2d(w, w, 3, padding=1, bias=False),
                nn.BatchNorm2d(w),
                nn.ReLU(inplace=True),
            ]
            prev = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features: int = prev
        self._widths = [int(w) for w in widths]
        self._args = {"in_chans": in_chans, "widths": self._widths}

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, num_features)."""
        return self.pool(self.features(x)).flatten(1)

    @property
    def stages(self) -> list[str]:
        """The names of the feature stages :meth:`stage` indexes: one per width."""
        return [f"stage{i}" for i in range(len(self._widths))]

    def stage(self, x: Tensor, index: int) -> Tensor:
        """(B, C, H, W) -> the feature map (B, widths[index], H_i, W_i) after stage ``index``."""
        index = range(len(self.stages))[index]  # a negative index counts from the end
        return self.features[: _STAGE_LAYERS * (index + 1)](x)

    def export_config(self) -> dict[str, Any]:
        """What :func:`selfsup.export.export_encoder` writes (not a timm model: its own name)."""
        return {
            "architecture": "selfsup.backbones.SmallCNN",
            "model_args": dict(self._args),
            "state_dict": self.state_dict(),
        }
