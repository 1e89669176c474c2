"""A momentum (EMA) copy of the online backbone and head (MoCo's key encoder, BYOL's target),
and the base of the methods that keep one."""

from __future__ import annotations

import copy
from typing import Any

import torch
from timm.layers import DropPath
from torch import Tensor, nn

from selfsup.augment import Views
from selfsup.methods.base import Method, cosine_momentum
from selfsup.schema import Probability


class MomentumTeacher(nn.Module):
    """``backbone`` and ``head`` copied from the online networks, then moved by EMA only.

    ξ ← m ξ + (1 - m) θ after every optimiser step (He et al. 2020; Grill et al. 2020) for the
    parameters. Buffers (BatchNorm running statistics) are the teacher's own, kept by its own
    forward passes in training mode, as in MoCo's key encoder. No parameter requires a gradient,
    and the copies live in the module's ``state_dict``, so a resumed run continues from the
    same teacher. The teacher drops nothing: the copies' stochastic depth (timm's ``DropPath``,
    ``drop_path_rate``) and dropout are set to 0, as the official DINO and iBOT build their
    teacher without the student's ``drop_path_rate`` (``main_dino.py``, ``main_ibot.py``).

    Args:
        backbone: the online backbone (copied).
        head: the online projector (copied).
    """

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone: nn.Module = copy.deepcopy(backbone)
        self.head: nn.Module = copy.deepcopy(head)
        self.requires_grad_(False)
        for module in self.modules():
            if isinstance(module, DropPath):
                module.drop_prob = 0.0
            elif isinstance(module, nn.modules.dropout._DropoutNd):
                module.p = 0.0

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


class TeacherMethod(Method):
    """A method with a :class:`MomentumTeacher` of its backbone and head (MoCo, MoCo v3, BYOL).

    The teacher moves after every optimiser step with m from ``base_momentum`` to
    ``final_momentum`` on BYOL's cosine schedule (equal values: a constant m), logged as
    ``train/momentum``; ``eval_with=teacher`` evaluates it.

    Args:
        base_momentum: m at the first step.
        final_momentum: m at the last step.
        *args, **kwargs: :class:`~selfsup.methods.base.Method`'s arguments.
    """

    local_views_ok = False

    def __init__(
        self, *args: Any, base_momentum: Probability = 0.99, final_momentum: Probability = 1.0, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        if not 0 <= base_momentum <= final_momentum <= 1:
            raise ValueError(f"need 0 <= base_momentum <= final_momentum <= 1; got {base_momentum}, {final_momentum}")
        self.momentum_teacher = MomentumTeacher(self.backbone, self.head)
        self.base_momentum, self.final_momentum = base_momentum, final_momentum

    @property
    def teacher(self) -> nn.Module:
        return self.momentum_teacher

    @torch.no_grad()
    def teach(self, views: Views) -> tuple[Tensor, Tensor]:
        """The teacher's features (V*B, F) and embeddings (V*B, D) of the views, without gradient,
        in the method's forward layout (:meth:`~selfsup.methods.base.Method.by_view`)."""
        h = self.encode(views, self.momentum_teacher.backbone)
        return h, self.by_view(self.momentum_teacher.head, h, views.count)

    def for_eval(self, h: Tensor, z: Tensor, ht: Tensor, zt: Tensor) -> tuple[Tensor, Tensor]:
        """The features and embeddings of the encoder ``eval_with`` names."""
        return (ht, zt) if self.eval_with == "teacher" else (h, z)

    def after_optimizer_step(self, step: int, total: int) -> None:
        m = cosine_momentum(step, total, self.base_momentum, self.final_momentum)
        self.momentum_teacher.update(self.backbone, self.head, m)
        self.log("train/momentum", m, on_step=True, on_epoch=False)
