"""NPID's memory bank: one feature per training image (Wu et al., CVPR 2018)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.dist import gather_cat


class MemoryBank(nn.Module):
    """(N, D) unit vectors indexed by the training set's sample index, updated by momentum.

    v_i ← normalise(m v_i + (1 - m) f_i) for the images of each step; rows start as random unit
    vectors. :meth:`update` gathers every rank's indices and features first, so every rank's
    bank is the single-process bank. The rows are a buffer: saved in the checkpoint.

    Args:
        size: N, images in the training set.
        dim: feature width D.
        momentum: m (NPID: 0.5).
    """

    def __init__(self, size: int, dim: int, momentum: float = 0.5) -> None:
        super().__init__()
        if not 0 <= momentum < 1:
            raise ValueError(f"memory bank momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self.rows: Tensor
        self.register_buffer("rows", F.normalize(torch.randn(size, dim), dim=1))

    def resize_per_sample(self, size: int) -> None:
        """Fresh random rows for ``size`` images (before training or loading a checkpoint)."""
        if self.rows.shape[0] != size:
            self.rows = F.normalize(torch.randn(size, self.rows.shape[1], device=self.rows.device), dim=1)

    @torch.no_grad()
    def update(self, index: Tensor, features: Tensor) -> None:
        """Move rows ``index`` (n,) towards the (n, D) ``features`` (of this rank; gathered here)."""
        features = F.normalize(features.detach().to(self.rows.dtype), dim=1)
        index, features = gather_cat(index), gather_cat(features)
        mixed = self.momentum * self.rows[index] + (1 - self.momentum) * features
        self.rows[index] = F.normalize(mixed, dim=1)
