"""What one view is made of: the SimCLR recipe's settings, and per-view (BYOL style) overrides."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ViewRecipe:
    """Settings of one view; see ``ViewMaker`` for their meaning.

    ``randaugment``, ``random_fields`` and ``ops`` say whether this view gets the configured
    RandAugment / random fields / ops of one's own (they do nothing when none is configured).
    """

    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel_frac: float = 0.1
    solarize_p: float = 0.0
    channel_dropout_p: float = 0.0
    randaugment: bool = True
    random_fields: bool = True
    ops: bool = True

    def __post_init__(self) -> None:
        for name in ("crop_scale", "crop_ratio", "jitter", "blur_sigma"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        if len(self.jitter) != 4:
            raise ValueError(f"jitter must be (brightness, contrast, saturation, hue), got {list(self.jitter)}")
        for name in ("crop_scale", "crop_ratio", "blur_sigma"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must be a range 0 < low <= high, got {[lo, hi]}")
        for name in ("flip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p", "channel_dropout_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} is a probability, got {getattr(self, name)}")

    def kernel_size(self, size: int) -> int:
        """Odd blur kernel side for a view of side ``size`` (at least 3)."""
        return max(3, int(round(self.blur_kernel_frac * size)) // 2 * 2 + 1)


def view_recipes(base: ViewRecipe, views: int, per_view: Sequence[Mapping[str, Any]]) -> list[ViewRecipe]:
    """``views`` recipes: ``base`` with ``per_view[k]``'s keys replaced for view k.

    Raises:
        ValueError: more overrides than views, or a key that is not a recipe setting.
    """
    if len(per_view) > views:
        raise ValueError(f"augment.per_view has {len(per_view)} entries but augment.views={views}")
    fields = {f.name for f in dataclasses.fields(ViewRecipe)}
    out = []
    for k in range(views):
        delta = dict(per_view[k]) if k < len(per_view) else {}
        unknown = sorted(set(delta) - fields)
        if unknown:
            raise ValueError(f"augment.per_view[{k}] has unknown key(s) {unknown}; expected any of {sorted(fields)}")
        out.append(dataclasses.replace(base, **delta))
    return out
