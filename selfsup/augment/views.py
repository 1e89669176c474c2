"""The SimCLR view recipe, batched: every image gets its own random parameters."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.augment import color
from selfsup.augment.geometry import resized_crop, sample_crop_boxes


class ViewMaker(nn.Module):
    """Makes ``views`` augmented views of a uint8 batch on whatever device the batch is on.

    Per view and image, independently: random resized crop, horizontal flip, colour jitter
    (brightness, contrast, saturation, hue in a random order per image) with probability
    ``jitter_p``, grayscale, Gaussian blur, solarize; then normalisation.

    Args:
        views: number of views V per image.
        size: output side length of every view.
        crop_scale: range of the crop's area fraction.
        crop_ratio: range of the crop's aspect ratio.
        flip_p: probability of a horizontal flip.
        jitter: strengths (brightness, contrast, saturation, hue) as in torchvision's ColorJitter.
        jitter_p: probability of applying the colour jitter.
        grayscale_p: probability of converting to grey.
        blur_p: probability of a Gaussian blur.
        blur_sigma: range of the blur's standard deviation, in pixels.
        blur_kernel_frac: kernel side as a fraction of ``size`` (made odd, at least 3).
        solarize_p: probability of solarizing at 0.5.
        mean: per-channel normalisation mean (in [0, 1] units).
        std: per-channel normalisation standard deviation.
    """

    mean: Tensor
    std: Tensor

    def __init__(
        self,
        views: int = 2,
        size: int = 32,
        crop_scale: Sequence[float] = (0.08, 1.0),
        crop_ratio: Sequence[float] = (3 / 4, 4 / 3),
        flip_p: float = 0.5,
        jitter: Sequence[float] = (0.4, 0.4, 0.4, 0.1),
        jitter_p: float = 0.8,
        grayscale_p: float = 0.2,
        blur_p: float = 0.0,
        blur_sigma: Sequence[float] = (0.1, 2.0),
        blur_kernel_frac: float = 0.1,
        solarize_p: float = 0.0,
        mean: Sequence[float] = (0.5,),
        std: Sequence[float] = (0.5,),
    ) -> None:
        super().__init__()
        if views < 1:
            raise ValueError(f"views must be >= 1, got {views}")
        if len(jitter) != 4:
            raise ValueError(f"jitter must be (brightness, contrast, saturation, hue), got {list(jitter)}")
        self.views = views
        self.size = size
        self.crop_scale = (float(crop_scale[0]), float(crop_scale[1]))
        self.crop_ratio = (float(crop_ratio[0]), float(crop_ratio[1]))
        self.flip_p = flip_p
        self.jitter = tuple(float(j) for j in jitter)
        self.jitter_p = jitter_p
        self.grayscale_p = grayscale_p
        self.blur_p = blur_p
        self.blur_sigma = (float(blur_sigma[0]), float(blur_sigma[1]))
        self.blur_kernel = max(3, int(round(blur_kernel_frac * size)) // 2 * 2 + 1)
        self.solarize_p = solarize_p
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1), False)
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1), False)

    def normalize(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    @torch.no_grad()
    def prepare(self, x: Tensor) -> Tensor:
        """Evaluation input: uint8 (B, C, H, W) -> normalised float (B, C, size, size), no randomness."""
        x = x.float() / 255.0
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        return self.normalize(x)

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        """uint8 (B, C, H, W) -> (V*B, C, size, size) normalised views, view-major."""
        if x.dtype != torch.uint8:
            raise TypeError(f"ViewMaker expects uint8 images, got {x.dtype}")
        x = x.float() / 255.0
        return torch.cat([self.normalize(self._one_view(x)) for _ in range(self.views)], dim=0)

    def _bernoulli(self, n: int, p: float, device: torch.device) -> Tensor:
        return torch.rand(n, device=device) < p

    def _one_view(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        dev = x.device
        boxes = sample_crop_boxes(b, h, w, self.crop_scale, self.crop_ratio, dev)
        x = resized_crop(x, boxes, self.size, flip=self._bernoulli(b, self.flip_p, dev))
        if self.jitter_p > 0 and any(self.jitter):
            x = self._jitter(x)
        if self.grayscale_p > 0 and x.shape[1] > 1:
            g = self._bernoulli(b, self.grayscale_p, dev).view(-1, 1, 1, 1)
            x = torch.where(g, color.grayscale(x).expand_as(x), x)
        if self.blur_p > 0:
            sel = self._bernoulli(b, self.blur_p, dev)
            if sel.any():
                sigma = torch.empty(int(sel.sum()), device=dev).uniform_(*self.blur_sigma)
                x[sel] = color.gaussian_blur(x[sel], sigma, self.blur_kernel)
        if self.solarize_p > 0:
            s = self._bernoulli(b, self.solarize_p, dev).view(-1, 1, 1, 1)
            x = torch.where(s, color.solarize(x), x)
        return x

    def _jitter(self, x: Tensor) -> Tensor:
        b, dev = x.shape[0], x.device
        bri, con, sat, hue = self.jitter
        apply = self._bernoulli(b, self.jitter_p, dev)

        def factor(strength: float) -> Tensor:
            f = torch.empty(b, device=dev).uniform_(max(0.0, 1 - strength), 1 + strength)
            return torch.where(apply, f, torch.ones_like(f))

        params = [factor(bri), factor(con), factor(sat)]
        shift = torch.empty(b, device=dev).uniform_(-hue, hue)
        params.append(torch.where(apply, shift, torch.zeros_like(shift)))
        ops = [color.adjust_brightness, color.adjust_contrast, color.adjust_saturation, color.adjust_hue]
        active = [i for i, s in enumerate(self.jitter) if s > 0 and (i < 2 or x.shape[1] > 1)]
        order = torch.argsort(torch.rand(b, len(active), device=dev), dim=1)  # random order per image
        for slot in range(len(active)):
            for k, op_i in enumerate(active):
                sel = order[:, slot] == k
                if sel.any():
                    x[sel] = ops[op_i](x[sel], params[op_i][sel])
        return x
