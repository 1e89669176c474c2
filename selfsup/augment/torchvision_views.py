"""The per-sample backend: torchvision v2 transforms in the DataLoader's workers.

For comparison with the batched backend, and for inputs that cannot be batched. Each
sample becomes a tuple of normalised float views; the model-side module only groups them
by size and applies the batch mix (CutMix, Mixup, ResizeMix) after the transfer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchvision.transforms import v2

from selfsup.augment.randaugment import RandAugment, torchvision_equivalent
from selfsup.augment.recipe import ViewRecipe
from selfsup.augment.views import ViewPipeline, Views


def recipe_transform(
    r: ViewRecipe, size: int, mean: Sequence[float], std: Sequence[float], randaugment: RandAugment | None
) -> v2.Compose:
    """torchvision v2 pipeline of one view: uint8 (C, H, W) -> normalised float (C, size, size)."""
    ops: list[Any] = [
        v2.RandomResizedCrop(size, scale=r.crop_scale, ratio=r.crop_ratio, antialias=True),
        v2.RandomHorizontalFlip(r.flip_p),
    ]
    if randaugment is not None and r.randaugment:
        ops.append(
            v2.RandAugment(randaugment.num_ops, int(round(randaugment.magnitude)), int(randaugment.max_level) + 1)
        )
    if r.jitter_p > 0 and any(r.jitter):
        ops.append(v2.RandomApply([v2.ColorJitter(*r.jitter)], p=r.jitter_p))
    if r.grayscale_p > 0:
        ops.append(v2.RandomGrayscale(r.grayscale_p))
    if r.blur_p > 0:
        k = r.kernel_size(size)
        ops.append(v2.RandomApply([v2.GaussianBlur(k, sigma=r.blur_sigma)], p=r.blur_p))
    if r.solarize_p > 0:
        ops.append(v2.RandomSolarize(threshold=128, p=r.solarize_p))  # uint8 128 = 0.5 in float
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(ops)


class SampleViews:
    """Picklable per-sample transform: uint8 (C, H, W) -> tuple of views, global then local."""

    def __init__(self, pipelines: Sequence[v2.Compose]) -> None:
        self.pipelines = list(pipelines)

    def __call__(self, image: Tensor) -> tuple[Tensor, ...]:
        return tuple(p(image) for p in self.pipelines)


class TorchvisionViews(ViewPipeline):
    """``augment.backend=torchvision``: views made per sample on the CPU by torchvision v2.

    Same arguments as :class:`ViewPipeline`. Random fields and RandAugment settings that
    torchvision's RandAugment cannot express (timm's op set, per-op probability, magnitude
    noise) need the batched backend and are refused here.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if len(self.ops):
            raise ValueError(
                f"augment.ops ({', '.join(type(op).__name__ for op in self.ops)}) needs augment.backend=batched "
                "(ops of one's own run on batches of views)"
            )
        if self.random_fields is not None:
            raise ValueError("augment.random_fields needs augment.backend=batched (torchvision has no random fields)")
        if self.bit_depth != 8 or self.channels not in (1, 3):
            raise ValueError(
                f"augment.backend=torchvision makes views of 8-bit grey or RGB images; data.channels={self.channels}, "
                f"data.bit_depth={self.bit_depth} need augment.backend=batched"
            )
        if any(r.channel_dropout_p > 0 for r in [*self.recipes, self.local_recipe]):
            raise ValueError("augment.channel_dropout_p needs augment.backend=batched")
        if self.randaugment is not None and not torchvision_equivalent(self.randaugment):
            raise ValueError(
                "augment.backend=torchvision runs torchvision's RandAugment: op_set=torchvision, op_p=1, "
                "magnitude_std=0 and an integer magnitude; use augment.backend=batched for the rest"
            )
        mean, std = self.mean.flatten().tolist(), self.std.flatten().tolist()
        pipes = [recipe_transform(r, self.size, mean, std, self.randaugment) for r in self.recipes]
        local = recipe_transform(self.local_recipe, self.local_size, mean, std, self.randaugment)
        self.sample_transform: SampleViews = SampleViews(pipes + [local] * self.local_views)

    def forward(self, views: Sequence[Tensor]) -> Views:
        """The collated views (one (B, C, S, S) tensor per view) -> :class:`Views`."""
        if isinstance(views, Tensor) or len(views) != self.count:
            raise TypeError(f"expected a sequence of {self.count} view batches from the per-sample transform")
        groups = [torch.cat(list(views[: self.views]))]
        if self.local_views:
            groups.append(torch.cat(list(views[self.views :])))
        return self._finish(groups, views[0].shape[0])

    @torch.no_grad()
    def global_views(self, x: Tensor) -> Tensor:
        """uint8 (B, C, H, W) -> (V*B, C, size, size) global views, made per sample on the CPU."""
        per_image = [self.sample_transform(img) for img in x.cpu()]
        return torch.cat([torch.stack([v[k] for v in per_image]) for k in range(self.views)]).to(x.device)
