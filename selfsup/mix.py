"""How a view of the batch was mixed: made by the augmentations, read by the losses."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True)
class Mix:
    """How one view of the batch was mixed; the losses turn it into soft targets.

    View ``view`` of image i holds a fraction ``lam[i]`` of image i and ``1 - lam[i]`` of
    image ``partner[i]`` (a permutation of the local batch).

    Attributes:
        view: index of the mixed view (among the V views the loss sees).
        partner: (B,) long, a permutation of 0..B-1.
        lam: (B,) float, the fraction of each mixed image that is its own.
    """

    view: int
    partner: Tensor
    lam: Tensor
