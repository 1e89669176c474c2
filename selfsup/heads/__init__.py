"""Projection heads."""

from selfsup.heads.mlp import MLPHead
from selfsup.heads.multi import MultiHead, projector_parts

__all__ = ["MLPHead", "MultiHead", "projector_parts"]
