"""iBOT's loss (Zhou et al., ICLR 2022): DINO's loss of the class tokens plus the masked patch
tokens' self-distillation from the teacher's patch tokens of the same view."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.dist import gather_cat
from selfsup.losses._sinkhorn import sinkhorn
from selfsup.losses.dino import DINOLoss
from selfsup.schema import NonNegative, NonNegativeInt, Positive, PositiveInt, Probability


class IBOTLoss(nn.Module):
    """``L = λ1 L_cls + λ2 L_mim`` (the paper's Eq. 3; official code github.com/bytedance/ibot,
    ``main_ibot.py``, ``iBOTLoss``):

    - ``L_cls``: DINO's loss (:class:`~selfsup.losses.dino.DINOLoss`) of the class tokens' outputs:
      the teacher's centred, sharpened softmax of each global view against the student's softmax of
      every other view, local views included;
    - ``L_mim``: for each global view g, each image i's cross-entropy between the teacher's
      centred, sharpened softmax of its patch tokens (the view unmasked) and the student's softmax
      of its patch tokens (the view masked), averaged over the image's masked patches
      (``Σ_n m_i,n H_i,n / max(1, Σ_n m_i,n)``: an image without a masked patch adds 0), then over
      the B images, then over the G global views.

    The patch centre c₂ moves as the class centre does, to ``m₂ c₂ + (1 − m₂) mean(t_patch)``, the
    mean over every patch token of the global views of the global batch (every DDP rank's).

    ``centering="sinkhorn_knopp"`` gives both terms DINOv2's targets (Oquab et al., TMLR 2024;
    official code github.com/facebookresearch/dinov2, ``sinkhorn_knopp_teacher``) instead of the
    centred softmax: the Sinkhorn-Knopp codes at ε = τ_t of the teacher's class outputs of the
    global views, and, apart, of its patch outputs at the masked positions (the only ones the loss
    reads), each over the global batch; the centres are then neither read nor moved.

    Args:
        out_dim: K, the head's outputs (both centres' width; iBOT's shared head).
        student_temperature: τ_s (0.1), for class and patch tokens.
        center_momentum: m of the class centre (0.9).
        patch_center_momentum: m₂ of the patch centre (0.9).
        cls_weight: λ1 (1).
        patch_weight: λ2 (1).
        centering: ``centre`` (iBOT's) or ``sinkhorn_knopp`` (DINOv2's), for both terms.
        sinkhorn_iterations: Sinkhorn-Knopp's rescalings (DINOv2's 3).
        koleo_weight: w of DINOv2's KoLeo term of the student's class tokens of the global views
            (0: none; DINOv2's 0.1), as in :class:`~selfsup.losses.dino.DINOLoss`.

    Example:
        >>> from selfsup.losses.ibot import IBOTLoss
        >>> loss = IBOTLoss(out_dim=32)
        >>> z, t = torch.randn(4 * 8, 32), torch.randn(2 * 8, 32)  # 4 views (2 global), 8 images
        >>> zp, tp = torch.randn(2 * 8, 16, 32), torch.randn(2 * 8, 16, 32)  # 16 patches of each global view
        >>> mask = torch.rand(2 * 8, 16) < 0.3
        >>> loss(z, views=4, teacher=t, teacher_temperature=0.04, patches=zp, teacher_patches=tp, mask=mask,
        ...      teacher_patch_temperature=0.04).shape
        torch.Size([])
    """

    patch_center: Tensor

    def __init__(
        self,
        out_dim: PositiveInt = 8192,
        student_temperature: Positive = 0.1,
        center_momentum: Probability = 0.9,
        patch_center_momentum: Probability = 0.9,
        cls_weight: NonNegative = 1.0,
        patch_weight: NonNegative = 1.0,
        centering: Literal["centre", "sinkhorn_knopp"] = "centre",
        sinkhorn_iterations: NonNegativeInt = 3,
        koleo_weight: NonNegative = 0.0,
    ) -> None:
        super().__init__()
        self.cls = DINOLoss(out_dim, student_temperature, center_momentum, centering, sinkhorn_iterations, koleo_weight)
        self.student_temperature, self.patch_center_momentum = student_temperature, patch_center_momentum
        self.cls_weight, self.patch_weight = cls_weight, patch_weight
        self.register_buffer("patch_center", torch.zeros(1, out_dim))
        self._last: dict[str, Tensor] = {}

    def forward(
        self,
        z: Tensor,
        views: int,
        teacher: Tensor,
        teacher_temperature: float,
        patches: Tensor,
        teacher_patches: Tensor,
        mask: Tensor,
        teacher_patch_temperature: float,
        features: Tensor | None = None,
    ) -> Tensor:
        """The student's class outputs ``z`` (V*B, K) and the teacher's ``teacher`` (G*B, K); the
        student's patch outputs ``patches`` (G*B, N, K) of the masked global views, the teacher's
        ``teacher_patches`` (G*B, N, K) of the unmasked ones, and ``mask`` (G*B, N), True where
        masked; with ``koleo_weight``, the student's class tokens ``features`` (G*B, F) of the masked
        global views; all view-major. A scalar. Updates both centres."""
        if patches.shape != teacher_patches.shape or tuple(mask.shape) != tuple(patches.shape[:2]):
            raise ValueError(
                f"patches and teacher_patches must be (globals*batch, N, K) and mask (globals*batch, N); got "
                f"{tuple(patches.shape)}, {tuple(teacher_patches.shape)}, {tuple(mask.shape)}"
            )
        if patches.shape[0] != teacher.shape[0]:
            raise ValueError(f"patches have {patches.shape[0]} rows and the teacher's class outputs {teacher.shape[0]}")
        cls = self.cls.distillation(z, views, teacher, teacher_temperature)
        b = z.shape[0] // views
        log_p = F.log_softmax(patches / self.student_temperature, dim=-1)
        q = self._patch_targets(teacher_patches.detach(), mask, teacher_patch_temperature)
        per_patch = -(q * log_p).sum(-1)  # (G*B, N)
        m = mask.to(per_patch.dtype)
        per_image = (per_patch * m).sum(-1) / m.sum(-1).clamp(min=1.0)  # (G*B,)
        mim = per_image.view(-1, b).mean(1).mean()  # over the images, then the global views
        spread = self.cls.spread(features, teacher.shape[0] // b)
        self._last = {"loss_cls": cls.detach(), "loss_mim": mim.detach(), **self.cls.logged()}
        return self.cls_weight * cls + self.patch_weight * mim + spread

    @torch.no_grad()
    def _patch_targets(self, teacher_patches: Tensor, mask: Tensor, teacher_patch_temperature: float) -> Tensor:
        """``P_t`` of the teacher's patch outputs (G*B, N, K), by the loss's ``centering``; moves the
        patch centre after reading it (``centre``)."""
        if self.cls.centering == "sinkhorn_knopp":
            q = torch.zeros_like(teacher_patches)
            iterations = self.cls.sinkhorn_iterations
            q[mask] = sinkhorn(teacher_patches[mask], teacher_patch_temperature, iterations, bound=None)
            return q
        center = self.patch_center.to(teacher_patches.dtype).view(1, 1, -1)
        q = F.softmax((teacher_patches - center) / teacher_patch_temperature, dim=-1)
        self._update_patch_center(teacher_patches)
        return q

    @torch.no_grad()
    def _update_patch_center(self, teacher_patches: Tensor) -> None:
        batch_center = gather_cat(teacher_patches.mean(1)).mean(0, keepdim=True)
        m = self.patch_center_momentum
        self.patch_center.mul_(m).add_(batch_center.to(self.patch_center.dtype), alpha=1 - m)

    def logged(self) -> dict[str, Tensor]:
        """The last batch's terms, unweighted (``train/loss_cls``, ``train/loss_mim``, and
        ``train/loss_koleo`` with ``koleo_weight``)."""
        return dict(self._last)
