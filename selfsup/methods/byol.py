"""BYOL (Grill et al., NeurIPS 2020): a predictor chases an EMA target, no negatives."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from selfsup.augment import Views
from selfsup.methods._momentum import MomentumTeacher
from selfsup.methods.base import Method, cosine_momentum


class BYOL(Method):
    """The online network's prediction of each view regresses the target's projection of the others.

    The target is an EMA of the online backbone and projector, momentum τ_k = 1 - (1 - τ_base)
    (cos(πk/K) + 1)/2 (τ_base 0.996) after each optimiser step; the loss (``loss=byol``) is the
    normalised MSE 2 - 2 cos(p, sg(z')), symmetrised over the views.

    Args:
        predictor: builds the predictor from its input width (a Hydra partial of ``MLPHead``).
        base_momentum: τ_base.
        final_momentum: τ at the last step (1 in the paper).
        **kwargs: :class:`~selfsup.methods.base.Method`'s arguments.
    """

    local_views_ok = False

    def __init__(
        self,
        *args: Any,
        predictor: Callable[..., nn.Module],
        base_momentum: float = 0.996,
        final_momentum: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.predictor = predictor(in_dim=self.head_dim)
        self.momentum_teacher = MomentumTeacher(self.backbone, self.head)
        self.base_momentum, self.final_momentum = base_momentum, final_momentum

    @property
    def teacher(self) -> nn.Module:
        return self.momentum_teacher

    def trained_modules(self) -> list[nn.Module]:
        return [self.backbone, self.head, self.predictor]

    def objective(self, views: Views, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h = self.encode(views)
        z = self.head(h)
        p = self.predictor(z)  # (V*B, D)
        with torch.no_grad():
            ht = self.encode(views, self.momentum_teacher.backbone)
            zt = self.momentum_teacher.head(ht)
        loss = self.criterion(p, zt, views=views.count)
        if self.eval_with == "teacher":
            return loss, ht, zt
        return loss, h, z

    def after_optimizer_step(self, step: int, total: int) -> None:
        m = cosine_momentum(step, total, self.base_momentum, self.final_momentum)
        self.momentum_teacher.update(self.backbone, self.head, m)
        self.log("train/momentum", m, on_step=True, on_epoch=False)
