"""MoCo v2 (He et al., CVPR 2020; Chen et al., arXiv 2003.04297): momentum keys and a queue."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from selfsup.augment import Views
from selfsup.methods._momentum import MomentumTeacher
from selfsup.methods._queue import KeyQueue
from selfsup.methods.base import Method, cosine_momentum


class MoCo(Method):
    """Queries from the online encoder, keys from its momentum copy, negatives from a queue.

    Symmetric over the views: the query of view v has the keys of the other views of its image as
    positives. With ``batch_negatives=none`` (MoCo v2) the negatives are the queue only; ``all``
    adds every key of the batch. After each step the first view's keys of the global batch are
    enqueued (gathered over ranks), and after each optimiser step the key encoder moves by EMA
    with momentum ``base_momentum -> final_momentum`` on a cosine schedule (equal values: a
    constant m, the paper's 0.999 on ImageNet). The contrastive loss (``loss=ntxent|dcl|dclw``)
    receives the keys and the queue as its candidates.

    Args:
        queue_size: K keys (the paper: 65,536 on ImageNet; keep it well below the training set's
            size, or an image's own old keys become its negatives).
        base_momentum: m at the first step.
        final_momentum: m at the last step.
        batch_negatives: ``none`` (MoCo v2) or ``all``.
        **kwargs: :class:`~selfsup.methods.base.Method`'s arguments.
    """

    local_views_ok = False

    def __init__(
        self,
        *args: Any,
        queue_size: int = 4096,
        base_momentum: float = 0.99,
        final_momentum: float = 1.0,
        batch_negatives: str = "none",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.momentum_teacher = MomentumTeacher(self.backbone, self.head)
        self.queue = KeyQueue(queue_size, self.head_dim)
        self.base_momentum, self.final_momentum = base_momentum, final_momentum
        self.batch_negatives = batch_negatives

    @property
    def teacher(self) -> nn.Module:
        return self.momentum_teacher

    def objective(self, views: Views, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h = self.encode(views)
        q = self.head(h)  # (V*B, D) queries
        with torch.no_grad():
            hk = self.encode(views, self.momentum_teacher.backbone)
            k = self.momentum_teacher.head(hk)  # (V*B, D) keys
        loss = self.criterion(
            q,
            views=views.count,
            mix=views.mix,
            keys=k,
            negatives=self.queue.keys.clone(),
            batch_negatives=self.batch_negatives,
        )
        self.queue.enqueue(k[: index.shape[0]])  # the first view's keys, after the loss used the queue
        if self.eval_with == "teacher":
            return loss, hk, k
        return loss, h, q

    def after_optimizer_step(self, step: int, total: int) -> None:
        m = cosine_momentum(step, total, self.base_momentum, self.final_momentum)
        self.momentum_teacher.update(self.backbone, self.head, m)
        self.log("train/momentum", m, on_step=True, on_epoch=False)
