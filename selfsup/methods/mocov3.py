"""MoCo v3 (Chen, Xie and He, ICCV 2021): momentum keys, a predictor, in-batch negatives."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from selfsup.augment import Views
from selfsup.methods._momentum import MomentumTeacher
from selfsup.methods.base import Method, cosine_momentum


class MoCoV3(Method):
    """The online encoder's predictions contrast against the momentum encoder's keys.

    For the prediction of view v of image i the key of view u ≠ v of i is the positive and the
    keys of view u of the other images the negatives (``batch_negatives=other_views``; no queue).
    Symmetric over the views. The paper's loss is 2τ·(ℓ(q1, k2) + ℓ(q2, k1)); ours is the mean
    of the two directions, 4τ times smaller: a constant factor the learning rate absorbs. No
    BatchNorm or ReLU-specific part: it trains ViTs (``backbone=timm backbone.name=vit_*``).

    Args:
        predictor: builds the predictor from its input width (a Hydra partial of ``MLPHead``).
        base_momentum: m at the first step (0.99 in the paper, cosine to 1).
        final_momentum: m at the last step.
        **kwargs: :class:`~selfsup.methods.base.Method`'s arguments.
    """

    local_views_ok = False

    def __init__(
        self,
        *args: Any,
        predictor: Callable[..., nn.Module],
        base_momentum: float = 0.99,
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
        q = self.predictor(z)  # (V*B, D)
        with torch.no_grad():
            hk = self.encode(views, self.momentum_teacher.backbone)
            k = self.momentum_teacher.head(hk)
        loss = self.criterion(q, views=views.count, mix=views.mix, keys=k, batch_negatives="other_views")
        if self.eval_with == "teacher":
            return loss, hk, k
        return loss, h, z

    def after_optimizer_step(self, step: int, total: int) -> None:
        m = cosine_momentum(step, total, self.base_momentum, self.final_momentum)
        self.momentum_teacher.update(self.backbone, self.head, m)
        self.log("train/momentum", m, on_step=True, on_epoch=False)
