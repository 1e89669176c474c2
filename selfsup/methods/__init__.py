"""Lightning modules on one contract (:mod:`selfsup.methods.base`): views -> backbone -> head -> loss.

A method is found from its config: ``configs/method/NAME.yaml`` names its class by module
(``selfsup.methods.NAME.Class``), and :mod:`selfsup.registry` reads every such config, so a new
method is its module, its config and its test, with no line here. The names below are those a
run's saved ``config.yaml`` may name (``selfsup.methods.MoCo``), so every such run still loads.
"""

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
