"""Representation metrics that need no labels."""

from selfsup.metrics.rankme import rankme

__all__ = ["rankme"]
