"""NPID, instance discrimination with a memory bank (Wu et al., CVPR 2018)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from selfsup.augment import Views
from selfsup.methods._memory_bank import MemoryBank
from selfsup.methods.base import Method
from selfsup.schema import PositiveInt, Probability


class NPID(Method):
    """Each image is its own class: its bank row is the positive of its views' embeddings.

    Every view's embedding f is one anchor: it contrasts its image's bank row v_i, once, against
    ``negatives`` bank rows drawn uniformly (with replacement) each step, the non-parametric
    softmax of Wu et al. 2018 over the drawn rows,
    -log exp(f·v_i/τ) / (exp(f·v_i/τ) + Σ_j exp(f·v_j/τ)) (``loss=ntxent``; ``loss=dcl`` drops
    the positive from the denominator), averaged over the V*B anchors, whatever V. Then the bank
    rows of the batch move towards the mean of the views' normalised embeddings,
    v_i ← normalise(m v_i + (1 - m) f_i) (gathered over ranks). The bank (one row per training
    image, sized by ``Method.setup``) is in the checkpoint.

    Args:
        negatives: bank rows drawn per step (the paper: 4,096).
        bank_momentum: m (the paper: 0.5).
        **kwargs: :class:`~selfsup.methods.base.Method`'s arguments.
    """

    local_views_ok = False
    mix_ok = False  # a bank row is one image's: no soft targets

    def __init__(
        self, *args: Any, negatives: PositiveInt = 4096, bank_momentum: Probability = 0.5, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        if negatives <= 0:
            raise ValueError(f"method.module.negatives must be > 0, got {negatives}")
        self.negatives = negatives
        self.bank = MemoryBank(1, self.head_dim, bank_momentum)

    def objective(self, views: Views, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h = self.encode(views)
        z = self.by_view(self.head, h, views.count)  # (V*B, D)
        size = self.bank.rows.shape[0]
        if int(index.max()) >= size:
            raise ValueError(f"sample index {int(index.max())} outside the memory bank of {size} training images")
        drawn = torch.randint(size, (self.negatives,), device=z.device)
        # The loss sees each anchor as an "image" of two identical views whose keys are both its bank
        # row: one positive per anchor for any V. Given as the keys of a V-view batch, the row would be
        # each anchor's positive V - 1 times, so in its denominator V - 1 times too.
        rows = self.bank.rows[index].repeat(views.count, 1)  # (V*B, D): each anchor's own row
        loss = self.criterion(
            torch.cat([z, z]),  # (2*V*B, D): the mean over the copies is the mean over the anchors
            views=2,
            keys=torch.cat([rows, rows]),
            negatives=self.bank.rows[drawn],
            batch_negatives="none",
        )
        f = F.normalize(z.detach().float(), dim=1).view(views.count, -1, z.shape[1]).mean(0)  # (B, D)
        self.bank.update(index, f)
        return loss, h, z
