"""Distillation's loss: mean squared error between the student's regressed features and a frozen
teacher's."""

from __future__ import annotations

from torch import Tensor, nn


class DistillLoss(nn.Module):
    """Mean squared error between the student's prediction and the teacher's features, over every
    view and feature, the features not normalised (LightlyTrain's distillation, ``DistillationV2Loss``:
    ``MSELoss`` of the unnormalised representations):

    ``L = 1 / (N·T) · Σ_n Σ_t (p_n,t − y_n,t)²``

    for N rows (views) of T features, ``p`` the student's, ``y`` the teacher's (no gradient).

    Example:
        >>> from selfsup.losses.distill import DistillLoss
        >>> student, teacher = torch.randn(8, 512), torch.randn(8, 512)  # 8 views, a 512-wide teacher
        >>> DistillLoss()(student, target=teacher).shape
        torch.Size([])
    """

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """``pred`` and ``target`` (N, T); a scalar."""
        if pred.shape != target.shape:
            raise ValueError(f"the student's prediction {tuple(pred.shape)} and the teacher's features "
                             f"{tuple(target.shape)} must have one shape (N, T)")  # fmt: skip
        return ((pred - target.detach()) ** 2).mean()
