"""Fashion-MNIST from its gzipped IDX files (Debian's ``dataset-fashion-mnist`` or a folder)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from selfsup.data.base import ImageSplits, TensorImageDataset
from selfsup.errors import MissingFileError

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
FILES = {
    "train_x": "train-images-idx3-ubyte.gz",
    "train_y": "train-labels-idx1-ubyte.gz",
    "test_x": "t10k-images-idx3-ubyte.gz",
    "test_y": "t10k-labels-idx1-ubyte.gz",
}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a (gzipped) IDX file: magic 0x0000 TT DD, DD big-endian int32 sizes, then uint8 data."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of uint8 (magic {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape} but holds {data.size} bytes")
    return data.reshape(shape).copy()  # frombuffer is read-only


def find_fashion_mnist(root: str | None) -> Path:
    """The first folder holding all four files: ``root``, ``root/fashion-mnist``, then Debian's."""
    candidates = [Path(root), Path(root) / "fashion-mnist"] if root else []
    candidates.append(Path(DEBIAN_DIR))  # read at call time (tests move it aside)
    for c in candidates:
        if all((c / f).is_file() for f in FILES.values()):
            return c
    looked = ", ".join(str(c) for c in candidates)
    raise MissingFileError(
        f"Fashion-MNIST not found: looked for {sorted(FILES.values())} in {looked}. "
        "Install it with `apt-get install dataset-fashion-mnist` (files land in "
        "/usr/share/datasets/fashion-mnist) "
        "or set data.root to a folder holding those four files."
    )


def fashion_mnist_splits(root: str | None = None) -> ImageSplits:
    """The official 60,000 / 10,000 split, 28x28 grey, 10 classes."""
    d = find_fashion_mnist(root)
    arr = {k: read_idx(d / f) for k, f in FILES.items()}
    return ImageSplits(
        TensorImageDataset(arr["train_x"], arr["train_y"]),
        TensorImageDataset(arr["test_x"], arr["test_y"]),
        num_classes=10,
    )
