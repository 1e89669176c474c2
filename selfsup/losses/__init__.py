"""Objectives. Each takes embeddings of shape (V*B, D), view-major (row ``v * B + i`` is view v of image i)."""

from selfsup.losses.align_uniform import AlignUniform
from selfsup.losses.amcl import AMCL
from selfsup.losses.barlow import BarlowTwinsLoss
from selfsup.losses.byol import BYOLLoss
from selfsup.losses.dcl import DCL
from selfsup.losses.dclw import DCLW
from selfsup.losses.hcl import HCL
from selfsup.losses.isogclr import ISogCLR
from selfsup.losses.ntxent import NTXent
from selfsup.losses.simsiam import SimSiamLoss
from selfsup.losses.vicreg import VICRegLoss

__all__ = [
    "AMCL",
    "DCL",
    "DCLW",
    "HCL",
    "AlignUniform",
    "BYOLLoss",
    "BarlowTwinsLoss",
    "ISogCLR",
    "NTXent",
    "SimSiamLoss",
    "VICRegLoss",
]
