"""Random resized crops of one full-resolution image, made per sample where the image is decoded.

Streamed data (``data=shards``) keeps every image at its own size and aspect ratio, so images
cannot be stacked into a batch before they are cropped. The batched backend therefore splits
its work: :class:`SampleCrops` draws each view's crop box on the *full* decoded image (the
protocol of SimCLR, Chen et al. 2020, and of every published ImageNet table: RandomResizedCrop
of the original image) and resamples it to the view size in the DataLoader worker; the rest of
the recipe (flip, colour, blur, solarize, RandAugment, random fields, the batch mix) runs on the
model's device on the small crops (:meth:`selfsup.augment.views.ViewMaker.forward`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

Box = tuple[tuple[float, float], tuple[float, float]]  # (crop_scale, crop_ratio)


class SampleCrops:
    """Picklable per-sample transform: uint8 (C, H, W) of any size -> one uint8 stack per view group.

    Args:
        groups: per view group (the global views, then the local crops of multi-crop), the
            ``(crop_scale, crop_ratio)`` of each of its views and the group's output side.

    Returns (on call):
        A tuple with one (V_g, C, S_g, S_g) uint8 tensor per group. Boxes are torchvision's
        ``RandomResizedCrop.get_params`` (area ~ U(scale), log ratio ~ U(log ratio), centre crop
        after 10 misses); resampling is bilinear with antialiasing, as torchvision's.
    """

    def __init__(self, groups: Sequence[tuple[Sequence[Box], int]]) -> None:
        self.groups = [
            ([(tuple(map(float, s)), tuple(map(float, r))) for s, r in boxes], int(size)) for boxes, size in groups
        ]

    def __call__(self, image: Tensor) -> tuple[Tensor, ...]:
        out = []
        for boxes, size in self.groups:
            crops = []
            for scale, ratio in boxes:
                top, left, h, w = v2.RandomResizedCrop.get_params(image, list(scale), list(ratio))
                crops.append(TF.resized_crop(image, top, left, h, w, [size, size], antialias=True))
            out.append(torch.stack(crops))
        return tuple(out)
