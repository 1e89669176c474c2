"""Contrastive objectives. Each takes embeddings ``z`` of shape (V*B, D), view-major."""

from selfsup.losses.dcl import DCL
from selfsup.losses.dclw import DCLW
from selfsup.losses.ntxent import NTXent

__all__ = ["DCL", "DCLW", "NTXent"]
