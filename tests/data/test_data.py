"""Every data reader on files in its real on-disk format, and its error when files are missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from selfsup.data import ImageDataModule
from selfsup.data.base import TensorImageDataset
from selfsup.data.cifar import cifar_splits
from selfsup.data.digits import digits_splits
from selfsup.data.fashion_mnist import fashion_mnist_splits, read_idx
from selfsup.data.folder import folder_splits
from selfsup.data.stl10 import stl10_splits
from selfsup.errors import DataError
from tests import fake_data


def test_digits_split_is_fixed_stratified_and_uint8() -> None:
    a, b = digits_splits(), digits_splits()
    assert len(a.train) == 1347 and len(a.test) == 450 and a.num_classes == 10
    assert torch.equal(a.test.labels, b.test.labels) and torch.equal(a.test.images, b.test.images)
    x, y, i = a.train[5]
    assert x.dtype == torch.uint8 and x.shape == (1, 8, 8) and int(x.max()) <= 255 and i == 5
    counts = torch.bincount(a.test.labels, minlength=10)
    assert counts.min() >= 43 and counts.max() <= 47  # ~450/10 per class: stratified
    assert not torch.equal(digits_splits(seed=1).test.labels, a.test.labels)


def test_fashion_mnist_reads_idx_files(tmp_path: Path) -> None:
    root = fake_data.make_fashion_mnist(tmp_path / "fm")
    arr = read_idx(root / "train-images-idx3-ubyte.gz")
    assert arr.shape == (64, 28, 28) and arr.dtype == np.uint8
    s = fashion_mnist_splits(str(root))
    assert len(s.train) == 64 and len(s.test) == 32 and s.train[0][0].shape == (1, 28, 28)


def test_fashion_mnist_missing_names_paths_and_apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("selfsup.data.fashion_mnist.DEBIAN_DIR", str(tmp_path / "debian"))
    with pytest.raises(FileNotFoundError) as e:
        fashion_mnist_splits(str(tmp_path / "nowhere"))
    msg = str(e.value)
    assert "apt-get install dataset-fashion-mnist" in msg and str(tmp_path / "nowhere") in msg
    assert str(tmp_path / "debian") in msg


@pytest.mark.parametrize("classes", [10, 100])
def test_cifar_pickles(tmp_path: Path, classes: int) -> None:
    root = fake_data.make_cifar_pickles(tmp_path, classes, n_train=200, n_test=100)
    s = cifar_splits(str(root), num_classes=classes)
    assert len(s.train) == 200 and len(s.test) == 100 and s.num_classes == classes
    x, y, _ = s.test[3]
    assert x.shape == (3, 32, 32) and x.dtype == torch.uint8 and int(y) == 3 % classes


def test_cifar_reads_the_unpacked_jpeg_tree(tmp_path: Path) -> None:
    """The layout `python ../shared/datasets/cifar10.py OUT_DIR` writes: OUT/{train,test}/<class>/n.jpg."""
    fake_data.make_image_folder(tmp_path, splits=("train", "test"), n=12, size=32)
    s = cifar_splits(str(tmp_path), num_classes=10)
    assert len(s.train) == 12 and s.num_classes == 3 and s.train[0][0].shape == (3, 32, 32)


def test_cifar_reads_decoded_arrays_before_the_jpeg_tree(tmp_path: Path) -> None:
    """`cifar10.py OUT_DIR --npz OUT_DIR/cifar10.npz` writes both; the arrays are read, as tensors."""
    fake_data.make_image_folder(tmp_path, splits=("train", "test"), n=12, size=32)
    x = fake_data.make_cifar_npz(tmp_path / "cifar10.npz", n_train=40, n_test=10)
    s = cifar_splits(str(tmp_path), num_classes=10)
    assert len(s.train) == 40 and len(s.test) == 10 and s.num_classes == 10
    img, y, idx = s.train[7]
    assert torch.equal(img, torch.from_numpy(x["x_train"][7]).permute(2, 0, 1)) and int(y) == 7 % 10 and idx == 7
    assert isinstance(s.train, TensorImageDataset)  # in memory: data.on_device=true can hold it on the device


def test_cifar_arrays_missing_a_key_name_the_file_and_the_keys(tmp_path: Path) -> None:
    np.savez(tmp_path / "cifar10.npz", x_train=np.zeros((2, 32, 32, 3), np.uint8), y_train=np.zeros(2))
    with pytest.raises(DataError, match=r"cifar10\.npz lacks x_test, y_test"):
        cifar_splits(str(tmp_path), num_classes=10)


def test_cifar_missing_says_where_and_how(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=rf"tar -xzf cifar-10-python\.tar\.gz -C {tmp_path}") as e:
        cifar_splits(str(tmp_path), 10)
    assert str(tmp_path) in str(e.value) and "data.download=true" in str(e.value)


def test_stl10_binary_with_unlabelled(tmp_path: Path) -> None:
    root = fake_data.make_stl10(tmp_path)
    s = stl10_splits(str(root), unlabeled=True)
    assert len(s.train) == 40 and s.probe_train is not None and len(s.probe_train) == 20
    x, y, idx = s.train[25]
    assert x.shape == (3, 96, 96) and int(y) == -1 and idx == 25  # unlabelled, unique index
    # Column-major storage is undone: the fake images have their blob where they were drawn.
    assert int(s.test[0][1]) == 0
    with pytest.raises(FileNotFoundError, match="stl10_binary"):
        stl10_splits(str(tmp_path / "none"))


def test_image_folder(tmp_path: Path) -> None:
    root = fake_data.make_image_folder(tmp_path, n=9, size=20)
    s = folder_splits(str(root), image_size=16, channels=3)
    assert len(s.train) == 9 and s.num_classes == 3
    x, y, _ = s.train[0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.uint8
    with pytest.raises(FileNotFoundError, match="image folder .*empty does not exist"):
        folder_splits(str(tmp_path / "empty"), image_size=16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no images \(.*\) under .*empty \(at any depth\)"):
        folder_splits(str(tmp_path / "empty"), image_size=16)


def test_datamodule_batches_are_uint8_with_indices() -> None:
    dm = ImageDataModule(digits_splits, batch_size=64)
    x, y, idx = next(iter(dm.train_dataloader()))
    assert x.dtype == torch.uint8 and x.shape == (64, 1, 8, 8) and y.shape == idx.shape == (64,)
    assert dm.num_classes == 10 and len(dm.val_dataloader().dataset) == 450
