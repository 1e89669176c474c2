"""Tiny data sets written in each real on-disk format, so every reader runs on real files."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
from PIL import Image


def _images(n: int, size: int, channels: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class-dependent blobs plus noise: learnable, so probes score above chance."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    x = np.empty((n, channels, size, size), dtype=np.uint8)
    for i in range(n):
        cx, cy = (y[i] % 4) / 3, (y[i] // 4 % 4) / 3
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.08)
        img = 200 * blob[None] + rng.normal(0, 20, (channels, size, size)) + 20
        x[i] = np.clip(img, 0, 255).astype(np.uint8)
    return x, y.astype(np.int64)


def write_idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def make_fashion_mnist(root: Path, n_train: int = 64, n_test: int = 32) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for split, n, prefix in (("train", n_train, "train"), ("test", n_test, "t10k")):
        x, y = _images(n, 28, 1, 10, seed=1 if split == "train" else 2)
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", x[:, 0])
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", y)
    return root


def make_cifar_npz(path: Path, n_train: int = 50, n_test: int = 20) -> dict[str, np.ndarray]:
    """Decoded CIFAR arrays as ``shared/datasets/cifar10.py OUT --npz F`` writes them; returns them."""
    rng = np.random.default_rng(0)
    arrays: dict[str, np.ndarray] = {
        "x_train": rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
        "y_train": np.arange(n_train, dtype=np.int64) % 10,
        "x_test": rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8),
        "y_test": np.arange(n_test, dtype=np.int64) % 10,
    }
    np.savez(path, **arrays)  # type: ignore[arg-type]  # numpy 2.4 stubs match **arrays against allow_pickle
    return arrays


def make_cifar_pickles(root: Path, num_classes: int = 10, n_train: int = 50, n_test: int = 20) -> Path:
    """torchvision's python-pickle layout (cifar-10-batches-py / cifar-100-python)."""
    if num_classes == 10:
        folder, names, key = root / "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], b"labels"
        test_names = ["test_batch"]
    else:
        folder, names, key, test_names = root / "cifar-100-python", ["train"], b"fine_labels", ["test"]
    folder.mkdir(parents=True, exist_ok=True)
    x, y = _images(n_train, 32, 3, num_classes, seed=3)
    for part, name in zip(np.array_split(np.arange(n_train), len(names)), names, strict=True):
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": x[part].reshape(len(part), -1), key: y[part].tolist()}, f)
    xt, yt = _images(n_test, 32, 3, num_classes, seed=4)
    with open(folder / test_names[0], "wb") as f:
        pickle.dump({b"data": xt.reshape(n_test, -1), key: yt.tolist()}, f)
    return root


def make_stl10(root: Path, n_train: int = 20, n_test: int = 20, n_unlabeled: int = 20) -> Path:
    """STL-10's binary layout: column-major 3x96x96 uint8 images, labels 1..10."""
    folder = root / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)
    for name, n, seed in (("train", n_train, 5), ("test", n_test, 6), ("unlabeled", n_unlabeled, 7)):
        x, y = _images(n, 96, 3, 10, seed)
        x.transpose(0, 1, 3, 2).tofile(folder / f"{name}_X.bin")
        if name != "unlabeled":
            (y + 1).astype(np.uint8).tofile(folder / f"{name}_y.bin")
    return root


def make_image_folder(root: Path, splits: tuple[str, ...] = ("train", "val"), n: int = 24, size: int = 40) -> Path:
    """ROOT/<split>/<class>/<i>.png with 3 classes (non-square images, to exercise the resize)."""
    for s, split in enumerate(splits):
        x, y = _images(n, size, 3, 3, seed=10 + s)
        for i in range(n):
            d = root / split / f"class{y[i]}"
            d.mkdir(parents=True, exist_ok=True)
            img = Image.fromarray(x[i].transpose(1, 2, 0)).resize((size + 8, size))
            img.save(d / f"{i:03d}.png")
    return root


def make_photos(root: Path, n: int = 40) -> Path:
    """``n`` unlabelled photos at depths 0 to 2 (``000.png``, ``2026/001.png``, ``2026/cam1/002.jpg``),
    of various sizes, no classes: a blue or yellow half, left or top, in turn, so that an encoder's
    neighbours have something to find."""
    for i in range(n):
        folder = root / ["", "2026", "2026/cam1"][i % 3]
        folder.mkdir(parents=True, exist_ok=True)
        img = Image.new("RGB", (40 + i % 5, 36), (20, 20, 20))
        img.paste((230, 200, 40) if i % 2 else (40, 90, 230), (0, 0, 20 + i % 5, 36) if i % 4 < 2 else (0, 0, 40, 18))
        img.save(folder / f"{i:03d}.{'jpg' if i % 3 == 2 else 'png'}")
    return root
