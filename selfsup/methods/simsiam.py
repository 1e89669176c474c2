"""SimSiam (Chen and He, CVPR 2021): a predictor and a stop-gradient, no momentum, no negatives."""

from __future__ import annotations

from torch import Tensor

from selfsup.augment import Views
from selfsup.methods.base import Method


class SimSiam(Method):
    """D(p1, sg(z2))/2 + D(p2, sg(z1))/2 with D the negative cosine (``loss=simsiam``).

    Needs ``predictor`` (the paper's is a bottleneck, 2048 -> 512 -> 2048). Arguments:
    :class:`~selfsup.methods.base.Method`.
    """

    local_views_ok = False
    needs_predictor = True

    def objective(self, views: Views, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        assert self.predictor is not None  # needs_predictor
        h = self.encode(views)
        z = self.by_view(self.head, h, views.count)
        return self.criterion(self.by_view(self.predictor, z, views.count), z.detach(), views=views.count), h, z
