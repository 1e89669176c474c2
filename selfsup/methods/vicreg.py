"""VICReg (Bardes, Ponce and LeCun, ICLR 2022): variance, invariance, covariance."""

from __future__ import annotations

from selfsup.methods.base import Method


class VICReg(Method):
    """Backbone and expander on two views; the loss (``loss=vicreg``) keeps each embedding
    dimension's spread, matches the views and decorrelates the dimensions, over the global batch
    (the contract's default objective). Arguments: :class:`~selfsup.methods.base.Method`.
    """

    local_views_ok = False
