"""MoCo v3 (Chen, Xie and He, ICCV 2021): momentum keys, a predictor, in-batch negatives."""

from __future__ import annotations

from torch import Tensor

from selfsup.augment import Views
from selfsup.methods._momentum import TeacherMethod


class MoCoV3(TeacherMethod):
    """The online encoder's predictions contrast against the momentum encoder's keys.

    For the prediction of view v of image i the key of view u ≠ v of i is the positive and the
    keys of view u of the other images the negatives (``batch_negatives=other_views``; no queue).
    Symmetric over the views. The paper's loss is 2τ·(ℓ(q1, k2) + ℓ(q2, k1)); ours is the mean
    of the two directions, 4τ times smaller: a constant factor the learning rate absorbs. No
    BatchNorm- or ResNet-specific part: it trains ViTs (``backbone=timm backbone.name=vit_*``).
    Needs ``predictor``. Arguments: :class:`~selfsup.methods._momentum.TeacherMethod`.
    """

    needs_predictor = True

    def objective(self, views: Views, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        assert self.predictor is not None  # needs_predictor
        h = self.encode(views)
        z = self.by_view(self.head, h, views.count)
        hk, k = self.teach(views)
        q = self.by_view(self.predictor, z, views.count)
        loss = self.criterion(q, views=views.count, mix=views.mix, keys=k, batch_negatives="other_views")
        return loss, *self.for_eval(h, z, hk, k)
