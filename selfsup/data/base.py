"""In-memory uint8 image datasets and the train/test pair every data option returns."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset


class TensorImageDataset(Dataset):
    """uint8 images held in memory; items are ``(image (C, H, W) uint8, label or -1, index)``.

    Args:
        images: (N, C, H, W) uint8, or (N, H, W) / (N, H, W, C) arrays that are reshaped to it.
        labels: (N,) integer labels, -1 for unlabelled images.
        index_offset: added to the returned sample index (unique ids across concatenated sets).
    """

    def __init__(self, images: Tensor | np.ndarray, labels: Tensor | np.ndarray, index_offset: int = 0) -> None:
        x = torch.as_tensor(np.asarray(images))
        if x.dtype != torch.uint8:
            raise TypeError(f"images must be uint8, got {x.dtype}")
        if x.ndim == 3:
            x = x[:, None]
        elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
            x = x.permute(0, 3, 1, 2)
        self.images = x.contiguous()
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        self.index_offset = index_offset

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, int]:
        return self.images[i], self.labels[i], i + self.index_offset


def seeded_indices(total: int, n: int, seed: int) -> list[int]:
    """``min(n, total)`` distinct indices of ``range(total)`` drawn with ``seed``, in index order."""
    if n >= total:
        return list(range(total))
    return sorted(torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n].tolist())


@runtime_checkable
class Streamed(Protocol):
    """A training set that streams itself (``data=shards``): its own resumable loader, and a
    per-sample ``sample_transform`` of each full-resolution image set by the data module."""

    sample_transform: Callable[[Tensor], Any] | None
    #: Images in the whole set (every rank's share); sample indices run from 0 to this - 1.
    num_images: int

    def loader(self, batch_size: int, num_workers: int, drop_last: bool) -> Iterable[Any]: ...


@dataclass
class ImageSplits:
    """What every ``data=`` option builds.

    Attributes:
        train: pretraining images (labels used only by probes; -1 where unlabelled).
        test: held-out images for evaluation: labelled, or (``num_classes`` 0) label -1, for the
            label-free metrics only.
        num_classes: label count; 0: no labels anywhere, no probe.
        probe_train: labelled images the probes fit on; defaults to the labelled part of train.
    """

    train: Dataset
    test: Dataset
    num_classes: int
    probe_train: Dataset | None = None

    @property
    def indexed_train(self) -> Dataset:
        """The training images read by index (a streamed training set: the by-index reader of its
        shards, ``probe_train``)."""
        if isinstance(self.train, Streamed):
            assert self.probe_train is not None, "a streamed training set comes with its by-index reader"
            return self.probe_train
        return self.train
