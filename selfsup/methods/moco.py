"""MoCo v2 (He et al., CVPR 2020; Chen et al., arXiv 2003.04297): momentum keys and a queue."""

from __future__ import annotations

from typing import Any, Literal

from torch import Tensor

from selfsup.augment import Views
from selfsup.methods._momentum import TeacherMethod
from selfsup.methods._queue import KeyQueue
from selfsup.schema import PositiveInt


class MoCo(TeacherMethod):
    """Queries from the online encoder, keys from its momentum copy, negatives from a queue.

    Symmetric over the views: the query of view v has the keys of the other views of its image as
    positives. With ``batch_negatives=none`` (MoCo v2) the negatives are the queue only; ``all``
    adds every key of the batch. After each step the first view's keys of the global batch are
    enqueued (gathered over ranks); the key encoder moves by EMA after each optimiser step
    (:class:`~selfsup.methods._momentum.TeacherMethod`; the paper: a constant 0.999 on ImageNet).
    The contrastive loss (``loss=ntxent|dcl|dclw``) receives the keys and the queue as candidates.

    Args:
        queue_size: K keys (the paper: 65,536 on ImageNet; keep it well below the training set's
            size, or an image's own old keys become its negatives).
        batch_negatives: ``none`` (MoCo v2) or ``all``.
        *args, **kwargs: :class:`~selfsup.methods._momentum.TeacherMethod`'s arguments.
    """

    def __init__(
        self,
        *args: Any,
        queue_size: PositiveInt = 4096,
        batch_negatives: Literal["none", "all"] = "none",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.queue = KeyQueue(queue_size, self.head_dim)
        self.batch_negatives = batch_negatives

    def objective(self, views: Views, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h = self.encode(views)
        q = self.head(h)  # (V*B, D) queries
        hk, k = self.teach(views)  # (V*B, D) keys
        negatives = self.queue.keys.clone()
        loss = self.criterion(
            q, views=views.count, mix=views.mix, keys=k, negatives=negatives, batch_negatives=self.batch_negatives
        )
        self.queue.enqueue(k[: index.shape[0]])  # the first view's keys, after the loss used the queue
        return loss, *self.for_eval(h, q, hk, k)
