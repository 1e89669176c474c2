"""MoCo v2 (He et al., CVPR 2020; Chen et al., arXiv 2003.04297): momentum keys and a queue."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import torch
from torch import Tensor

from selfsup.augment import Views
from selfsup.dist import gather_cat, rank, shared_permutations, world_size
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

    Shuffle BN (He et al. 2020, sec. 3.3; the official code's ``_batch_shuffle_ddp`` and
    ``_batch_unshuffle_ddp``): under DDP without SyncBatchNorm each rank's BN normalises over its
    own images, so a query and its positive key would share BN statistics, a signal the model can
    cheat with. With ``shuffle_bn`` the key encoder's input views are gathered from every rank,
    each view's global batch is shuffled by a permutation shared by all ranks (rank 0's,
    broadcast), every rank forwards its shard through the key encoder, and the keys are gathered
    and un-shuffled back to this rank's images. The keys are the same rows either way; only the
    key encoder's BN statistics (in train mode) change. On one process it does nothing (there is
    no other rank's shard to mix in, and no random number is drawn).

    Args:
        queue_size: K keys (the paper: 65,536 on ImageNet; keep it well below the training set's
            size, or an image's own old keys become its negatives).
        batch_negatives: ``none`` (MoCo v2) or ``all``.
        shuffle_bn: shuffle the key encoder's batch across ranks (no-op on one process).
        *args: :class:`~selfsup.methods._momentum.TeacherMethod`'s positional arguments.
        **kwargs: :class:`~selfsup.methods._momentum.TeacherMethod`'s keyword arguments.
    """

    def __init__(
        self,
        *args: Any,
        queue_size: PositiveInt = 4096,
        batch_negatives: Literal["none", "all"] = "none",
        shuffle_bn: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.queue = KeyQueue(queue_size, self.head_dim, option="method.module.queue_size")
        self.batch_negatives = batch_negatives
        self.shuffle_bn = shuffle_bn

    @torch.no_grad()
    def teach(self, views: Views) -> tuple[Tensor, Tensor]:
        """The key encoder's features and keys of the views, with shuffle BN across ranks when
        ``shuffle_bn`` is on under DDP (the same rows, in the same order, as without)."""
        if not self.shuffle_bn or world_size() == 1:
            return super().teach(views)
        b = views.images
        perms = shared_permutations(views.count, b * world_size(), views.groups[0].device)
        groups, first = [], 0
        for g in views.groups:
            count = g.shape[0] // b
            groups.append(_shuffle(g, perms[first : first + count]))
            first += count
        h, k = super().teach(dataclasses.replace(views, groups=groups))
        return _unshuffle(h, perms), _unshuffle(k, perms)

    def objective(self, views: Views, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h = self.encode(views)
        q = self.by_view(self.head, h, views.count)  # (V*B, D) queries
        hk, k = self.teach(views)  # (V*B, D) keys
        negatives = self.queue.keys.clone()
        loss = self.criterion(
            q, views=views.count, mix=views.mix, keys=k, negatives=negatives, batch_negatives=self.batch_negatives
        )
        self.queue.enqueue(k[: index.shape[0]])  # the first view's keys, after the loss used the queue
        return loss, *self.for_eval(h, q, hk, k)


def _global_views(x: Tensor, count: int) -> Tensor:
    """This rank's view-major (count*B, ...) -> (count, world*B, ...): each view's global batch,
    the ranks' images in rank order."""
    return gather_cat(x).view(world_size(), count, -1, *x.shape[1:]).transpose(0, 1).flatten(1, 2)


def _shard(x: Tensor) -> Tensor:
    """(count, world*B, ...) -> this rank's view-major (count*B, ...)."""
    b = x.shape[1] // world_size()
    return x[:, rank() * b : (rank() + 1) * b].flatten(0, 1)


def _shuffle(x: Tensor, perms: Tensor) -> Tensor:
    """This rank's shard of every view's global batch reordered by its permutation (count, world*B)."""
    views = torch.arange(perms.shape[0], device=perms.device)[:, None]
    return _shard(_global_views(x, perms.shape[0])[views, perms])


def _unshuffle(y: Tensor, perms: Tensor) -> Tensor:
    """The inverse of :func:`_shuffle` on its outputs: this rank's images' rows, in their order."""
    views = torch.arange(perms.shape[0], device=perms.device)[:, None]
    return _shard(_global_views(y, perms.shape[0])[views, perms.argsort(dim=1)])
