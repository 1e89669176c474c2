"""Lightning data module over an :class:`ImageSplits`: uint8 batches, augmentation happens later."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from selfsup import dist
from selfsup.data.base import ImageSplits, Streamed
from selfsup.data.device_batches import DeviceBatches, resident_tensors
from selfsup.errors import ConfigError


class ImageDataModule(L.LightningDataModule):
    """Loads the splits lazily and serves uint8 batches ``(images, labels, indices)``.

    Args:
        splits: a zero-argument callable building the splits (a Hydra partial), so that
            data is read in ``setup`` and a missing data set fails before training starts.
        batch_size: images per device per step (views are made on the device).
        num_workers: DataLoader worker processes; 0 loads in the main process.
        eval_batch_size: batch size of feature extraction.
        drop_last: drop the last incomplete training batch (keeps the negative count fixed).
        train_transform: per-sample transform of training images (``augment.backend=torchvision``
            makes its views here); None serves uint8 images and views are made on the device.
        full_resolution_transform: per-sample transform of a streamed training set's images,
            decoded at their own sizes (:class:`~selfsup.data.base.Streamed`, ``data=shards``):
            the view maker's crops (or, with the torchvision backend, its views).
        on_device: hold the training images on the training device and serve batches from there
            (:class:`DeviceBatches`, the airbench approach) instead of through a DataLoader.
        seed: the run's seed; with ``on_device`` each epoch's order is drawn from it and the epoch.
    """

    def __init__(
        self,
        splits: Callable[[], ImageSplits],
        batch_size: int = 256,
        num_workers: int = 0,
        eval_batch_size: int = 512,
        drop_last: bool = True,
        train_transform: Callable[[torch.Tensor], object] | None = None,
        full_resolution_transform: Callable[[torch.Tensor], object] | None = None,
        on_device: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if on_device and train_transform is not None:
            raise ConfigError(
                "data.on_device=true serves whole uint8 batches from the device, but augment.backend=torchvision "
                "makes views per sample in DataLoader workers: use augment.backend=batched or data.on_device=false"
            )
        self._build = splits
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.eval_batch_size = eval_batch_size
        self.drop_last = drop_last
        self.train_transform = train_transform
        self.full_resolution_transform = full_resolution_transform
        self.on_device = on_device
        self.seed = seed
        self.splits: ImageSplits | None = None
        self._resident: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # device_batches' tensors

    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            splits = self._build()
            if self.on_device:  # refuses a set read from files before training starts
                self._resident = resident_tensors(splits.train)
            self.splits = splits

    @property
    def num_classes(self) -> int:
        self.setup()
        assert self.splits is not None
        return self.splits.num_classes

    def _loader(self, ds: Dataset, batch_size: int, shuffle: bool, drop_last: bool) -> DataLoader:
        return DataLoader(
            ds,
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )

    def train_size(self) -> int:
        """Images in the training set (all ranks); per-image state (memory banks) has a row each."""
        self.setup()
        assert self.splits is not None
        train = self.splits.train
        return train.num_images if isinstance(train, Streamed) else len(train)  # type: ignore[arg-type]

    def train_share(self, processes: int) -> tuple[int, bool]:
        """An epoch of the training loader split over ``processes`` processes: the images the process
        with the fewest gets, and whether its loader then drops the last incomplete batch.

        A loader that drops it has no step to give a process whose share is smaller than one batch.
        The in-memory loaders serve such a set as one smaller batch instead: :class:`DeviceBatches`
        judges each process's share, the DataLoader the whole set (its share under DDP is Lightning's
        ``DistributedSampler``'s, padded to ceil(N / processes)). A streamed set (``data=shards``) has
        no such fallback.
        """
        n = self.train_size()
        assert self.splits is not None
        if self.on_device:
            return n // processes, False
        if isinstance(self.splits.train, Streamed):
            return n // processes, self.drop_last
        return math.ceil(n / processes), self.drop_last and n >= self.batch_size

    def train_dataloader(self) -> Iterable[Any]:
        """The shuffled training batches: a DataLoader; with ``on_device`` a :class:`DeviceBatches`
        on the trainer's device (the CPU when not attached to one); for a streamed set
        (``data=shards``) its own resumable loader."""
        if self.on_device:
            return self.device_batches()
        self.setup()
        assert self.splits is not None
        if isinstance(self.splits.train, Streamed):
            self.splits.train.sample_transform = self.full_resolution_transform
            return self.splits.train.loader(self.batch_size, self.num_workers, self.drop_last)
        n = self.train_size()
        # With fewer images than one batch, drop_last would leave an empty epoch.
        drop = self.drop_last and n >= self.batch_size
        ds = self.splits.train if self.train_transform is None else Transformed(self.splits.train, self.train_transform)
        return self._loader(ds, min(self.batch_size, n), shuffle=True, drop_last=drop)

    def device_batches(self, device: torch.device | str | None = None) -> DeviceBatches:
        """The training set on ``device`` (default: the trainer's root device, else the CPU), split
        between the ranks of the running process group."""
        self.setup()
        if device is None:
            device = self.trainer.strategy.root_device if self.trainer is not None else "cpu"
        assert self.splits is not None
        if self._resident is None:  # device_batches without on_device (the benchmark's comparison)
            self._resident = resident_tensors(self.splits.train)
        images, labels, indices = self._resident
        return DeviceBatches(
            images,
            labels,
            indices,
            batch_size=self.batch_size,
            drop_last=self.drop_last,
            seed=self.seed,
            device=device,
            rank=dist.rank(),
            world_size=dist.world_size(),
        )

    def val_dataloader(self) -> DataLoader:
        self.setup()
        assert self.splits is not None
        return self._loader(self.splits.test, self.eval_batch_size, shuffle=False, drop_last=False)

    def probe_train_dataset(self) -> Dataset:
        """Labelled images the offline probes fit on (unlabelled ones dropped)."""
        self.setup()
        assert self.splits is not None
        if self.splits.probe_train is not None:
            return self.splits.probe_train
        return self.splits.train

    def held_out_images(self, n: int) -> torch.Tensor:
        """The first ``n`` held-out images as one uint8 batch (the label-free metrics' inputs)."""
        self.setup()
        assert self.splits is not None
        ds = self.splits.test
        return torch.stack([ds[i][0] for i in range(min(n, len(ds)))])  # type: ignore[arg-type]

    def train_images(self, indices: list[int]) -> torch.Tensor:
        """The training images at ``indices`` as one batch (a streamed set: read by index from its shards)."""
        self.setup()
        assert self.splits is not None
        ds = self.splits.indexed_train
        return torch.stack([ds[i][0] for i in indices])  # type: ignore[index]

    def feature_loader(self, ds: Dataset) -> DataLoader:
        """Unshuffled loader for feature extraction."""
        return self._loader(ds, self.eval_batch_size, shuffle=False, drop_last=False)


class Transformed(Dataset):
    """``(image, label, index)`` items with ``transform`` applied to the image."""

    def __init__(self, ds: Dataset, transform: Callable[[torch.Tensor], object]) -> None:
        self.ds = ds
        self.transform = transform

    def __len__(self) -> int:
        return len(self.ds)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[object, torch.Tensor, int]:
        image, label, index = self.ds[i]
        return self.transform(image), label, index
