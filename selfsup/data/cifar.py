"""CIFAR-10/100 from the official python pickles, decoded arrays (``.npz``), or an ImageFolder tree of JPEGs.

Reading the pickles ourselves (rather than through torchvision's classes) keeps the reader
testable on synthetic files; ``download=true`` still fetches through torchvision.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from selfsup.data.base import ImageSplits, TensorImageDataset
from selfsup.data.folder import OnBadImage, folder_splits
from selfsup.errors import DataError, MissingFileError

LAYOUT = {
    10: ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels"),
    100: ("cifar-100-python", ["train"], ["test"], b"fine_labels"),
}


def _read_batches(folder: Path, names: list[str], label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for n in names:
        with open(folder / n, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        xs.append(np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(d[label_key], dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _read_arrays(path: Path, num_classes: int) -> ImageSplits:
    """Decoded uint8 arrays: ``x_*`` (N, 32, 32, 3) or (N, 3, 32, 32), ``y_*`` (N,) labels."""
    with np.load(path) as z:
        missing = [k for k in ARRAY_KEYS if k not in z.files]
        if missing:
            raise DataError(f"{path} lacks {', '.join(missing)}: expected the arrays {', '.join(ARRAY_KEYS)}")
        parts = {k: z[k] for k in ARRAY_KEYS}
    for split in ("train", "test"):
        x = parts[f"x_{split}"]
        if x.dtype != np.uint8 or x.ndim != 4 or 3 not in (x.shape[1], x.shape[-1]):
            raise DataError(f"{path}: x_{split} must be uint8 (N, 32, 32, 3), got {x.dtype} {tuple(x.shape)}")
    return ImageSplits(
        TensorImageDataset(parts["x_train"], parts["y_train"]),
        TensorImageDataset(parts["x_test"], parts["y_test"]),
        num_classes=num_classes,
    )


def cifar_splits(
    root: str,
    num_classes: int = 10,
    download: bool = False,
    on_bad_image: OnBadImage = "error",
    verify: bool = False,
) -> ImageSplits:
    """CIFAR-10 or CIFAR-100, 32x32 RGB, 50,000 train / 10,000 test.

    Looks for, in order: ``root/<pickles folder>`` (torchvision's layout); ``root/cifar10.npz``
    (``cifar100.npz``): decoded uint8 arrays ``x_train`` (N, 32, 32, 3), ``y_train``, ``x_test``,
    ``y_test`` (like the pickles, held in memory as tensors, so ``data.on_device=true`` can hold them
    on the GPU); then ``root/train/<class>/`` + ``root/test/<class>/`` (an ImageFolder tree, decoded
    per sample). With ``download`` and none present, torchvision downloads the pickles.

    Args:
        root: data folder.
        num_classes: 10 or 100.
        download: allow torchvision to download (needs internet).
        on_bad_image: the ImageFolder tree's unreadable images: "error" or "skip" (see :func:`folder_splits`).
        verify: decode the ImageFolder tree's images before training (see :func:`folder_splits`).
    """
    if num_classes not in LAYOUT:
        raise ValueError(f"data.num_classes must be 10 or 100 for CIFAR, got {num_classes}")
    sub, train_names, test_names, key = LAYOUT[num_classes]
    pickles = Path(root) / sub
    tree = Path(root)
    arrays = tree / f"cifar{num_classes}.npz"
    if not (pickles / train_names[0]).is_file() and arrays.is_file():
        return _read_arrays(arrays, num_classes)
    if not (pickles / train_names[0]).is_file():
        if (tree / "train").is_dir() and (tree / "test").is_dir():
            return folder_splits(
                str(tree), image_size=32, channels=3, test_split="test", on_bad_image=on_bad_image, verify=verify
            )
        if not download:
            release = "cifar-10-python.tar.gz" if num_classes == 10 else "cifar-100-python.tar.gz"
            hint = f" Or unpack the standard python release there: `tar -xzf {release} -C {tree}`."
            raise MissingFileError(
                f"CIFAR-{num_classes} not found: looked for {pickles}/{train_names[0]}, {arrays} and "
                f"{tree}/train/<class>/. "
                f"Set data.download=true to download it with torchvision (needs internet).{hint}"
            )
        from torchvision import datasets

        cls = datasets.CIFAR10 if num_classes == 10 else datasets.CIFAR100
        cls(root, train=True, download=True)
        cls(root, train=False, download=True)
    xtr, ytr = _read_batches(pickles, train_names, key)
    xte, yte = _read_batches(pickles, test_names, key)
    return ImageSplits(TensorImageDataset(xtr, ytr), TensorImageDataset(xte, yte), num_classes=num_classes)
