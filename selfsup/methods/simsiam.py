"""SimSiam (Chen and He, CVPR 2021): a predictor and a stop-gradient, no momentum, no negatives."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from selfsup.augment import Views
from selfsup.methods.base import Method


class SimSiam(Method):
    """D(p1, sg(z2))/2 + D(p2, sg(z1))/2 with D the negative cosine (``loss=simsiam``).

    Args:
        predictor: builds the predictor from its input width (a Hydra partial of ``MLPHead``;
            the paper's is a bottleneck, 2048 -> 512 -> 2048).
        **kwargs: :class:`~selfsup.methods.base.Method`'s arguments.
    """

    local_views_ok = False

    def __init__(self, *args: Any, predictor: Callable[..., nn.Module], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.predictor = predictor(in_dim=self.head_dim)

    def trained_modules(self) -> list[nn.Module]:
        return [self.backbone, self.head, self.predictor]

    def objective(self, views: Views, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h = self.encode(views)
        z = self.head(h)
        p = self.predictor(z)
        return self.criterion(p, z.detach(), views=views.count), h, z
