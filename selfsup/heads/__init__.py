"""Projection heads."""

from selfsup.heads.mlp import MLPHead

__all__ = ["MLPHead"]
