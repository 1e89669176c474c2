"""Training batches indexed from one uint8 tensor on the training device (``data.on_device=true``).

The airbench approach (Keller Jordan, "94% on CIFAR-10 in 3.29 seconds on a single GPU", 2024):
a CIFAR-size set fits on the GPU as uint8 (CIFAR-10: 50,000 x 3 x 32 x 32 bytes, 150 MB), so a
batch is one gather ``images[order[i : i + B]]`` from a permutation drawn per epoch, instead of a
DataLoader indexing, collating and copying B samples one by one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import ConcatDataset, Dataset

from selfsup.data.base import TensorImageDataset
from selfsup.errors import ConfigError

Batch = tuple[Tensor, Tensor, Tensor]  # uint8 (B, C, H, W), int64 labels (B,), int64 indices (B,)


def resident_tensors(ds: Dataset) -> Batch:
    """The images, labels and sample indices of an in-memory training set, as ``ds[i]`` gives them.

    A :class:`TensorImageDataset` (its own tensors, not copied), or a ``ConcatDataset`` of them
    (STL-10's train + unlabelled, concatenated); anything else (images decoded per sample from
    files) is refused.
    """
    parts = ds.datasets if isinstance(ds, ConcatDataset) else [ds]
    if not all(isinstance(p, TensorImageDataset) for p in parts):
        raise ConfigError(
            f"data.on_device=true needs a training set held in memory as tensors; {type(ds).__name__} "
            "reads its images per sample from files: set data.on_device=false"
        )
    sets: list[TensorImageDataset] = list(parts)  # type: ignore[arg-type]
    indices = torch.cat([torch.arange(len(p), dtype=torch.long) + p.index_offset for p in sets])
    if len(sets) == 1:  # the set's own tensors: no copy of the images
        return sets[0].images, sets[0].labels, indices
    return torch.cat([p.images for p in sets]), torch.cat([p.labels for p in sets]), indices


class DeviceBatches:
    """Shuffled ``(images, labels, indices)`` batches of a training set that lives on ``device``.

    What ``DataLoader(ds, batch_size, shuffle=True, drop_last)`` yields, without per-sample
    indexing, collation or workers: each epoch a permutation is drawn on a CPU ``torch.Generator``
    seeded with ``seed + epoch`` (the same on every device and rank), this rank keeps its share
    ``order[rank : n - n % world_size : world_size]`` (disjoint and equal, as ``DistributedSampler``
    with ``drop_last=True``), and each batch is gathered with one index on the device.

    Batches: ``min(batch_size, m)`` images each, where m is this rank's share; the last incomplete
    batch is dropped when ``drop_last`` and ``m >= batch_size`` (a share smaller than one batch is
    served whole rather than as an empty epoch).

    The epoch is set by :meth:`set_epoch` (Lightning calls ``loader.sampler.set_epoch(epoch)`` at
    every epoch start, as for a ``DistributedSampler``; :attr:`sampler` is this object) and moves
    on by itself when an epoch is iterated to its end. :meth:`state_dict` holds the epoch and the
    batches served in it, which Lightning saves in the checkpoint (``FitLoop.on_save_checkpoint``
    saves every stateful training iterable) and loads before the first batch of a resumed run:
    an iteration started in the same epoch continues after the last batch served.

    Args:
        images: (N, C, H, W) uint8.
        labels: (N,) int64, -1 where unlabelled.
        indices: (N,) int64 sample indices (what ``ds[i]`` returns as its third item).
        batch_size: images per batch (per process).
        drop_last: drop the last incomplete batch.
        seed: the run's seed; epoch e's order is drawn from ``seed + e``.
        device: where the images are held and batches are made.
        rank: this process's rank.
        world_size: processes sharing each epoch's permutation.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        indices: Tensor,
        batch_size: int,
        drop_last: bool = True,
        seed: int = 0,
        device: torch.device | str = "cpu",
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise TypeError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if not len(images) == len(labels) == len(indices):
            raise ValueError(f"{len(images)} images, {len(labels)} labels and {len(indices)} indices")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in a world of {world_size}")
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device, torch.long)
        self.indices = indices.to(self.device, torch.long)
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.share = len(images) // world_size  # images this rank serves per epoch
        self.batch_size = min(batch_size, self.share)
        self.drop_last = drop_last and self.share >= batch_size
        self.epoch = 0
        self.position = 0  # batches of `epoch` served so far

    def __len__(self) -> int:
        """Batches per epoch (Lightning's progress and the lr schedules read it)."""
        if self.batch_size == 0:
            return 0
        whole, rest = divmod(self.share, self.batch_size)
        return whole + (1 if rest and not self.drop_last else 0)

    @property
    def sampler(self) -> DeviceBatches:
        """This object: where Lightning looks for ``set_epoch`` at each epoch start."""
        return self

    def set_epoch(self, epoch: int) -> None:
        """Serve ``epoch``'s order next, from its start unless it is the epoch being served."""
        if epoch != self.epoch:
            self.epoch = epoch
            self.position = 0

    def order(self, epoch: int) -> Tensor:
        """This rank's share of ``epoch``'s permutation: positions into the images, on the device."""
        g = torch.Generator().manual_seed(self.seed + epoch)
        perm = torch.randperm(len(self.images), generator=g)
        return perm[self.rank : self.share * self.world_size : self.world_size].to(self.device)

    def __iter__(self) -> Iterator[Batch]:
        # A generator: nothing runs until the first batch is asked for, after Lightning has set
        # the epoch (and loaded a checkpoint's state).
        if self.position >= len(self):  # the last iteration served this epoch whole
            self.set_epoch(self.epoch + 1)
        order = self.order(self.epoch)
        for b in range(self.position, len(self)):
            take = order[b * self.batch_size : (b + 1) * self.batch_size]
            self.position = b + 1
            yield self.images[take], self.labels[take], self.indices[take]
        self.set_epoch(self.epoch + 1)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
