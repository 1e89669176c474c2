"""SimCLR (Chen et al., ICML 2020): V views, one backbone and projector, a contrastive loss."""

from __future__ import annotations

from selfsup.methods.base import Method


class SimCLR(Method):
    """Every view of an image is a positive of every other; the rest of the batch are negatives.

    The contract's default objective: backbone -> head -> ``loss(z, views=V, mix=...)``, with a
    pluggable loss (``loss=ntxent|dcl|dclw``); multi-crop's local views join the global ones.
    Arguments: :class:`~selfsup.methods.base.Method`.
    """
