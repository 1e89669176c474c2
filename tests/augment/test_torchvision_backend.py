"""augment.backend=torchvision: the per-sample pipeline, its data path, and agreement with batched."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import default_collate

from selfsup.augment import CutMix, RandAugment, RandomFields, ViewMaker, make_view_maker
from selfsup.augment.torchvision_views import TorchvisionViews
from selfsup.data.base import ImageSplits, TensorImageDataset
from selfsup.data.module import ImageDataModule

# No randomness left: the whole image, no flip, no colour ops.
FIXED = dict(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, grayscale_p=0.0)


def _images(n: int = 6, c: int = 3, size: int = 16) -> torch.Tensor:
    return torch.randint(0, 256, (n, c, size, size), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def test_both_backends_make_the_same_deterministic_views() -> None:
    x = _images(size=16)
    kw = dict(views=2, size=16, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3), **FIXED)
    tv = TorchvisionViews(**kw)
    per_sample = tv(default_collate([tv.sample_transform(img) for img in x]))  # type: ignore[misc]
    batched = ViewMaker(**kw)(x)
    assert per_sample.count == batched.count == 2
    assert torch.allclose(per_sample.groups[0], batched.groups[0], atol=1e-5)


def test_per_sample_views_with_multicrop_and_cutmix() -> None:
    tv = make_view_maker("torchvision", views=2, size=16, local_views=3, local_size=8, mix=CutMix())
    assert isinstance(tv, TorchvisionViews)
    sample = tv.sample_transform(_images(1)[0])  # type: ignore[misc]
    assert [v.shape for v in sample] == [(3, 16, 16)] * 2 + [(3, 8, 8)] * 3
    out = tv(default_collate([tv.sample_transform(img) for img in _images(4)]))  # type: ignore[misc]
    assert [g.shape for g in out.groups] == [(8, 3, 16, 16), (12, 3, 8, 8)] and out.mix is not None
    assert tv.global_views(_images(4)).shape == (8, 3, 16, 16)
    with pytest.raises(TypeError, match="sequence of 5 view batches"):
        tv(_images(4))


def test_torchvision_randaugment_runs_and_unsupported_settings_are_refused() -> None:
    tv = TorchvisionViews(views=2, size=16, randaugment=RandAugment())
    assert any("RandAugment" in repr(t) for t in tv.sample_transform.pipelines[0].transforms)  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="random_fields needs augment.backend=batched"):
        TorchvisionViews(views=2, size=16, random_fields=RandomFields(rotate=(5.0, 4.0)))
    with pytest.raises(ValueError, match="op_set=torchvision, op_p=1"):
        TorchvisionViews(views=2, size=16, randaugment=RandAugment(op_set="timm", num_magnitude_bins=11))
    with pytest.raises(ValueError, match="augment.backend='gpu'"):
        make_view_maker("gpu")


def test_data_module_applies_the_per_sample_transform_to_training_batches_only() -> None:
    tv = TorchvisionViews(views=2, size=8)
    ds = TensorImageDataset(_images(12, 3, 10), torch.arange(12) % 3)
    dm = ImageDataModule(lambda: ImageSplits(ds, ds, 3), batch_size=4, train_transform=tv.sample_transform)
    views, labels, idx = next(iter(dm.train_dataloader()))
    assert len(views) == 2 and views[0].shape == (4, 3, 8, 8) and views[0].dtype == torch.float32
    x, _, _ = next(iter(dm.val_dataloader()))
    assert x.dtype == torch.uint8 and x.shape[-1] == 10
