"""NNCLR (Dwibedi et al., ICCV 2021): nearest neighbours from a support set as positives."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from selfsup.augment import Views
from selfsup.methods._queue import KeyQueue
from selfsup.methods.base import Method
from selfsup.schema import PositiveInt


class NNCLR(Method):
    """The nearest neighbour of a view's projection, from a queue of past projections, is the
    anchor; the predictions of the image's other view are its positive, the other images'
    predictions of that view its negatives.

    L = -log exp(NN(z_i)·p_i⁺/τ) / Σ_k exp(NN(z_i)·p_k⁺/τ) with NN(z) = argmax_{q ∈ Q} cos(z, q),
    symmetrised over the views (``loss=ntxent``, τ 0.1 the paper's; ``dcl`` drops the positive
    from the denominator). After the loss the first view's projections are enqueued (gathered
    over ranks, so every rank keeps the same support set). The support set starts as random unit
    vectors and is a buffer, so it is in the checkpoint. Needs ``predictor``.

    Args:
        support_size: |Q| (the paper: 98,304 on ImageNet; keep it below the training set's size).
        **kwargs: :class:`~selfsup.methods.base.Method`'s arguments.
    """

    local_views_ok = False
    needs_predictor = True
    mix_ok = False  # the anchor is a support-set row, not a picture: no soft targets

    def __init__(self, *args: Any, support_size: PositiveInt = 98304, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.support = KeyQueue(support_size, self.head_dim, option="method.module.support_size")

    def objective(self, views: Views, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        assert self.predictor is not None  # needs_predictor
        h = self.encode(views)
        z = self.by_view(self.head, h, views.count)  # (V*B, D)
        p = self.by_view(self.predictor, z, views.count)
        anchors = self.support.nearest(z)  # (V*B, D), no gradient
        loss = self.criterion(anchors, views=views.count, keys=p, batch_negatives="other_views")
        self.support.enqueue(z[: index.shape[0]])  # the first view's projections, after the lookup
        return loss, h, z
