"""MLP projection head of SimCLR."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from selfsup.schema import PositiveInt


class MLPHead(nn.Module):
    """Linear(-BN)-ReLU blocks followed by a linear output layer (optionally BN'd).

    Args:
        in_dim: backbone feature width F.
        hidden_dims: widths of the hidden layers; empty gives a linear head.
        out_dim: embedding width D.
        batch_norm: BatchNorm after each hidden linear layer.
        last_bn: BatchNorm (no affine) on the output, as in SimCLR v2 / MoCo v3.

    Example:
        >>> from selfsup.heads import MLPHead
        >>> head = MLPHead(in_dim=32, hidden_dims=[64], out_dim=16)
        >>> head(torch.randn(8, 32)).shape  # backbone features (B, F) -> embeddings (B, D)
        torch.Size([8, 16])
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dims: Sequence[PositiveInt] = (2048,),
        out_dim: PositiveInt = 128,
        batch_norm: bool = True,
        last_bn: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_dim
        for h in hidden_dims:
            layers += [nn.Linear(prev, h, bias=not batch_norm)]
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(nn.ReLU(inplace=True))
            prev = h
        layers.append(nn.Linear(prev, out_dim, bias=not last_bn))
        if last_bn:
            layers.append(nn.BatchNorm1d(out_dim, affine=False))
        self.net = nn.Sequential(*layers)
        self.out_dim = out_dim

    def forward(self, h: Tensor) -> Tensor:
        """(N, in_dim) -> (N, out_dim)."""
        return self.net(h)
