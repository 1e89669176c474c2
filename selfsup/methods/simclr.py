"""SimCLR (Chen et al., ICML 2020): V views, one backbone and projector, a contrastive loss."""

from __future__ import annotations

from torch import Tensor

from selfsup.augment import Views
from selfsup.methods.base import Method


class SimCLR(Method):
    """Every view of an image is a positive of every other; the rest of the batch are negatives.

    The objective is pluggable (``loss=ntxent|dcl|dclw``) and takes ``(z, views=V, mix=...)``;
    multi-crop's local views join the global ones. Arguments: :class:`~selfsup.methods.base.Method`.
    """

    def objective(self, views: Views, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h = self.encode(views)  # (V*B, F), one forward per view size
        z = self.head(h)  # (V*B, D)
        return self.criterion(z, views=views.count, mix=views.mix), h, z
