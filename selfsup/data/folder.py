"""Images in class folders (``ROOT/<split>/<class>/*.jpg``), decoded lazily on the CPU."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from selfsup.data.base import ImageSplits
from selfsup.errors import MissingFileError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".pgm", ".tif", ".tiff")


def _center_square(img: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` and crop the centre square (so batches stack)."""
    w, h = img.size
    if (w, h) == (size, size):
        return img
    s = size / min(w, h)
    img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.Resampling.BILINEAR)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


class FolderImageDataset(Dataset):
    """``(image (C, size, size) uint8, label, index)`` from ``root/<class>/<file>``.

    Classes are the sorted sub-folder names, as in torchvision's ImageFolder.

    Args:
        root: folder of class folders.
        size: side of the square every image is resized and centre-cropped to.
        channels: 1 (grey) or 3 (RGB).
        classes: class names in label order; default: sorted sub-folders of ``root``.
    """

    def __init__(self, root: str | os.PathLike[str], size: int, channels: int = 3, classes: list[str] | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise MissingFileError(f"image folder {self.root} does not exist")
        self.classes = classes or sorted(p.name for p in self.root.iterdir() if p.is_dir())
        self.samples: list[tuple[str, int]] = []
        for label, c in enumerate(self.classes):
            for dirpath, _, files in os.walk(self.root / c):
                for f in sorted(files):
                    if f.lower().endswith(IMAGE_EXTENSIONS):
                        self.samples.append((os.path.join(dirpath, f), label))
        if not self.samples:
            raise MissingFileError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {self.root}/<class>/")
        self.size, self.mode = size, "L" if channels == 1 else "RGB"

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, int]:
        path, label = self.samples[i]
        with Image.open(path) as img:
            arr = np.asarray(_center_square(img.convert(self.mode), self.size))
        x = torch.from_numpy(arr.copy())
        x = x[None] if x.ndim == 2 else x.permute(2, 0, 1)
        return x.contiguous(), torch.tensor(label), i


def folder_splits(path: str, image_size: int, channels: int = 3, test_split: str = "auto") -> ImageSplits:
    """``path/train`` for pretraining and probes, ``path/val`` or ``path/test`` for evaluation.

    Args:
        path: dataset root.
        image_size: side of the stored square images.
        channels: 1 or 3.
        test_split: sub-folder used for evaluation; "auto" takes ``val`` or else ``test``.
    """
    root = Path(path)
    if test_split == "auto":
        test_split = next((s for s in ("val", "test") if (root / s).is_dir()), "val")
    missing = [str(root / s) for s in ("train", test_split) if not (root / s).is_dir()]
    if missing:
        raise MissingFileError(
            f"image folder data needs {root}/train/<class>/ and {root}/{test_split}/<class>/; missing: {missing}"
        )
    train = FolderImageDataset(root / "train", image_size, channels)
    test = FolderImageDataset(root / test_split, image_size, channels, classes=train.classes)
    return ImageSplits(train, test, num_classes=len(train.classes))
