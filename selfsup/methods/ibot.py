"""iBOT (Zhou et al., ICLR 2022): DINO on the class token plus masked image modelling with an
online tokenizer: the student's patch tokens of a masked global view predict the momentum
teacher's patch tokens of the view unmasked."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from selfsup.augment import Views
from selfsup.dist import rank, world_size
from selfsup.methods.dino import DINO, warmed_up
from selfsup.schema import NonNegative, Positive


def block_mask(rng: random.Random, h: int, w: int, ratio: float) -> list[list[bool]]:
    """An (h, w) grid of patches, True where masked: rectangles of random area and aspect ratio
    (0.3 to 1/0.3, log-uniform) added until ``ratio`` of the patches are masked, ten tries for each
    (BEiT's blockwise masking, as iBOT's ``ImageFolderMask``; the count can stay under the target
    when no try fits)."""
    mask = [[False] * w for _ in range(h)]
    high, count = ratio * h * w, 0
    low = (min(h, w) // 3) ** 2
    lo, hi = math.log(0.3), math.log(1 / 0.3)
    while count < high:
        room, delta = high - count, 0
        for _ in range(10):
            area = rng.uniform(low, room)
            aspect = math.exp(rng.uniform(lo, hi))
            bh, bw = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
            if bw < w and bh < h:
                top, left = rng.randint(0, h - bh), rng.randint(0, w - bw)
                cells = [(r, c) for r in range(top, top + bh) for c in range(left, left + bw)]
                new = [(r, c) for r, c in cells if not mask[r][c]]
                if 0 < len(new) <= room:
                    for r, c in new:
                        mask[r][c] = True
                    delta += len(new)
            if delta > 0:
                break
        if delta == 0:
            break
        count += delta
    return mask


class _MaskToken(nn.Module):
    """The learned embedding of a masked patch (zeros at the start, as the official ``masked_embed``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.token = nn.Parameter(torch.zeros(dim))


class IBOT(DINO):
    """DINO (:class:`~selfsup.methods.dino.DINO`: momentum teacher, centring and sharpening,
    multi-crop, the weight-normalised last layer frozen the first epoch) on the class tokens, plus
    masked image modelling: each global view is masked blockwise for the student (the masked
    patches' embeddings replaced by a learned mask token before the position embedding,
    :meth:`TimmBackbone.tokens`), and the student's outputs of its patch tokens predict the
    teacher's of the unmasked view (``loss=ibot``, :class:`~selfsup.losses.ibot.IBOTLoss`). One head
    for class and patch tokens (the official ViT-S/16 recipe's ``shared_head``).

    Zhou et al. 2022, "iBOT: Image BERT Pre-Training with Online Tokenizer"; official code
    github.com/bytedance/ibot (``main_ibot.py``, ``loader.py``). What it follows:

    - each global view's mask ratio is drawn per image: one of ``mask_ratio`` (each entry ± its
      ``mask_ratio_var``, uniform), the recipe's ``[0, 0.3] ± [0, 0.2]``: half the views unmasked,
      the others 10-50 %; blockwise masks (:func:`block_mask`); local views are never masked and
      get no patch loss;
    - the patch tokens' teacher temperature warms up as the class token's, from
      ``warmup_teacher_patch_temperature`` to ``teacher_patch_temperature``;
    - the teacher sees the global views unmasked; the mask token is the student's alone.

    The masks are drawn for the global batch on every rank (one seed drawn from torch's generator)
    and each rank takes its images' rows, so two DDP processes mask as one process does. Not
    followed: the official student's stochastic depth 0.1 (``+backbone.model_kwargs.drop_path_rate=0.1``
    gives it to the student; the teacher drops nothing) and ``pred_start_epoch`` (masking from the
    first epoch).

    Args:
        teacher_patch_temperature: the patch tokens' τ_t after the warm-up.
        warmup_teacher_patch_temperature: their τ_t in the first epoch.
        mask_ratio: the mean ratios a global view's mask is drawn from, one picked per view.
        mask_ratio_var: each ratio's half-range (uniform).
        *args, **kwargs: :class:`~selfsup.methods.dino.DINO`'s arguments.
    """

    needs_tokens = True

    def __init__(
        self,
        *args: Any,
        teacher_patch_temperature: Positive = 0.07,
        warmup_teacher_patch_temperature: Positive = 0.04,
        mask_ratio: Sequence[NonNegative] = (0.0, 0.3),
        mask_ratio_var: Sequence[NonNegative] = (0.0, 0.2),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if len(mask_ratio) != len(mask_ratio_var) or not mask_ratio:
            raise ValueError(
                f"method.module.mask_ratio={list(mask_ratio)} and mask_ratio_var={list(mask_ratio_var)}: "
                "expected lists of one length, at least 1"
            )
        for m, v in zip(mask_ratio, mask_ratio_var, strict=True):
            if not 0 <= m - v <= m + v < 1:
                raise ValueError(f"method.module.mask_ratio {m} ± mask_ratio_var {v}: expected ratios in [0, 1)")
        self.teacher_patch_temperature = teacher_patch_temperature
        self.warmup_teacher_patch_temperature = warmup_teacher_patch_temperature
        self.mask_ratio, self.mask_ratio_var = [float(m) for m in mask_ratio], [float(v) for v in mask_ratio_var]
        self.mask_embed = _MaskToken(int(self.backbone.model.embed_dim))  # type: ignore[union-attr,arg-type]

    def trained_modules(self) -> list[nn.Module]:
        return [*super().trained_modules(), self.mask_embed]

    def teacher_patch_temperature_at(self, epoch: int) -> float:
        """The patch tokens' τ_t in epoch ``epoch`` (0-based), warmed up as the class token's."""
        return warmed_up(
            epoch,
            self.warmup_teacher_patch_temperature,
            self.teacher_patch_temperature,
            self.warmup_teacher_temperature_epochs,
        )

    def random_masks(self, views: int, images: int, grid: tuple[int, int], device: torch.device) -> Tensor:
        """(views × images, h·w) bool, view-major, True where masked: each view of each image its own
        ratio and :func:`block_mask`. Drawn for the global batch, this rank's rows taken."""
        rng = random.Random(int(torch.randint(0, 2**62, (1,))))
        everyone = images * world_size()
        masks = []
        for _ in range(views):
            for i in range(everyone):
                k = rng.randrange(len(self.mask_ratio))
                m, v = self.mask_ratio[k], self.mask_ratio_var[k]
                ratio = rng.uniform(m - v, m + v) if v > 0 else m
                grid_mask = block_mask(rng, grid[0], grid[1], ratio)
                if rank() * images <= i < (rank() + 1) * images:
                    masks.append([cell for row in grid_mask for cell in row])
        return torch.tensor(masks, dtype=torch.bool, device=device).view(views * images, grid[0] * grid[1])

    def objective(self, views: Views, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, g = views.images, views.global_count
        x = self.to_memory_format(views.groups[0])  # (G*B, C, S, S): the global views
        embed: Any = self.backbone.model.patch_embed  # type: ignore[union-attr]  # a ViT: checked by Method
        grid = tuple(embed.dynamic_feat_size(tuple(x.shape[-2:])))  # padded up with dynamic_img_pad
        mask = self.random_masks(g, b, grid, x.device)
        student = self.backbone.tokens(x, mask=mask, mask_token=self.mask_embed.token)  # type: ignore[operator]
        local = [self.by_view(self.backbone, self.to_memory_format(v), v.shape[0] // b) for v in views.groups[1:]]
        h = torch.cat([student.pooled, *local])  # (V*B, F)
        z = self.by_view(self.head, h, views.count)
        patches = self.head(student.patches.flatten(0, 1)).view(*mask.shape, -1)  # (G*B, N, K)
        with torch.no_grad():
            teacher = self.momentum_teacher.backbone.tokens(x)  # type: ignore[operator]
            zt = self.momentum_teacher.head(teacher.pooled)
            teacher_patches = self.momentum_teacher.head(teacher.patches.flatten(0, 1)).view(*mask.shape, -1)
        epoch = self.current_epoch
        tau, tau_p = self.teacher_temperature_at(epoch), self.teacher_patch_temperature_at(epoch)
        loss = self.criterion(
            z,
            views=views.count,
            teacher=zt,
            teacher_temperature=tau,
            patches=patches,
            teacher_patches=teacher_patches,
            mask=mask,
            teacher_patch_temperature=tau_p,
            features=student.pooled,  # the masked global views' class tokens (KoLeo's, with loss.koleo_weight)
        )
        self.log("train/teacher_temperature", tau, on_step=True, on_epoch=False)
        return loss, *self.for_eval(h, z, teacher.pooled, zt)
