"""SwAV (Caron et al., NeurIPS 2020): swapped prediction of online cluster assignments."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from selfsup.augment import Views
from selfsup.dist import world_size
from selfsup.methods._queue import KeyQueue
from selfsup.methods.base import Method
from selfsup.schema import NonNegativeInt


class SwAV(Method):
    """Backbone and projector on every view (multi-crop's local views included); ``loss=swav``
    computes each global view's codes over the prototypes by Sinkhorn-Knopp and predicts them from
    every other view (:class:`~selfsup.losses.swav.SwAVLoss`, which holds the prototypes).

    Caron et al. 2020, "Unsupervised Learning of Visual Features by Contrasting Cluster
    Assignments"; official code github.com/facebookresearch/swav (``main_swav.py``). What it
    follows:

    - the prototypes are rescaled to unit length before every step, and get no update in the
      first ``freeze_prototypes_epochs`` epochs (the official ``freeze_prototypes_niters``: 313
      iterations, one epoch of ImageNet at batch 4,096);
    - a queue of the global views' earlier projections (``queue_size`` rows per global view,
      filled from epoch ``queue_start_epoch`` on and used once full) joins the Sinkhorn problem,
      as the official ``queue_length`` / ``epoch_queue_starts`` (3,840 from epoch 15 at batch 256).
      The queue holds the global batch's rows on every rank (gathered), so two DDP processes
      compute the codes one process would; it is a buffer, restored on resume with the count of
      rows written (``queued``);
    - the views of a size go through the backbone together (``forward_layout: joint``), as the
      official multi-resolution forward.

    Args:
        queue_size: rows kept per global view (0: no queue).
        queue_start_epoch: the epoch (0-based) the queue starts filling in.
        freeze_prototypes_epochs: the epochs the prototypes are frozen for.
        *args, **kwargs: :class:`~selfsup.methods.base.Method`'s arguments.
    """

    mix_ok = False

    def __init__(
        self,
        *args: Any,
        queue_size: NonNegativeInt = 0,
        queue_start_epoch: NonNegativeInt = 15,
        freeze_prototypes_epochs: NonNegativeInt = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        prototypes = getattr(self.loss_fn, "prototypes", None)
        if not isinstance(prototypes, nn.Linear) or not hasattr(self.loss_fn, "normalize_prototypes"):
            raise ValueError(f"SwAV needs loss=swav (a loss with prototypes), not {type(self.loss_fn).__name__}")
        self.queue_start_epoch, self.freeze_prototypes_epochs = queue_start_epoch, freeze_prototypes_epochs
        self.queues = nn.ModuleList()
        self.queued: Tensor
        self.register_buffer("queued", torch.zeros((), dtype=torch.long))
        if queue_size:
            global_views = int(self.view_maker.views)  # one queue per global view
            self.queues.extend(
                KeyQueue(queue_size, self.head_dim, "method.module.queue_size") for _ in range(global_views)
            )

    def objective(self, views: Views, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        self.loss_fn.normalize_prototypes()  # type: ignore[operator]  # checked in __init__
        h = self.encode(views)
        z = self.by_view(self.head, h, views.count)
        assign = views.global_count
        queue = None
        if len(self.queues):
            if len(self.queues) != assign:
                raise ValueError(f"SwAV's queue has {len(self.queues)} parts and the batch {assign} global views")
            keys: list[Tensor] = [q.keys for q in self.queues]  # type: ignore[misc]
            if int(self.queued) >= keys[0].shape[0]:  # used once full, as the official code
                queue = keys
        loss = self.criterion(z, views=views.count, assign=assign, queue=queue)
        if len(self.queues) and self.current_epoch >= self.queue_start_epoch:
            b = views.images
            for a, q in enumerate(self.queues):
                q.enqueue(z[a * b : (a + 1) * b])  # type: ignore[operator]  # KeyQueue detaches and L2-normalises
            self.queued += b * world_size()  # rows of the global batch
        return loss, h, z

    def on_before_optimizer_step(self, optimizer: Any) -> None:
        """No update of the prototypes in the first ``freeze_prototypes_epochs`` epochs."""
        if self.current_epoch < self.freeze_prototypes_epochs:
            for p in self.loss_fn.prototypes.parameters():  # type: ignore[union-attr]
                p.grad = None
