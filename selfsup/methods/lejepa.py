"""LeJEPA (Balestriero and LeCun 2025): every view predicts the mean of the global views'
embeddings, and SIGReg keeps the embeddings an isotropic Gaussian; no teacher, no stop-gradient."""

from __future__ import annotations

from torch import Tensor

from selfsup.augment import Views
from selfsup.methods.base import Method


class LeJEPA(Method):
    """Backbone and projector on every view, global and local; ``loss=lejepa`` of the projections
    with the global views' count (the paper's Algorithm 2; official code
    github.com/rbalestr-lab/lejepa). The evaluation reads the backbone's features.

    "LeJEPA: Provable and Scalable Self-Supervised Learning Without the Heuristics", arXiv
    2511.08544. Arguments: :class:`~selfsup.methods.base.Method`.
    """

    mix_ok = False

    def objective(self, views: Views, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h = self.encode(views)
        z = self.by_view(self.head, h, views.count)
        return self.criterion(z, views=views.count, global_views=views.global_count), h, z
