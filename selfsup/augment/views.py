"""Batched view makers: V views of every image, with per-image random parameters."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from annotated_types import Len
from torch import Tensor, nn

from selfsup.augment import color
from selfsup.augment.batch_mix import BatchMix
from selfsup.augment.geometry import resized_crop, sample_crop_boxes
from selfsup.augment.randaugment import RandAugment
from selfsup.augment.random_fields import RandomFields
from selfsup.augment.recipe import ViewRecipe, view_recipes
from selfsup.augment.sample_crops import SampleCrops
from selfsup.mix import Mix
from selfsup.schema import AreaRange, NonNegative, NonNegativeInt, Positive, PositiveInt, Probability, Range


@dataclass(frozen=True)
class Views:
    """What a view maker hands the model.

    Attributes:
        groups: one view-major tensor per view size, (V_g*B, C, S_g, S_g); global views first.
        count: V, the number of views of each image over all groups.
        mix: how a view was mixed (CutMix, Mixup, ResizeMix), or None.
    """

    groups: list[Tensor]
    count: int
    mix: Mix | None

    @property
    def images(self) -> int:
        """B, the images of the batch (every view has one row per image)."""
        return sum(g.shape[0] for g in self.groups) // self.count

    @property
    def global_count(self) -> int:
        """The global views, the first group's (multi-crop's local views come after them)."""
        return self.groups[0].shape[0] // self.images

    def global_only(self) -> Views:
        """The global views alone (what a teacher of the global views sees), unmixed."""
        return Views(self.groups[:1], self.global_count, None)


class ViewPipeline(nn.Module):
    """What both backends share: the recipes, normalisation, evaluation input and the batch mix.

    Args:
        views: number of global views V.
        size: output side of every global view.
        crop_scale: range of the crop's area fraction.
        crop_ratio: range of the crop's aspect ratio.
        flip_p: probability of a horizontal flip.
        jitter: strengths (brightness, contrast, saturation, hue) as in torchvision's ColorJitter.
        jitter_p: probability of applying the colour jitter (ops in a random order per image).
        grayscale_p: probability of converting to grey.
        blur_p: probability of a Gaussian blur.
        blur_sigma: range of the blur's standard deviation, in pixels.
        blur_kernel_frac: kernel side as a fraction of the view size (made odd, at least 3).
        solarize_p: probability of solarizing at 0.5 (the middle of the data's range, any bit depth).
        channel_dropout_p: probability of each channel being dropped (set to its normalisation mean,
            so 0 once normalised), per image and channel, at least one channel kept: multispectral
            SSL's band dropout. Off (0) by default.
        per_view: per-view overrides of the settings above, e.g. BYOL's
            ``[{blur_p: 1.0}, {blur_p: 0.1, solarize_p: 0.2}]``; also ``randaugment``,
            ``random_fields`` and ``ops`` (bool) switch those off for a view.
        local_views: extra small crops (multi-crop); 0 for none.
        local_size: side of the local crops.
        local_crop_scale: area fraction range of the local crops (other settings: the base recipe).
        randaugment: RandAugment after crop and flip, or None.
        random_fields: Gaussian random fields after crop and flip, or None.
        ops: augmentation ops of one's own, applied in order after the recipe's (after solarize,
            before normalisation; the batched backend only). Each is a module from float
            (B, C, S, S) views in [0, 1] to the same, drawing its randomness per image
            (docs/extending.md, "An augmentation op").
        mix: a :class:`~selfsup.augment.batch_mix.BatchMix` (CutMix, Mixup, ResizeMix) of one
            global view with a permutation of the batch, or None.
        mean: per-channel normalisation mean (in [0, 1] units).
        std: per-channel normalisation standard deviation.
        channels: C, the images' channels (None: one per ``mean`` value). Grey (1) and RGB (3) get
            torchvision's colour ops; any other count gets per-channel brightness and contrast
            jitter, and the RGB ops (saturation and hue jitter, grayscale, RandAugment's op Color,
            random saturation and hue fields) are refused here, naming the op and C.
        bit_depth: 8 (uint8 batches in, divided by 255) or 16 (uint16, divided by 65535): every
            op then works on [0, 1] whatever the bit depth.
    """

    mean: Tensor
    std: Tensor
    #: Per-sample transform for the DataLoader (uint8 image -> views); None when views are batched.
    sample_transform: Callable[[Tensor], tuple[Tensor, ...]] | None = None

    def full_resolution_transform(self) -> Callable[[Tensor], tuple[Tensor, ...]]:
        """Per-sample transform of one decoded image at its own size (streamed data, ``data=shards``),
        whose output this view maker's ``forward`` takes once collated. Here: every view, made
        per sample (``sample_transform``); :class:`ViewMaker` only crops."""
        assert self.sample_transform is not None, f"{type(self).__name__} has no per-sample transform"
        return self.sample_transform

    def __init__(
        self,
        views: PositiveInt = 2,
        size: PositiveInt = 32,
        crop_scale: AreaRange = (0.08, 1.0),
        crop_ratio: Range = (3 / 4, 4 / 3),
        flip_p: Probability = 0.5,
        jitter: Annotated[Sequence[NonNegative], Len(4, 4)] = (0.4, 0.4, 0.4, 0.1),
        jitter_p: Probability = 0.8,
        grayscale_p: Probability = 0.2,
        blur_p: Probability = 0.0,
        blur_sigma: Range = (0.1, 2.0),
        blur_kernel_frac: Positive = 0.1,
        solarize_p: Probability = 0.0,
        per_view: Sequence[Mapping[str, Any]] = (),
        local_views: NonNegativeInt = 0,
        local_size: PositiveInt | None = None,
        local_crop_scale: AreaRange = (0.05, 0.4),
        randaugment: RandAugment | None = None,
        random_fields: RandomFields | None = None,
        ops: Sequence[nn.Module] = (),
        mix: BatchMix | None = None,
        mean: Sequence[float] = (0.5,),
        std: Sequence[Positive] = (0.5,),
        channel_dropout_p: Probability = 0.0,
        channels: PositiveInt | None = None,
        bit_depth: Literal[8, 16] = 8,
    ) -> None:
        super().__init__()
        if bit_depth not in (8, 16):
            raise ValueError(f"bit_depth={bit_depth}: expected 8 or 16 (data.bit_depth)")
        self.bit_depth = bit_depth
        self.channels = int(channels) if channels is not None else len(mean)
        if views < 1 or local_views < 0:
            raise ValueError(f"need views >= 1 and local_views >= 0, got views={views}, local_views={local_views}")
        base = ViewRecipe(
            crop_scale=tuple(crop_scale),  # type: ignore[arg-type]
            crop_ratio=tuple(crop_ratio),  # type: ignore[arg-type]
            flip_p=flip_p,
            jitter=tuple(jitter),  # type: ignore[arg-type]
            jitter_p=jitter_p,
            grayscale_p=grayscale_p,
            blur_p=blur_p,
            blur_sigma=tuple(blur_sigma),  # type: ignore[arg-type]
            blur_kernel_frac=blur_kernel_frac,
            solarize_p=solarize_p,
            channel_dropout_p=channel_dropout_p,
        )
        self.views = views
        self.size = size
        self.recipes = view_recipes(base, views, per_view)
        self.local_views = local_views
        self.local_size = local_size or max(1, size // 2)
        self.local_recipe = dataclasses.replace(
            base, crop_scale=(float(local_crop_scale[0]), float(local_crop_scale[1]))
        )
        self.randaugment = randaugment
        self.random_fields = random_fields
        self.ops = nn.ModuleList(ops)
        self.mix = mix
        if mix is not None and not -views <= mix.view < views:
            raise ValueError(
                f"augment.mix.view={mix.view}: expected one of the {views} global views (-{views}..{views - 1})"
            )
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1), False)
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1), False)
        self._check_channel_ops()

    def _check_channel_ops(self) -> None:
        """Refuse the RGB ops for images of neither 1 nor 3 channels (``augment=multispectral`` sets none)."""
        c = self.channels
        if c in (1, 3):
            return
        why = f"an RGB op and data.channels={c}"
        # The base settings (the local views': only their crop differs), then each view's overrides.
        for where, r in [
            ("augment", self.local_recipe),
            *((f"augment.per_view[{k}]", r) for k, r in enumerate(self.recipes)),
        ]:
            if r.jitter[2] > 0:
                raise ValueError(f"{where}.jitter: saturation {r.jitter[2]} is {why}; set it to 0")
            if r.jitter[3] > 0:
                raise ValueError(f"{where}.jitter: hue {r.jitter[3]} is {why}; set it to 0")
            if r.grayscale_p > 0:
                raise ValueError(f"{where}.grayscale_p={r.grayscale_p}: grayscale is {why}; set it to 0")
        if self.randaugment is not None and "Color" in self.randaugment.ops:
            raise ValueError(
                f"augment.randaugment: its op Color (saturation) is {why}; give randaugment.op_set a list of "
                "ops without it"
            )
        if self.random_fields is not None:
            for name in ("saturation", "hue"):
                if self.random_fields.fields[name][0] > 0:
                    raise ValueError(f"augment.random_fields.{name}: {name} is {why}; set its amplitude to 0")

    def set_normalization(self, mean: Sequence[float], std: Sequence[float]) -> None:
        """Replace the per-channel normalisation (``data.normalize=auto``'s statistics)."""
        self.mean.copy_(torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.std.copy_(torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    @property
    def count(self) -> int:
        """V, all views of an image (global and local)."""
        return self.views + self.local_views

    def normalize(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def to_float(self, x: Tensor) -> Tensor:
        """uint8 (8 bits) or uint16 (16 bits) images -> float in [0, 1]."""
        want = torch.uint8 if self.bit_depth == 8 else torch.uint16
        if x.dtype != want:
            raise TypeError(f"{type(self).__name__} expects {want} images (bit_depth={self.bit_depth}), got {x.dtype}")
        return x.float() / float(2**self.bit_depth - 1)

    @torch.no_grad()
    def prepare(self, x: Tensor) -> Tensor:
        """Evaluation input: uint8 or uint16 (B, C, H, W) -> normalised float (B, C, size, size), no randomness."""
        x = self.to_float(x)
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        return self.normalize(x)

    def global_views(self, x: Tensor) -> Tensor:
        """uint8 (B, C, H, W) -> (V*B, C, size, size) normalised global views, view-major, unmixed."""
        raise NotImplementedError

    def _finish(self, groups: list[Tensor], batch: int) -> Views:
        """Apply the batch mix to its global view and package the groups."""
        if self.mix is None:
            return Views(groups, self.count, None)
        m = self.mix.view % self.views
        first = groups[0]
        sl = slice(m * batch, (m + 1) * batch)
        mixed, partner, lam = self.mix(first[sl])
        groups = [torch.cat([first[: sl.start], mixed, first[sl.stop :]]), *groups[1:]]
        return Views(groups, self.count, Mix(view=m, partner=partner, lam=lam))


class ViewMaker(ViewPipeline):
    """Makes the views of a uint8 batch on whatever device the batch is on (the batched backend).

    Per view and image, independently: random resized crop and flip (one sampling grid),
    random fields, RandAugment, colour jitter (random order per image), grayscale, Gaussian
    blur, solarize, the ``ops`` of one's own; then normalisation. Then the batch mix (CutMix,
    Mixup, ResizeMix) on one global view. Arguments: see :class:`ViewPipeline`.

    Streamed images of varying size (``data=shards``) arrive already cropped: the DataLoader
    workers ran :meth:`full_resolution_transform` (a :class:`~selfsup.augment.sample_crops.SampleCrops`
    with these recipes' crop scales and ratios) on each full-resolution image, and ``forward``
    then does the rest of every recipe, flip included.

    Example:
        >>> from selfsup.augment import ViewMaker
        >>> view_maker = ViewMaker(views=2, size=16, local_views=4, local_size=8)  # multi-crop
        >>> views = view_maker(torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8))
        >>> [g.shape for g in views.groups], views.count  # global views, then the local crops
        ([torch.Size([16, 1, 16, 16]), torch.Size([32, 1, 8, 8])], 6)
    """

    def full_resolution_transform(self) -> SampleCrops:
        """The crops of every view of one full-resolution image, drawn per sample (see the class)."""
        groups = [([(r.crop_scale, r.crop_ratio) for r in self.recipes], self.size)]
        if self.local_views:
            groups.append(
                ([(self.local_recipe.crop_scale, self.local_recipe.crop_ratio)] * self.local_views, self.local_size)
            )
        return SampleCrops(groups)

    @torch.no_grad()
    def forward(self, x: Tensor | Sequence[Tensor]) -> Views:
        """uint8 (B, C, H, W) -> :class:`Views` (global views, then local crops); or the collated
        output of :meth:`full_resolution_transform`, one uint8 (B, V_g, C, S_g, S_g) per group."""
        if not isinstance(x, Tensor):
            return self._from_crops(x)
        xf = self.to_float(x)
        groups = [self._views(xf, self.recipes, self.size)]
        if self.local_views:
            groups.append(self._views(xf, [self.local_recipe] * self.local_views, self.local_size))
        return self._finish(groups, x.shape[0])

    def _from_crops(self, crops: Sequence[Tensor]) -> Views:
        expected = [(self.views, self.size)] + ([(self.local_views, self.local_size)] if self.local_views else [])
        got = [(c.shape[1], c.shape[-1]) if c.ndim == 5 else None for c in crops]
        if got != expected:
            raise TypeError(
                f"expected crops (views, side) {expected} per image from full_resolution_transform, got {got}"
            )
        recipes = [self.recipes, [self.local_recipe] * self.local_views]
        groups = []
        for c, rs in zip(crops, recipes, strict=False):
            per_view = self.to_float(c).transpose(0, 1)  # (V_g, B, C, S, S)
            groups.append(
                self.normalize(
                    torch.cat(
                        [self._one_view(v, r, v.shape[-1], cropped=True) for v, r in zip(per_view, rs, strict=True)]
                    )
                )
            )
        return self._finish(groups, crops[0].shape[0])

    @torch.no_grad()
    def global_views(self, x: Tensor) -> Tensor:
        """uint8 (B, C, H, W) -> (V*B, C, size, size) normalised global views, view-major, unmixed."""
        return self._views(self.to_float(x), self.recipes, self.size)

    def _views(self, x: Tensor, recipes: Sequence[ViewRecipe], size: int) -> Tensor:
        """One view per recipe of float images ``x``, normalised and concatenated view-major."""
        return self.normalize(torch.cat([self._one_view(x, r, size) for r in recipes]))

    def _one_view(self, x: Tensor, r: ViewRecipe, size: int, cropped: bool = False) -> Tensor:
        """One view of every image in ``x``; ``cropped``: ``x`` holds the crops already (flip them only)."""
        b, _, h, w = x.shape
        dev = x.device
        if cropped:
            x = torch.where(_coin(b, r.flip_p, dev).view(-1, 1, 1, 1), x.flip(-1), x)
        else:
            boxes = sample_crop_boxes(b, h, w, r.crop_scale, r.crop_ratio, dev)
            x = resized_crop(x, boxes, size, flip=_coin(b, r.flip_p, dev))
        if self.random_fields is not None and r.random_fields:
            x = self.random_fields(x)
        if self.randaugment is not None and r.randaugment:
            x = self.randaugment(x)
        if r.jitter_p > 0 and any(r.jitter):
            x = _jitter(x, r.jitter, r.jitter_p)
        if r.grayscale_p > 0 and x.shape[1] > 1:
            g = _coin(b, r.grayscale_p, dev).view(-1, 1, 1, 1)
            x = torch.where(g, color.grayscale(x).expand_as(x), x)
        if r.blur_p > 0:
            sel = _coin(b, r.blur_p, dev)
            if sel.any():
                sigma = torch.empty(int(sel.sum()), device=dev).uniform_(*r.blur_sigma)
                x[sel] = color.gaussian_blur(x[sel], sigma, r.kernel_size(size))
        if r.solarize_p > 0:
            s = _coin(b, r.solarize_p, dev).view(-1, 1, 1, 1)
            x = torch.where(s, color.solarize(x), x)
        if r.channel_dropout_p > 0 and x.shape[1] > 1:
            x = _channel_dropout(x, r.channel_dropout_p, self.mean)
        if r.ops:
            for op in self.ops:
                x = op(x)
        return x


def _coin(n: int, p: float, device: torch.device) -> Tensor:
    return torch.rand(n, device=device) < p


def _channel_dropout(x: Tensor, p: float, mean: Tensor) -> Tensor:
    """Each channel of each image replaced by its normalisation mean with probability ``p``; one
    channel of every image, drawn at random, always kept."""
    b, c = x.shape[:2]
    drop = torch.rand(b, c, device=x.device) < p
    drop[torch.arange(b, device=x.device), torch.randint(c, (b,), device=x.device)] = False
    return torch.where(drop[:, :, None, None], mean.to(x.dtype).expand(b, c, 1, 1), x)


def _jitter(x: Tensor, strengths: Sequence[float], p: float) -> Tensor:
    """torchvision's ColorJitter with probability ``p``, factors and op order drawn per image; for
    images of neither 1 nor 3 channels, brightness and contrast factors drawn per image and channel."""
    b, dev = x.shape[0], x.device
    bri, con, sat, hue = strengths
    apply = _coin(b, p, dev)
    per_channel = x.shape[1] not in (1, 3)

    def factor(strength: float) -> Tensor:
        if per_channel:
            f = torch.empty(b, x.shape[1], device=dev).uniform_(max(0.0, 1 - strength), 1 + strength)
            return torch.where(apply[:, None], f, torch.ones_like(f)).view(b, -1, 1, 1)
        f = torch.empty(b, device=dev).uniform_(max(0.0, 1 - strength), 1 + strength)
        return torch.where(apply, f, torch.ones_like(f))

    params = [factor(bri), factor(con), factor(sat)]
    shift = torch.empty(b, device=dev).uniform_(-hue, hue)
    params.append(torch.where(apply, shift, torch.zeros_like(shift)))
    ops = [color.adjust_brightness, color.adjust_contrast, color.adjust_saturation, color.adjust_hue]
    active = [i for i, s in enumerate(strengths) if s > 0 and (i < 2 or x.shape[1] > 1)]
    order = torch.argsort(torch.rand(b, len(active), device=dev), dim=1)  # random order per image
    for slot in range(len(active)):
        for k, op_i in enumerate(active):
            sel = order[:, slot] == k
            if sel.any():
                x[sel] = ops[op_i](x[sel], params[op_i][sel])
    return x
