"""VICReg (Bardes, Ponce and LeCun, ICLR 2022): variance, invariance, covariance."""

from __future__ import annotations

from torch import Tensor

from selfsup.augment import Views
from selfsup.methods.base import Method


class VICReg(Method):
    """Backbone and expander on two views; the loss (``loss=vicreg``) keeps each embedding
    dimension's spread, matches the views and decorrelates the dimensions, over the global batch.

    Arguments: :class:`~selfsup.methods.base.Method`.
    """

    local_views_ok = False

    def objective(self, views: Views, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h = self.encode(views)
        z = self.head(h)
        return self.criterion(z, views=views.count), h, z
