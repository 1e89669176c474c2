"""DINO's projection head (Caron et al., ICCV 2021): an MLP, an L2-normalised bottleneck and a
weight-normalised last layer onto K outputs."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from selfsup.schema import PositiveInt


class DINOHead(nn.Module):
    """MLP (Linear-GELU per hidden layer) -> bottleneck -> L2-normalise -> weight-normalised Linear to K.

    As the official code (github.com/facebookresearch/dino, ``vision_transformer.py``,
    ``DINOHead``): hidden layers 2048, 2048, bottleneck 256, no batch norm, weights truncated-normal
    (std 0.02) and biases zero; the last layer has no bias and its weight is g·v/‖v‖ per output
    with g fixed at 1 (``norm_last_layer``: each output is the cosine to one of K prototypes) or
    trained. The method freezes the last layer in the first epoch (``freeze_last_layer``).

    Args:
        in_dim: the backbone's feature width.
        hidden_dims: the MLP's hidden widths.
        bottleneck_dim: the normalised bottleneck's width.
        out_dim: K, the outputs the softmax is over (65536 in the paper).
        norm_last_layer: keep g at 1 (True) or train it.
        batch_norm: batch norm after each hidden layer (the official code's ``use_bn_in_head``).

    Example:
        >>> from selfsup.heads.dino import DINOHead
        >>> head = DINOHead(in_dim=32, hidden_dims=(64, 64), bottleneck_dim=16, out_dim=100)
        >>> head(torch.randn(8, 32)).shape  # (B, K)
        torch.Size([8, 100])
    """

    def __init__(
        self,
        in_dim: PositiveInt,
        hidden_dims: Sequence[PositiveInt] = (2048, 2048),
        bottleneck_dim: PositiveInt = 256,
        out_dim: PositiveInt = 65536,
        norm_last_layer: bool = True,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_dim
        for width in hidden_dims:
            layers += [nn.Linear(prev, width), *([nn.BatchNorm1d(width)] if batch_norm else []), nn.GELU()]
            prev = width
        layers.append(nn.Linear(prev, bottleneck_dim))
        self.mlp = nn.Sequential(*layers)
        for m in self.mlp.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.last_layer = weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        g = self.last_layer.parametrizations.weight.original0
        g.data.fill_(1.0)
        g.requires_grad_(not norm_last_layer)
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_dim) features -> (B, K) outputs."""
        return self.last_layer(F.normalize(self.mlp(x), dim=-1))
