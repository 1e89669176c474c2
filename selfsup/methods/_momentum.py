"""A momentum (EMA) copy of the online backbone and head: MoCo's key encoder, BYOL's target."""

from __future__ import annotations

import copy

import torch
from torch import nn


class MomentumTeacher(nn.Module):
    """``backbone`` and ``head`` copied from the online networks, then moved by EMA only.

    ξ ← m ξ + (1 - m) θ after every optimiser step (He et al. 2020; Grill et al. 2020) for the
    parameters. Buffers (BatchNorm running statistics) are the teacher's own, kept by its own
    forward passes in training mode, as in MoCo's key encoder. No parameter requires a gradient,
    and the copies live in the module's ``state_dict``, so a resumed run continues from the
    same teacher.

    Args:
        backbone: the online backbone (copied).
        head: the online projector (copied).
    """

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone: nn.Module = copy.deepcopy(backbone)
        self.head: nn.Module = copy.deepcopy(head)
        self.requires_grad_(False)

    @torch.no_grad()
    def update(self, backbone: nn.Module, head: nn.Module, momentum: float) -> None:
        """ξ ← m ξ + (1 - m) θ for the parameters."""
        for mine, online in ((self.backbone, backbone), (self.head, head)):
            for t, o in zip(mine.parameters(), online.parameters(), strict=True):
                t.mul_(momentum).add_(o.detach(), alpha=1 - momentum)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, embeddings) of prepared images."""
        h = self.backbone(x)
        return h, self.head(h)
