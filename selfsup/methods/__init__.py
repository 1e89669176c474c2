"""Lightning modules on one contract (:mod:`selfsup.methods.base`): views -> backbone -> head -> loss."""

from selfsup.methods.barlow import BarlowTwins
from selfsup.methods.base import Method
from selfsup.methods.byol import BYOL
from selfsup.methods.moco import MoCo
from selfsup.methods.mocov3 import MoCoV3
from selfsup.methods.nnclr import NNCLR
from selfsup.methods.npid import NPID
from selfsup.methods.simclr import SimCLR
from selfsup.methods.simsiam import SimSiam
from selfsup.methods.vicreg import VICReg

__all__ = ["BYOL", "NNCLR", "NPID", "BarlowTwins", "Method", "MoCo", "MoCoV3", "SimCLR", "SimSiam", "VICReg"]
