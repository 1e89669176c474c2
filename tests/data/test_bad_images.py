"""Image files PIL cannot decode: data.on_bad_image=error|skip and data.verify, read directly,
through DataLoader workers, and from `python train.py`."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from selfsup.cli import make_shards as make_shards_cli
from selfsup.data.cifar import cifar_splits
from selfsup.data.folder import FolderImageDataset, folder_splits
from selfsup.errors import ConfigError, DataError
from tests import fake_data
from tests.conftest import TINY
from tests.test_cli import train

N = 6  # valid images per split (3 classes); with the two bad ones, fewer than one TINY batch (16)


def _with_bad_files(root: Path, split: str = "train") -> tuple[Path, Path]:
    """A file that is not an image and a PNG cut in half, beside valid images of ``root/split``."""
    bad = root / split / "class0" / "bad.png"
    bad.write_bytes(b"not a png")
    whole = (root / split / "class1" / "001.png").read_bytes()
    truncated = root / split / "class1" / "truncated.png"
    truncated.write_bytes(whole[: len(whole) // 2])
    return bad, truncated


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, Path, Path]:
    """``(root, bad, truncated)``: train/ and val/ with N valid PNGs each, two unreadable files in train/."""
    root = fake_data.make_image_folder(tmp_path / "images", n=N, size=20)
    return (root, *_with_bad_files(root))


def _index(ds: FolderImageDataset, path: Path) -> int:
    return [p for p, _ in ds.samples].index(str(path))


def test_error_names_the_file_and_the_options(folder: tuple[Path, Path, Path]) -> None:
    root, bad, truncated = folder
    train_ds = folder_splits(str(root), image_size=16).train
    assert len(train_ds) == N + 2
    for path, reason in ((bad, "cannot identify image file"), (truncated, "truncated")):
        with pytest.raises(DataError) as e:
            train_ds[_index(train_ds, path)]
        msg = str(e.value)
        assert f"image {path} cannot be read" in msg and reason in msg
        assert "data.on_bad_image=skip" in msg and "data.verify=true" in msg and "\n" not in msg
    x, _, _ = train_ds[0]  # the valid ones still read
    assert x.shape == (3, 16, 16)


def test_error_from_a_dataloader_worker_is_still_one_line(folder: tuple[Path, Path, Path]) -> None:
    """torch re-raises a worker's exception with the worker's traceback as its message; the
    DataError that reaches the caller carries the original one-line message."""
    root, bad, truncated = folder
    train_ds = folder_splits(str(root), image_size=16).train
    with pytest.raises(DataError) as e:
        for _ in DataLoader(train_ds, batch_size=4, num_workers=2):
            pass
    msg = str(e.value)
    assert msg.startswith("image ") and "\n" not in msg and "Traceback" not in msg
    assert str(bad) in msg or str(truncated) in msg


def test_skip_serves_the_next_readable_image_and_logs_each_file_once(
    folder: tuple[Path, Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    root, bad, truncated = folder
    train_ds = folder_splits(str(root), image_size=16, on_bad_image="skip").train
    with caplog.at_level(logging.WARNING, logger="selfsup.data.folder"):
        for _ in range(2):  # the second pass logs nothing new
            items = [train_ds[i] for i in range(len(train_ds))]
    assert [i for _, _, i in items] == list(range(N + 2))  # every index served, batches keep their size
    assert all(x.shape == (3, 16, 16) and x.dtype == torch.uint8 for x, _, _ in items)
    for path in (bad, truncated):
        i = _index(train_ds, path)
        j = (i + 1) % len(train_ds)  # its neighbour (readable here) stands in, label included
        assert torch.equal(items[i][0], items[j][0]) and int(items[i][1]) == int(items[j][1])
        logged = [r.getMessage() for r in caplog.records if str(path) in r.getMessage()]
        assert len(logged) == 1 and "skipping unreadable image" in logged[0], logged
    assert "2 skipped so far" in caplog.text
    # Through DataLoader workers too: a full pass yields every index with a valid image.
    batches = list(DataLoader(train_ds, batch_size=4, num_workers=2))
    assert torch.cat([b[2] for b in batches]).tolist() == list(range(N + 2))


def test_verify_with_error_lists_every_unreadable_file_in_one_error(folder: tuple[Path, Path, Path]) -> None:
    root, bad, truncated = folder
    with pytest.raises(DataError) as e:
        folder_splits(str(root), image_size=16, verify=True)
    msg = str(e.value)
    assert f"2 of {2 * N + 2} images cannot be read" in msg and str(bad) in msg and str(truncated) in msg
    assert "data.on_bad_image=skip" in msg and "\n" not in msg


def test_verify_with_skip_drops_the_unreadable_files(
    folder: tuple[Path, Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    root, bad, truncated = folder
    with caplog.at_level(logging.WARNING, logger="selfsup.data.folder"):
        s = folder_splits(str(root), image_size=16, on_bad_image="skip", verify=True)
    assert len(s.train) == N and len(s.test) == N
    assert {str(bad), str(truncated)}.isdisjoint(p for p, _ in s.train.samples)  # type: ignore[attr-defined]
    assert f"dropped 2 of {2 * N + 2} images" in caplog.text
    assert str(bad) in caplog.text and str(truncated) in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="selfsup.data.folder"):
        assert all(s.train[i][0].shape == (3, 16, 16) for i in range(len(s.train)))
    assert not caplog.records  # nothing left to skip during training


def test_verify_of_a_clean_folder_keeps_every_image(tmp_path: Path) -> None:
    root = fake_data.make_image_folder(tmp_path, n=N, size=20)
    s = folder_splits(str(root), image_size=16, verify=True)
    assert len(s.train) == len(s.test) == N


def test_unknown_on_bad_image_is_a_config_error(folder: tuple[Path, Path, Path]) -> None:
    with pytest.raises(ConfigError, match=r"data\.on_bad_image=ignore; expected one of error\|skip"):
        folder_splits(str(folder[0]), image_size=16, on_bad_image="ignore")


def test_cifar_image_tree_takes_the_same_options(tmp_path: Path) -> None:
    root = fake_data.make_image_folder(tmp_path, splits=("train", "test"), n=N, size=32)
    bad, _ = _with_bad_files(root)
    with pytest.raises(DataError, match="bad.png"):
        cifar_splits(str(root), verify=True)
    s = cifar_splits(str(root), on_bad_image="skip", verify=True)
    assert len(s.train) == N


# `python train.py` on the folder: the overrides that keep a run to seconds.
FAST = ["data=imagefolder", "data.image_size=16", "data.view.size=12", *TINY, "data.num_workers=2"]


def test_train_py_stops_on_an_unreadable_image_with_one_line(folder: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """The default (error) through train.py, with the images read in DataLoader workers."""
    root, bad, truncated = folder
    p = train(*FAST, f"data.path={root}", run_dir=tmp_path / "run")
    assert p.returncode == 2, p.stderr[-3000:]
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("error: image ") and "cannot be read" in last and "data.on_bad_image=skip" in last
    assert str(bad) in last or str(truncated) in last
    assert "Traceback" not in p.stderr


def test_train_py_verify_refuses_before_the_run_directory_is_written(
    folder: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    root, bad, truncated = folder
    run_dir = tmp_path / "run"
    p = train(*FAST, f"data.path={root}", "data.verify=true", run_dir=run_dir)
    assert p.returncode == 2, p.stderr[-3000:]
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("error: data.verify=true: 2 of") and str(bad) in last and str(truncated) in last
    assert "Traceback" not in p.stderr
    assert not run_dir.exists()  # refused before it started: not even the directory Hydra made stays


def test_train_py_skips_unreadable_images(folder: tuple[Path, Path, Path], tmp_path: Path) -> None:
    root, bad, truncated = folder
    run_dir = tmp_path / "run"
    p = train(*FAST, f"data.path={root}", "data.on_bad_image=skip", run_dir=run_dir)
    assert p.returncode == 0, p.stderr[-3000:]
    assert (run_dir / "results.json").is_file()
    assert f"skipping unreadable image {bad}" in p.stdout and f"skipping unreadable image {truncated}" in p.stdout


def test_a_validation_class_the_training_split_lacks_is_refused(tmp_path: Path) -> None:
    root = fake_data.make_image_folder(tmp_path / "images", n=6, size=12)
    (root / "val" / "zebra").mkdir()
    fake_data.make_image_folder(tmp_path / "more", n=2, size=12)
    for f in (tmp_path / "more" / "val").rglob("*.png"):
        f.rename(root / "val" / "zebra" / f.name)
    with pytest.raises(DataError, match=rf"{root / 'val'}/zebra: 1 class folder\(s\) of val/ the training split lacks"):
        folder_splits(str(root), image_size=12)


def test_a_16_bit_file_in_an_8_bit_set_is_refused_naming_it_or_skipped(tmp_path: Path) -> None:
    """A 0..65535 gradient read at data.bit_depth=8 would reach the model as 255 almost everywhere:
    one file is refused naming it and the key to set (or skipped with on_bad_image=skip), and a set
    that is 16-bit from its first file is refused before anything runs, whatever on_bad_image
    says, as make_shards.py refuses it."""
    import numpy as np
    from PIL import Image

    root = fake_data.make_image_folder(tmp_path / "images", n=6, size=12)
    deep = root / "train" / "class0" / "deep.png"
    Image.fromarray(np.linspace(0, 65535, 144, dtype=np.uint16).reshape(12, 12)).save(deep)
    assert Image.open(deep).mode.startswith("I;16")
    said = r"has more than 8 bits per channel \(PIL mode I;16\w?\) and data.bit_depth=8: set data.bit_depth=16"
    ds = FolderImageDataset(root / "train", 12, channels=1, on_bad_image="error")
    with pytest.raises(DataError, match=rf"image {deep} {said} to read its 16 bits; data.on_bad_image=skip skips"):
        [ds[i] for i in range(len(ds))]
    with pytest.raises(DataError, match=rf"data.verify=true: 1 of \d+ images cannot be read: {deep} \({said}"):
        folder_splits(str(root), image_size=12, channels=1, verify=True)
    ds = FolderImageDataset(root / "train", 12, channels=1, on_bad_image="skip")
    assert all(ds[i][0].dtype == torch.uint8 for i in range(len(ds))) and ds._skipped == {str(deep)}
    with pytest.raises(SystemExit):
        make_shards_cli.main([str(root), str(tmp_path / "shards"), "--channels", "1"])
    assert not (tmp_path / "shards").exists()
    first = sorted((root / "train" / "class0").iterdir())[0]
    deep.rename(first)
    for on_bad_image in ("error", "skip"):
        with pytest.raises(DataError, match=rf"image {first} {said}"):
            folder_splits(str(root), image_size=12, channels=1, on_bad_image=on_bad_image)
