"""Several projection heads on one backbone (the multi-head projector of AMCL, Wang et al., ECCV 2024)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from selfsup.heads.mlp import MLPHead
from selfsup.schema import NonNegative, PositiveInt


class MultiHead(nn.Module):
    """C MLP projectors side by side; their embeddings are concatenated, (N, Σ D_c).

    The method splits the concatenation back into the heads (:meth:`split`) and sums one loss
    term per head, weighted by ``weights``; the evaluation reports the concatenation as the
    projector and every head as ``projector_head{c}`` (:meth:`parts`).

    Args:
        in_dim: backbone feature width F.
        num_heads: C (at least 1).
        hidden_dims: widths of each head's hidden layers.
        out_dim: each head's embedding width D.
        batch_norm: BatchNorm after each hidden linear layer.
        last_bn: affine-free BatchNorm on each head's output.
        weights: the heads' loss weights (None: 1 each).
        per_head: per-head overrides of the MLP settings above, e.g. ``[{}, {hidden_dims: [256]}, {}]``.

    Example:
        >>> from selfsup.heads import MultiHead
        >>> head = MultiHead(in_dim=32, num_heads=3, hidden_dims=[64], out_dim=16)
        >>> z = head(torch.randn(8, 32))  # (B, 3 * 16), the heads side by side
        >>> [p.shape for p in head.split(z)]  # one loss per head, weighted by head.weights
        [torch.Size([8, 16]), torch.Size([8, 16]), torch.Size([8, 16])]
    """

    def __init__(
        self,
        in_dim: int,
        num_heads: PositiveInt = 3,
        hidden_dims: Sequence[PositiveInt] = (512,),
        out_dim: PositiveInt = 128,
        batch_norm: bool = True,
        last_bn: bool = False,
        weights: Sequence[NonNegative] | None = None,
        per_head: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        super().__init__()
        if num_heads < 1:
            raise ValueError(f"head.num_heads={num_heads}: expected at least 1 head")
        if len(per_head) > num_heads:
            raise ValueError(f"head.per_head has {len(per_head)} entries for head.num_heads={num_heads}")
        weights = [1.0] * num_heads if weights is None else [float(w) for w in weights]
        if len(weights) != num_heads or any(w < 0 for w in weights) or not any(weights):
            raise ValueError(f"head.weights={weights}: expected {num_heads} non-negative weights, not all 0")
        base = {"hidden_dims": hidden_dims, "out_dim": out_dim, "batch_norm": batch_norm, "last_bn": last_bn}
        settings = [{**base, **(dict(per_head[c]) if c < len(per_head) else {})} for c in range(num_heads)]
        for c, s in enumerate(settings):
            unknown = set(s) - set(base)
            if unknown:
                raise ValueError(f"head.per_head[{c}] has {sorted(unknown)}; expected keys among {sorted(base)}")
        self.heads = nn.ModuleList([MLPHead(in_dim, **s) for s in settings])
        self.weights = weights
        self.dims = [int(s["out_dim"]) for s in settings]
        self.out_dim = sum(self.dims)

    @property
    def num_heads(self) -> int:
        return len(self.heads)

    def forward(self, h: Tensor) -> Tensor:
        """(N, in_dim) -> (N, Σ D_c), the heads' embeddings side by side."""
        return torch.cat([head(h) for head in self.heads], dim=1)

    def split(self, z: Tensor) -> list[Tensor]:
        """(N, Σ D_c) -> one (N, D_c) per head."""
        return list(z.split(self.dims, dim=-1))

    def parts(self, z: Tensor) -> dict[str, Tensor]:
        """The embeddings the evaluation reports: ``projector`` (all heads) and ``projector_head{c}``."""
        return {"projector": z} | {f"projector_head{c}": p for c, p in enumerate(self.split(z))}


def projector_parts(head: nn.Module, z: Tensor) -> dict[str, Tensor]:
    """The named embeddings of a head's output: ``{"projector": z}``, plus each head's for a
    :class:`MultiHead` (a head with a ``parts`` method names its own).

    Example:
        >>> from selfsup.heads import MLPHead, MultiHead, projector_parts
        >>> sorted(projector_parts(MLPHead(32, out_dim=16), torch.randn(8, 16)))
        ['projector']
        >>> sorted(projector_parts(MultiHead(32, num_heads=2, out_dim=16), torch.randn(8, 32)))
        ['projector', 'projector_head0', 'projector_head1']
    """
    parts = getattr(head, "parts", None)
    return parts(z) if callable(parts) else {"projector": z}
