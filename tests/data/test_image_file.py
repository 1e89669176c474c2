"""Reading files beyond 8-bit RGB (selfsup/data/image_file.py): .npy, TIFF, 16-bit PNG and DICOM at
their channels and bit depth, through data=imagefolder, make_shards.py + data=shards and the view
maker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from selfsup.augment import ViewMaker
from selfsup.cli import make_shards, make_spectral
from selfsup.data.folder import FolderImageDataset, folder_splits
from selfsup.data.image_file import ImageFormat, ImageMismatch, read_image, square
from selfsup.data.shards import shard_splits
from selfsup.errors import DataError


def test_a_16_bit_png_keeps_values_that_8_bits_would_merge(tmp_path: Path) -> None:
    """1000 and 1010 are both 3 in 8 bits (>> 8); at data.bit_depth=16 they reach the model apart."""
    grey = np.full((8, 8), 1000, dtype=np.uint16)
    grey[:, 4:] = 1010
    (tmp_path / "a").mkdir()
    Image.fromarray(grey).save(tmp_path / "a" / "x.png")
    assert (1000 >> 8) == (1010 >> 8)
    ds = FolderImageDataset(tmp_path, 8, channels=1, bit_depth=16, labelled=False)
    x = ds[0][0]
    assert x.dtype == torch.uint16 and set(x.unique().tolist()) == {1000, 1010}
    floats = ViewMaker(size=8, bit_depth=16).prepare(x[None])  # mean 0.5, std 0.5: (v / 65535 - 0.5) / 0.5
    left, right = floats[0, 0, 0, 0].item(), floats[0, 0, 0, 7].item()
    assert right - left == pytest.approx(2 * 10 / 65535, rel=1e-4)


def test_arrays_are_read_channels_last_or_first_at_their_dtype(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    cube = rng.integers(0, 65536, (5, 6, 7), dtype=np.uint16)  # (C, H, W)
    fmt = ImageFormat(channels=5, bit_depth=16)
    np.save(tmp_path / "first.npy", cube)
    np.save(tmp_path / "last.npy", cube.transpose(1, 2, 0))
    tifffile.imwrite(tmp_path / "planar.tif", cube, photometric="minisblack", planarconfig="separate")
    tifffile.imwrite(tmp_path / "pages.tif", cube)  # a multi-page TIFF, a band a page
    for name in ("first.npy", "last.npy", "planar.tif", "pages.tif"):
        got = read_image(tmp_path / name, name, fmt)
        assert got.dtype == np.uint16 and np.array_equal(got, cube), name
    from_bytes = read_image((tmp_path / "planar.tif").read_bytes(), "planar.tif", fmt)  # a shard's bytes
    assert np.array_equal(from_bytes, cube)


@pytest.mark.parametrize(
    ("array", "fmt", "said"),
    [
        (np.zeros((4, 6, 6), np.uint16), ImageFormat(5, 16), r"has shape \(4, 6, 6\) and data.channels=5: expected"),
        (np.zeros((6, 6), np.uint16), ImageFormat(5, 16), "has 1 channel and data.channels=5"),
        (
            np.zeros((5, 6, 6), np.uint8),
            ImageFormat(5, 16),
            "holds uint8 values and data.bit_depth=16 reads uint16: set",
        ),
        (
            np.zeros((5, 6, 6), np.uint16),
            ImageFormat(5, 8),
            "holds uint16 values and data.bit_depth=8 reads uint8: set",
        ),
        (np.zeros((5, 6, 6), np.float32), ImageFormat(5, 16), "holds float32 values and data.bit_depth=16 reads"),
    ],
)
def test_a_file_that_disagrees_is_refused_saying_what_it_has(
    tmp_path: Path, array: np.ndarray, fmt: ImageFormat, said: str
) -> None:
    np.save(tmp_path / "x.npy", array)
    with pytest.raises(ImageMismatch, match=said):
        read_image(tmp_path / "x.npy", "x.npy", fmt)


def test_a_mismatched_file_in_a_folder_is_one_line_or_skipped(tmp_path: Path) -> None:
    root = tmp_path / "cubes"
    root.mkdir()
    for i in range(4):
        np.save(root / f"{i}.npy", np.full((6, 6, 5), i, np.uint16))
    np.save(root / "3.npy", np.zeros((6, 6, 4), np.uint16))  # the odd one out, not the first
    ds = FolderImageDataset(root, 6, channels=5, bit_depth=16, labelled=False)
    with pytest.raises(DataError, match=rf"image {root / '3.npy'} has shape \(6, 6, 4\) and data.channels=5"):
        ds[3]
    skip = FolderImageDataset(root, 6, channels=5, bit_depth=16, labelled=False, on_bad_image="skip")
    assert int(skip[3][0][0, 0, 0]) == 0  # the next readable file (wrapping) in its place


def test_arrays_are_resized_and_centre_cropped_in_their_dtype() -> None:
    x = np.full((3, 10, 20), 40000, np.uint16)
    x[:, :, 10:] = 20000
    out = square(x, 5)
    assert out.shape == (3, 5, 5) and out.dtype == torch.uint16
    assert int(out.int().min()) >= 20000 and int(out.int().max()) <= 40000


def test_dicom_reads_modality_values_or_a_window() -> None:
    pydicom = pytest.importorskip("pydicom", reason="pydicom (selfsup[dicom]) reads DICOM")
    from pydicom.data import get_testdata_file

    mr, ct = get_testdata_file("MR_small.dcm", download=False), get_testdata_file("CT_small.dcm", download=False)
    assert mr is not None and ct is not None, "pydicom's wheel ships MR_small.dcm and CT_small.dcm"
    stored = pydicom.dcmread(mr).pixel_array
    got = read_image(mr, "MR_small.dcm", ImageFormat(1, 16))
    assert got.shape == (1, *stored.shape) and np.array_equal(got[0], stored)
    with pytest.raises(
        ImageMismatch, match=r"has modality values -896..1167 \(after its rescale slope and intercept\)"
    ):
        read_image(ct, "CT_small.dcm", ImageFormat(1, 16))
    hu = stored_ct = pydicom.dcmread(ct).pixel_array.astype(float) - 1024  # slope 1, intercept -1024
    windowed = read_image(ct, "CT_small.dcm", ImageFormat(1, 16, (40.0, 400.0)))[0]
    expected = np.clip(np.round((hu - (40 - 200)) / 400 * 65535), 0, 65535)
    assert np.array_equal(windowed, expected.astype(np.uint16)) and stored_ct.shape == windowed.shape


def test_a_file_that_is_not_dicom_is_unreadable_named(tmp_path: Path) -> None:
    pytest.importorskip("pydicom", reason="pydicom (selfsup[dicom]) reads DICOM")
    (tmp_path / "scan.dcm").write_bytes(b"not a dicom file")
    ds = FolderImageDataset(tmp_path, 8, channels=1, bit_depth=16, labelled=False)
    with pytest.raises(DataError, match=rf"image {tmp_path / 'scan.dcm'} cannot be read \(not a DICOM file"):
        ds[0]


def test_the_generated_spectral_set_reads_and_shards_back_the_same(tmp_path: Path) -> None:
    """make_spectral.py's 13-band 16-bit TIFFs through data=imagefolder, and through make_shards.py
    (--channels 13 --bit-depth 16) + data=shards: the same images, at 16 bits."""
    pytest.importorskip("litdata", reason="make_shards.py writes litdata chunks (selfsup[shards])")
    src = tmp_path / "spectral"
    assert make_spectral.main([str(src), "--train", "3", "--val", "2", "--size", "12"]) == 0
    splits = folder_splits(str(src), image_size=12, channels=13, bit_depth=16)
    assert splits.num_classes == 4 and len(splits.train) == 12 and len(splits.test) == 8  # type: ignore[arg-type]
    x = splits.train[0][0]
    assert x.shape == (13, 12, 12) and x.dtype == torch.uint16 and int(x.int().max()) > 255
    out = tmp_path / "shards"
    assert make_shards.main([str(src), str(out), "--channels", "13", "--bit-depth", "16"]) == 0
    shards = shard_splits(str(out), image_size=12, channels=13, bit_depth=16)
    assert torch.equal(shards.test[0][0], splits.test[0][0])
    with pytest.raises(
        DataError, match="data.bit_depth=8, but the shards in .* hold 16-bit images; set data.bit_depth=16"
    ):
        shard_splits(str(out), image_size=12, channels=13)
    with pytest.raises(SystemExit):  # an 8-bit reading of the 16-bit files: refused, nothing written
        make_shards.main([str(src), str(tmp_path / "eight"), "--channels", "13"])
    assert not (tmp_path / "eight").exists()
