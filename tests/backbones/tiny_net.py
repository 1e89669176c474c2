"""A backbone from outside selfsup, as a user writes one: the contract's two parts only
(``num_features`` and ``forward`` (B, C, H, W) -> (B, F)), no ``export_config()``.

    python train.py backbone._target_=tests.backbones.tiny_net.TinyNet '~backbone.widths'
"""

from __future__ import annotations

from torch import Tensor, nn


class TinyNet(nn.Module):
    """One 3x3 conv, ReLU and global average pooling.

    Args:
        in_chans: input channels.
        width: output channels (the feature width).
    """

    def __init__(self, in_chans: int = 3, width: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chans, width, 3, padding=1)
        self.num_features = width

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, width)."""
        return self.conv(x).relu().mean(dim=(2, 3))
