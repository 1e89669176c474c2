"""View makers: uint8 batches in, augmented float views out.

``augment.backend=batched`` (default) makes views on the model's device after the
transfer; ``augment.backend=torchvision`` makes them per sample in the DataLoader.
"""

from typing import Any

from selfsup.augment.batch_mix import BatchMix
from selfsup.augment.cutmix import CutMix
from selfsup.augment.mixup import Mixup
from selfsup.augment.randaugment import RandAugment
from selfsup.augment.random_fields import RandomFields
from selfsup.augment.recipe import ViewRecipe
from selfsup.augment.resizemix import ResizeMix
from selfsup.augment.views import ViewMaker, ViewPipeline, Views

BACKENDS = ("batched", "torchvision")


def make_view_maker(backend: str = "batched", **kwargs: Any) -> ViewPipeline:
    """The view maker of ``backend`` with the :class:`ViewPipeline` arguments ``kwargs``."""
    if backend == "batched":
        return ViewMaker(**kwargs)
    if backend == "torchvision":
        from selfsup.augment.torchvision_views import TorchvisionViews

        return TorchvisionViews(**kwargs)
    raise ValueError(f"augment.backend={backend!r}; expected one of {list(BACKENDS)}")


# Its keywords are ViewPipeline's arguments: selfsup.schema_check checks them against that signature.
make_view_maker.kwargs_of = ViewPipeline  # type: ignore[attr-defined]


__all__ = [
    "BACKENDS",
    "BatchMix",
    "CutMix",
    "Mixup",
    "RandAugment",
    "RandomFields",
    "ResizeMix",
    "ViewMaker",
    "ViewPipeline",
    "ViewRecipe",
    "Views",
    "make_view_maker",
]
