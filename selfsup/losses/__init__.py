"""Objectives. Each takes embeddings of shape (V*B, D), view-major (row ``v * B + i`` is view v of image i)."""

from selfsup.losses.align_uniform import AlignUniform
from selfsup.losses.barlow import BarlowTwinsLoss
from selfsup.losses.byol import BYOLLoss
from selfsup.losses.dcl import DCL
from selfsup.losses.dclw import DCLW
from selfsup.losses.hcl import HCL
from selfsup.losses.ntxent import NTXent
from selfsup.losses.simsiam import SimSiamLoss
from selfsup.losses.vicreg import VICRegLoss

__all__ = ["DCL", "DCLW", "HCL", "AlignUniform", "BYOLLoss", "BarlowTwinsLoss", "NTXent", "SimSiamLoss", "VICRegLoss"]
