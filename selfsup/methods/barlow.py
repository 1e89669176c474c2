"""Barlow Twins (Zbontar et al., ICML 2021): decorrelate the embedding, no negatives."""

from __future__ import annotations

from torch import Tensor

from selfsup.augment import Views
from selfsup.methods.base import Method


class BarlowTwins(Method):
    """Backbone and projector on two views; the loss (``loss=barlow``) drives the views'
    cross-correlation matrix, over the global batch, to the identity.

    Arguments: :class:`~selfsup.methods.base.Method`.
    """

    local_views_ok = False

    def objective(self, views: Views, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h = self.encode(views)
        z = self.head(h)
        return self.criterion(z, views=views.count), h, z
