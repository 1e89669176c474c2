"""DINO's self-distillation loss with a centred, sharpened teacher (Caron et al., ICCV 2021)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.dist import gather_cat
from selfsup.schema import Positive, PositiveInt, Probability


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

    Args:
        out_dim: K, the head's outputs (the centre's width).
        student_temperature: τ_s (0.1).
        center_momentum: m (0.9).

    Example:
        >>> from selfsup.losses.dino import DINOLoss
        >>> loss = DINOLoss(out_dim=32)
        >>> student, teacher = torch.randn(4 * 8, 32), torch.randn(2 * 8, 32)  # 4 views (2 global), 8 images
        >>> loss(student, views=4, teacher=teacher, teacher_temperature=0.04).shape
        torch.Size([])
    """

    center: Tensor

    def __init__(
        self, out_dim: PositiveInt = 65536, student_temperature: Positive = 0.1, center_momentum: Probability = 0.9
    ) -> None:
        super().__init__()
        self.student_temperature, self.center_momentum = student_temperature, center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))

    def forward(self, z: Tensor, views: int, teacher: Tensor, teacher_temperature: float) -> Tensor:
        """The student's outputs ``z`` (V*B, K) and the teacher's ``teacher`` (G*B, K), view-major,
        G ≤ V; a scalar. Updates the centre."""
        b = z.shape[0] // views
        if z.shape[0] % views or teacher.shape[0] % b or teacher.shape[0] // b > views:
            raise ValueError(
                f"z must be (views*batch, K) and teacher (globals*batch, K); got {tuple(z.shape)}, views={views}, "
                f"{tuple(teacher.shape)}"
            )
        log_p = F.log_softmax(z / self.student_temperature, dim=-1).view(views, b, -1)
        center = self.center.to(teacher.dtype)
        q = F.softmax((teacher.detach() - center) / teacher_temperature, dim=-1).view(-1, b, z.shape[-1])
        terms = [-(q[t] * log_p[s]).sum(-1).mean() for t in range(q.shape[0]) for s in range(views) if s != t]
        self._update_center(teacher.detach())
        return torch.stack(terms).mean()

    @torch.no_grad()
    def _update_center(self, teacher: Tensor) -> None:
        batch_center = gather_cat(teacher).mean(0, keepdim=True)
        self.center.mul_(self.center_momentum).add_(batch_center.to(self.center.dtype), alpha=1 - self.center_momentum)
