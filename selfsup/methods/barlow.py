"""Barlow Twins (Zbontar et al., ICML 2021): decorrelate the embedding, no negatives."""

from __future__ import annotations

from selfsup.methods.base import Method


class BarlowTwins(Method):
    """Backbone and projector on two views; the loss (``loss=barlow``) drives the views'
    cross-correlation matrix, over the global batch, to the identity (the contract's default
    objective). Arguments: :class:`~selfsup.methods.base.Method`.
    """

    local_views_ok = False
