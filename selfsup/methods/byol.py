"""BYOL (Grill et al., NeurIPS 2020): a predictor chases an EMA target, no negatives."""

from __future__ import annotations

from torch import Tensor

from selfsup.augment import Views
from selfsup.methods._momentum import TeacherMethod


class BYOL(TeacherMethod):
    """The online network's prediction of each view regresses the target's projection of the others.

    The target is an EMA of the online backbone and projector, momentum τ_k = 1 - (1 - τ_base)
    (cos(πk/K) + 1)/2 (τ_base 0.996) after each optimiser step; the loss (``loss=byol``) is the
    normalised MSE 2 - 2 cos(p, sg(z')), symmetrised over the views. Needs ``predictor``.
    Arguments: :class:`~selfsup.methods._momentum.TeacherMethod`.
    """

    needs_predictor = True

    def objective(self, views: Views, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        assert self.predictor is not None  # needs_predictor
        h = self.encode(views)
        z = self.by_view(self.head, h, views.count)
        ht, zt = self.teach(views)
        loss = self.criterion(self.by_view(self.predictor, z, views.count), zt, views=views.count)
        return loss, *self.for_eval(h, z, ht, zt)
