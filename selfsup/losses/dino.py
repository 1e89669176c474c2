"""DINO's self-distillation loss with a centred, sharpened teacher (Caron et al., ICCV 2021)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.dist import gather_cat
from selfsup.losses._koleo import koleo
from selfsup.losses._sinkhorn import sinkhorn
from selfsup.schema import NonNegative, NonNegativeInt, Positive, PositiveInt, Probability


class DINOLoss(nn.Module):
    """Cross-entropy between the teacher's centred, sharpened softmax of each global view and the
    student's softmax of every other view (the paper's Eq. 3; official code ``main_dino.py``,
    ``DINOLoss``):

    ``L = mean over pairs (t, s), s ≠ t, of mean_i -Σ_k P_t(x_t,i)_k log P_s(x_s,i)_k``, with
    ``P_t = softmax((g_t - c) / τ_t)`` over the teacher's G global views and
    ``P_s = softmax(g_s / τ_s)`` over the student's V views (globals first, in the same order).

    After the loss has read it, the centre c moves to ``m c + (1 - m) mean(g_t)``, the mean over
    the global batch (every DDP rank's teacher outputs; the paper's Eq. 4). The centre is a buffer:
    a resumed run continues with it.

    ``centering="sinkhorn_knopp"`` replaces the centred softmax with DINOv2's (Oquab et al., TMLR
    2024; official code github.com/facebookresearch/dinov2, ``sinkhorn_knopp_teacher``):
    ``P_t`` are the Sinkhorn-Knopp codes of the teacher's outputs of all G global views of the
    global batch at ε = τ_t (:func:`~selfsup.losses._sinkhorn.sinkhorn`), so that every one of the
    K outputs gets an equal share of the batch; the centre is then neither read nor moved.

    ``koleo_weight`` w > 0 adds DINOv2's KoLeo regulariser of the student's backbone features
    (its class tokens) of the global views, ``w Σ_g koleo(f_g)`` over the G global views
    (:func:`~selfsup.losses._koleo.koleo`: it spreads the images' features apart).

    Args:
        out_dim: K, the head's outputs (the centre's width).
        student_temperature: τ_s (0.1).
        center_momentum: m (0.9).
        centering: ``centre`` (DINO's) or ``sinkhorn_knopp`` (DINOv2's).
        sinkhorn_iterations: Sinkhorn-Knopp's rescalings (DINOv2's 3).
        koleo_weight: w of the KoLeo term (0: none; DINOv2's 0.1).

    Example:
        >>> from selfsup.losses.dino import DINOLoss
        >>> loss = DINOLoss(out_dim=32)
        >>> student, teacher = torch.randn(4 * 8, 32), torch.randn(2 * 8, 32)  # 4 views (2 global), 8 images
        >>> loss(student, views=4, teacher=teacher, teacher_temperature=0.04).shape
        torch.Size([])
    """

    center: Tensor

    def __init__(
        self,
        out_dim: PositiveInt = 65536,
        student_temperature: Positive = 0.1,
        center_momentum: Probability = 0.9,
        centering: Literal["centre", "sinkhorn_knopp"] = "centre",
        sinkhorn_iterations: NonNegativeInt = 3,
        koleo_weight: NonNegative = 0.0,
    ) -> None:
        super().__init__()
        self.student_temperature, self.center_momentum = student_temperature, center_momentum
        self.centering, self.sinkhorn_iterations, self.koleo_weight = centering, sinkhorn_iterations, koleo_weight
        self.register_buffer("center", torch.zeros(1, out_dim))
        self._last: dict[str, Tensor] = {}

    def forward(
        self, z: Tensor, views: int, teacher: Tensor, teacher_temperature: float, features: Tensor | None = None
    ) -> Tensor:
        """The student's outputs ``z`` (V*B, K) and the teacher's ``teacher`` (G*B, K), view-major,
        G ≤ V; with ``koleo_weight``, the student's backbone features of the G global views
        ``features`` (G*B, F). A scalar: :meth:`distillation` plus :meth:`spread`. Updates the centre."""
        globals_ = teacher.shape[0] // max(1, z.shape[0] // views)
        return self.distillation(z, views, teacher, teacher_temperature) + self.spread(features, globals_)

    def distillation(self, z: Tensor, views: int, teacher: Tensor, teacher_temperature: float) -> Tensor:
        """The cross-entropy term alone (the paper's Eq. 3). Updates the centre."""
        b = z.shape[0] // views
        if z.shape[0] % views or teacher.shape[0] % b or teacher.shape[0] // b > views:
            raise ValueError(
                f"z must be (views*batch, K) and teacher (globals*batch, K); got {tuple(z.shape)}, views={views}, "
                f"{tuple(teacher.shape)}"
            )
        log_p = F.log_softmax(z / self.student_temperature, dim=-1).view(views, b, -1)
        q = self.targets(teacher, teacher_temperature).view(-1, b, z.shape[-1])
        terms = [-(q[t] * log_p[s]).sum(-1).mean() for t in range(q.shape[0]) for s in range(views) if s != t]
        return torch.stack(terms).mean()

    def spread(self, features: Tensor | None, globals_: int) -> Tensor:
        """``w Σ_g koleo(f_g)`` over the G = ``globals_`` global views' features ``features``
        (G*B, F), view-major; 0 without ``koleo_weight``."""
        if not self.koleo_weight:
            return torch.zeros((), dtype=self.center.dtype, device=self.center.device)
        if features is None or features.dim() != 2 or features.shape[0] % globals_:
            got = None if features is None else tuple(features.shape)
            raise ValueError(f"koleo_weight needs the student's features of the {globals_} global views, "
                             f"(globals*batch, F); got {got}")  # fmt: skip
        term = torch.stack([koleo(f) for f in features.view(globals_, -1, features.shape[-1])]).sum()
        self._last = {"loss_koleo": term.detach()}
        return self.koleo_weight * term

    def logged(self) -> dict[str, Tensor]:
        """The last batch's KoLeo term, unweighted (``train/loss_koleo``), with ``koleo_weight``."""
        return dict(self._last)

    @torch.no_grad()
    def targets(self, teacher: Tensor, teacher_temperature: float) -> Tensor:
        """The teacher's probabilities ``P_t`` of its outputs (N, K), by the loss's ``centering``
        over the global batch's rows; moves the centre after reading it (``centre``)."""
        if self.centering == "sinkhorn_knopp":
            return sinkhorn(teacher, teacher_temperature, self.sinkhorn_iterations, bound=None)
        q = F.softmax((teacher - self.center.to(teacher.dtype)) / teacher_temperature, dim=-1)
        self._update_center(teacher)
        return q

    @torch.no_grad()
    def _update_center(self, teacher: Tensor) -> None:
        batch_center = gather_cat(teacher).mean(0, keepdim=True)
        self.center.mul_(self.center_momentum).add_(batch_center.to(self.center.dtype), alpha=1 - self.center_momentum)
