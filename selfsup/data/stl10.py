"""STL-10 from its binary files (``stl10_binary/*.bin``), downloaded by torchvision if asked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import ConcatDataset

from selfsup.data.base import ImageSplits, TensorImageDataset
from selfsup.errors import MissingFileError


def _read_x(path: Path) -> np.ndarray:
    # Column-major 3x96x96 per image: transpose the last two axes to get (N, 3, H, W).
    return np.fromfile(path, dtype=np.uint8).reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2).copy()


def _read_y(path: Path) -> np.ndarray:
    return np.fromfile(path, dtype=np.uint8).astype(np.int64) - 1  # labels are stored 1..10


def stl10_splits(root: str, unlabeled: bool = True, download: bool = False) -> ImageSplits:
    """96x96 RGB: pretrain on train (5,000) + unlabelled (100,000), probe on train, test on test.

    Args:
        root: folder holding ``stl10_binary/``.
        unlabeled: add the 100,000 unlabelled images to pretraining.
        download: allow torchvision to download (needs internet).
    """
    folder = Path(root) / "stl10_binary"
    needed = ["train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin"] + (["unlabeled_X.bin"] if unlabeled else [])
    if not all((folder / n).is_file() for n in needed):
        if not download:
            raise MissingFileError(
                f"STL-10 not found: looked for {needed} in {folder}. "
                "Set data.download=true to download it with torchvision (needs internet)."
            )
        from torchvision import datasets

        datasets.STL10(root, split="train+unlabeled", download=True)
    train = TensorImageDataset(_read_x(folder / "train_X.bin"), _read_y(folder / "train_y.bin"))
    test = TensorImageDataset(_read_x(folder / "test_X.bin"), _read_y(folder / "test_y.bin"))
    pretrain = train
    if unlabeled:
        x = _read_x(folder / "unlabeled_X.bin")
        pretrain = ConcatDataset([train, TensorImageDataset(x, np.full(len(x), -1), index_offset=len(train))])  # type: ignore[assignment]
    return ImageSplits(pretrain, test, num_classes=10, probe_train=train)
