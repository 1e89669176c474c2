"""RankMe of the held-out features during training."""

from __future__ import annotations

from typing import Any

import lightning as L
from torch import Tensor

from selfsup.eval.held_out import HeldOutMetric
from selfsup.heads import projector_parts
from selfsup.metrics import rankme


class RankMeCallback(HeldOutMetric):
    """Logs ``val/rankme_backbone`` and ``val/rankme_projector`` (and ``val/rankme_projector_head{c}``
    for each head of a multi-head projector) from the validation features.

    The figures of its last computation wait in :meth:`take` (for
    :class:`~selfsup.eval.collapse.CollapseCheck`) until read once.

    Args:
        every_n_epochs: compute after every N-th epoch (and after the last).
        eps: RankMe's ε.
    """

    def __init__(self, every_n_epochs: int = 1, eps: float = 1e-7) -> None:
        super().__init__(every_n_epochs)
        self.eps = eps
        self._last: tuple[dict[str, float], int] | None = None

    def compute(self, trainer: L.Trainer, module: Any, features: dict[str, Tensor]) -> dict[str, float]:
        parts = projector_parts(module.eval_head, features["z"])  # a multi-head projector: each head too
        out = {"rankme_backbone": rankme(features["h"], eps=self.eps)} | {
            f"rankme_{name}": rankme(z, eps=self.eps) for name, z in parts.items()
        }
        self._last = (out, int(features["h"].shape[0]))
        return out

    def take(self) -> tuple[dict[str, float], int] | None:
        """The last computed RankMe figures and the held-out image count they are of, once (then None):
        a validation that did not compute them (not due, or not rank 0) gives None."""
        last, self._last = self._last, None
        return last
