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
    """The view maker of ``backend`` with the :class:`ViewPipeline` arguments ``kwargs``.

    Example:
        >>> from selfsup.augment import make_view_maker
        >>> view_maker = make_view_maker(views=2, size=16, mean=[0.5] * 3, std=[0.5] * 3)
        >>> views = view_maker(torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8))
        >>> views.groups[0].shape, views.count  # one view-major (V*B, C, S, S) float tensor per size
        (torch.Size([16, 3, 16, 16]), 2)
    """
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
