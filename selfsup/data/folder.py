"""Images in folders, decoded lazily on the CPU: class folders (``ROOT/train/<class>/*.jpg``, with
``ROOT/val/<class>/`` or a seeded held-out slice of train), or any folder of images at any depth,
unlabelled (:func:`folder_splits`).

Files are decoded by :func:`selfsup.data.image_file.read_image` (PIL formats, TIFF, DICOM, ``.npy``)
at the declared channels and bit depth. A file that cannot be decoded (corrupt, truncated, not
an image) or that disagrees with them (another channel count or bit depth) is handled by
``on_bad_image``:

* ``"error"`` (default): reading it raises :class:`~selfsup.errors.DataError` naming the file and
  the options below (``train.py`` prints it as one ``error: ...`` line, also when the file is
  read in a DataLoader worker).
* ``"skip"``: the item at that index is the next readable file (index + 1, wrapping), so batches
  keep their size and an epoch its length; each file is logged once per process, with the count so
  far. Nothing is decoded up front, so a large data set starts at once; a skipped file's
  neighbour is seen twice per epoch.

``verify=True`` (:func:`folder_splits`) decodes every file before training, with a progress bar:
with ``"error"`` one DataError lists the unreadable files; with ``"skip"`` they are dropped from
the sample lists (and logged), so no substitution happens during training.
"""

from __future__ import annotations

import copy
import logging
import os
import sys
import typing
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
from annotated_types import Len
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset
from tqdm import tqdm

from selfsup.data.base import ImageSplits
from selfsup.data.image_file import IMAGE_EXTENSIONS, ImageFormat, ImageMismatch, check_image, read_image, square
from selfsup.errors import ConfigError, DataError, MissingFileError
from selfsup.schema import NonNegativeInt, OpenFraction

log = logging.getLogger(__name__)

OnBadImage = Literal["error", "skip"]
ON_BAD_IMAGE = typing.get_args(OnBadImage)
# What PIL raises for a file it cannot decode: not an image (UnidentifiedImageError, an OSError),
# truncated data (OSError), malformed chunks (SyntaxError, ValueError, EOFError), a pixel count
# above PIL's limit (DecompressionBombError).
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
HOW_TO = "data.on_bad_image=skip skips unreadable images, data.verify=true finds them all before training"
LISTED = 5  # unreadable files named in verify's error


def decode_reason(e: BaseException) -> str:
    """PIL's complaint on one line, without the path it repeats."""
    if isinstance(e, UnidentifiedImageError):
        return "cannot identify image file"
    return " ".join(str(e).split()) or type(e).__name__


def mismatch_error(path: str, e: ImageMismatch) -> DataError:
    """The one line for a file that disagrees with the declared format."""
    return DataError(f"image {path} {e}; data.on_bad_image=skip skips such files")


def check_first_of_each_class(datasets: list[FolderImageDataset]) -> None:
    """Check each class folder's first image before anything is written (its header alone for 8-bit
    grey and RGB data in a PIL format: :func:`~selfsup.data.image_file.check_image`): a set whose
    files are not the declared channels or bit depth (a 16-bit set read as 8-bit, say) is refused at
    once, whatever ``data.on_bad_image`` says. (Every image is checked again as it is decoded.)"""
    for ds in datasets:
        firsts: dict[int, str] = {}
        for path, label in ds.samples:
            firsts.setdefault(label, path)
        for path in firsts.values():
            try:
                check_image(path, path, ds.format)
            except ImageMismatch as e:
                raise mismatch_error(path, e) from None
            except DECODE_ERRORS:
                continue  # an unreadable file: data.on_bad_image decides, when it is read


def _check(path: str, fmt: ImageFormat) -> str | None:
    """None if ``path`` decodes to ``fmt``, else why not."""
    try:
        read_image(path, path, fmt)
    except ImageMismatch as e:
        return str(e)
    except DECODE_ERRORS as e:
        return decode_reason(e)
    return None


def _threads() -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(16, cpus))


class FolderImageDataset(Dataset):
    """``(image (C, size, size) uint8 or uint16, label, index)`` from ``root/<class>/<file>``.

    Classes are the sorted sub-folder names, as in torchvision's ImageFolder. Unreadable files
    are handled as the module docstring says: an error naming the file, or (``on_bad_image="skip"``)
    the next readable file in their place.

    Args:
        root: folder of class folders.
        size: side of the square every image is resized and centre-cropped to.
        channels: C, the channels of every image (1 grey, 3 RGB, or any other count).
        bit_depth: 8 (uint8 items) or 16 (uint16 items).
        dicom_window: ``(center, width)`` of DICOM files (:class:`~selfsup.data.image_file.ImageFormat`).
        classes: class names in label order; default: sorted sub-folders of ``root``.
        on_bad_image: ``"error"`` or ``"skip"``.
        labelled: ``False``: every image under ``root`` at any depth, in sorted path order, with
            label -1 (no class folders needed; ``scripts/embed.py``).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        size: int,
        channels: int = 3,
        classes: list[str] | None = None,
        on_bad_image: OnBadImage = "error",
        labelled: bool = True,
        bit_depth: int = 8,
        dicom_window: tuple[float, float] | None = None,
    ):
        if on_bad_image not in ON_BAD_IMAGE:
            raise ConfigError(f"data.on_bad_image={on_bad_image}; expected one of {'|'.join(ON_BAD_IMAGE)}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise MissingFileError(f"image folder {self.root} does not exist")
        self.classes = classes or sorted(p.name for p in self.root.iterdir() if p.is_dir())
        self.samples: list[tuple[str, int]] = []
        for label, c in enumerate(self.classes) if labelled else [(-1, "")]:
            found = []
            for dirpath, dirs, files in os.walk(self.root / c):
                dirs.sort()
                found += [os.path.join(dirpath, f) for f in files if f.lower().endswith(IMAGE_EXTENSIONS)]
            self.samples += [(path, label) for path in sorted(found)]
        if not self.samples:
            where = f"{self.root}/<class>/" if labelled else f"{self.root} (at any depth)"
            raise MissingFileError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {where}")
        self.size = size
        self.format = ImageFormat(channels, bit_depth, dicom_window)
        self.on_bad_image = on_bad_image
        self._skipped: set[str] = set()  # files found unreadable in this process (skip mode)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, int]:
        img, label = self._read(i)
        return square(img, self.size), torch.tensor(label), i

    def _read(self, i: int) -> tuple[Image.Image | np.ndarray, int]:
        """Sample ``i``'s image and label; with "skip", those of the next readable sample."""
        n = len(self.samples)
        for k in range(n):
            path, label = self.samples[(i + k) % n]
            if path in self._skipped:
                continue
            try:
                return read_image(path, path, self.format), label
            except DECODE_ERRORS as e:
                if self.on_bad_image == "error":
                    if isinstance(e, ImageMismatch):
                        raise mismatch_error(path, e) from None
                    raise DataError(f"image {path} cannot be read ({decode_reason(e)}); {HOW_TO}") from e
                self._skipped.add(path)
                log.warning(
                    "data.on_bad_image=skip: skipping unreadable image %s (%s); %d skipped so far in this process"
                    " (data.verify=true drops them before training)",
                    path,
                    decode_reason(e),
                    len(self._skipped),
                )
        raise DataError(f"no readable image under {self.root}: all {n} files failed to decode")

    def unreadable(self) -> list[tuple[str, str]]:
        """Decode every file (threads, with a progress bar); ``(path, reason)`` of those that fail."""
        paths = [p for p, _ in self.samples]
        bad: list[tuple[str, str]] = []
        # disable=None: no bar when stdout is not a terminal (a log file, a SLURM job).
        bar = tqdm(total=len(paths), desc=f"verifying {self.root}", unit="img", file=sys.stdout, disable=None)
        with bar, ThreadPoolExecutor(_threads()) as pool:
            for block in _blocks(paths, 512):
                for path, reason in zip(block, pool.map(lambda p: _check(p, self.format), block), strict=True):
                    if reason is not None:
                        bad.append((path, reason))
                bar.update(len(block))
        return bad

    def subset(self, positions: list[int]) -> FolderImageDataset:
        """The same dataset over ``samples[positions]`` only (sample indices renumbered from 0)."""
        part = copy.copy(self)
        part.samples = [self.samples[i] for i in positions]
        part._skipped = set()
        return part

    def drop(self, paths: set[str]) -> None:
        """Remove ``paths`` from the samples (indices are renumbered)."""
        self.samples = [s for s in self.samples if s[0] not in paths]
        if not self.samples:
            raise DataError(f"no readable image under {self.root}: every file failed to decode")


def _blocks(items: list[str], n: int) -> Iterator[list[str]]:
    for start in range(0, len(items), n):
        yield items[start : start + n]


def verify_images(datasets: list[FolderImageDataset], on_bad_image: OnBadImage) -> None:
    """Decode every file of ``datasets`` before training; fail on unreadable ones, or drop them.

    Args:
        datasets: the splits to check.
        on_bad_image: ``"error"``: one :class:`~selfsup.errors.DataError` with the count and the
            first few files; ``"skip"``: each unreadable file is logged and removed from its split.
    """
    total = sum(len(ds) for ds in datasets)
    found = [(ds, ds.unreadable()) for ds in datasets]
    bad = [b for _, bs in found for b in bs]
    if not bad:
        log.info("data.verify=true: all %d images decode", total)
        return
    if on_bad_image == "error":
        listed = ", ".join(f"{p} ({r})" for p, r in bad[:LISTED])
        more = f" and {len(bad) - LISTED} more" if len(bad) > LISTED else ""
        raise DataError(
            f"data.verify=true: {len(bad)} of {total} images cannot be read: {listed}{more}; "
            "remove them, or set data.on_bad_image=skip to train without them"
        )
    for ds, bs in found:
        for path, reason in bs:
            log.warning("data.on_bad_image=skip: dropping unreadable image %s (%s)", path, reason)
        ds.drop({p for p, _ in bs})
    log.warning(
        "data.verify=true: dropped %d of %d images that cannot be read (data.on_bad_image=skip)", len(bad), total
    )


def held_out_split(
    ds: FolderImageDataset, fraction: float, seed: int, stratify: bool
) -> tuple[FolderImageDataset, FolderImageDataset]:
    """``ds`` split in two by a seeded permutation: ``round(fraction * len)`` images held out (at least
    one, and one image left to train on), per class when ``stratify`` (each class at least one image
    in each part when it has two), the rest for training; each part in ``ds``'s order."""
    rng = np.random.default_rng(seed)
    groups: dict[int, list[int]] = {}
    for i, (_, label) in enumerate(ds.samples):
        groups.setdefault(label if stratify else 0, []).append(i)
    held: list[int] = []
    for members in groups.values():
        n = len(members)
        k = min(max(round(fraction * n), 1), n - 1) if n > 1 else 0
        held += [members[j] for j in rng.permutation(n)[:k]]
    if not held:
        raise DataError(f"{ds.root}: {len(ds)} image(s), too few to hold any out for evaluation (2 or more needed)")
    keep = set(held)
    return ds.subset([i for i in range(len(ds)) if i not in keep]), ds.subset(sorted(held))


def _kw(fmt: ImageFormat) -> dict[str, typing.Any]:
    """``fmt`` as FolderImageDataset's keyword arguments."""
    return {"channels": fmt.channels, "bit_depth": fmt.bit_depth, "dicom_window": fmt.dicom_window}


def _class_folders(folder: Path) -> bool:
    return folder.is_dir() and any(p.is_dir() for p in folder.iterdir())


def folder_splits(
    path: str,
    image_size: int,
    channels: int = 3,
    test_split: str = "auto",
    on_bad_image: OnBadImage = "error",
    verify: bool = False,
    eval_path: str | None = None,
    held_out_fraction: OpenFraction = 0.1,
    split_seed: NonNegativeInt = 0,
    bit_depth: Literal[8, 16] = 8,
    dicom_window: Annotated[Sequence[float], Len(2, 2)] | None = None,
) -> ImageSplits:
    """The training and held-out images of a folder, in the layout it has:

    - ``path/train/<class>/`` (class sub-folders under ``train/``): labelled, classes the sorted
      folder names; evaluated on ``path/val/<class>/`` (or ``test/``), or without one on a seeded,
      stratified ``held_out_fraction`` of train, which is then not trained on;
    - anything else (a flat folder, any depth of sub-folders, no ``train/``): every image found, at
      any depth, unlabelled (label -1, ``num_classes`` 0), with a seeded ``held_out_fraction`` held
      out for the label-free metrics. Sub-folders are not taken for classes: a folder of photos
      by date or camera is not labelled by them.

    ``eval_path`` names a labelled folder (the first layout) for the probes: its training images fit
    them and its held-out images score them; the images of ``path`` are then all trained on.

    Args:
        path: the data's folder.
        image_size: side of the stored square images.
        channels: C, the channels of every image.
        test_split: the labelled layout's evaluation sub-folder; "auto" takes ``val``, else ``test``,
            else the held-out slice.
        on_bad_image: ``"error"``: an unreadable image stops the run with a DataError naming it;
            ``"skip"``: it is skipped (see the module docstring).
        verify: decode every image now, before training (see :func:`verify_images`).
        eval_path: a labelled folder whose images fit and score the probes (None: ``path``'s own).
        held_out_fraction: the share of images held out where no evaluation folder exists.
        split_seed: the seed of that split (independent of the run's seed).
        bit_depth: 8 or 16 bits per value (:mod:`selfsup.data.image_file`).
        dicom_window: ``(center, width)`` of DICOM files' modality values, or None.
    """
    fmt = ImageFormat(channels, bit_depth, dicom_window)
    root = Path(path)
    if not root.is_dir():
        raise MissingFileError(f"image folder {root} does not exist")
    if not 0 < held_out_fraction < 1:
        raise ConfigError(f"data.held_out_fraction={held_out_fraction}; expected a share between 0 and 1")
    if _class_folders(root / "train"):
        splits = _labelled(root, image_size, fmt, test_split, on_bad_image, held_out_fraction, split_seed)
    else:
        everything = FolderImageDataset(root, image_size, on_bad_image=on_bad_image, labelled=False, **_kw(fmt))
        if eval_path is None:
            train, test = held_out_split(everything, held_out_fraction, split_seed, stratify=False)
            splits = ImageSplits(train, test, num_classes=0)
        else:
            splits = ImageSplits(everything, everything, num_classes=0)
    if eval_path is not None:
        ev = Path(eval_path)
        if not _class_folders(ev / "train"):
            raise MissingFileError(
                f"data.eval_path={ev}: the probes need labelled images, {ev}/train/<class>/ (and {ev}/val/<class>/ "
                "or a held-out slice of train); none found"
            )
        labelled = _labelled(ev, image_size, fmt, "auto", on_bad_image, held_out_fraction, split_seed)
        splits = ImageSplits(splits.train, labelled.test, labelled.num_classes, probe_train=labelled.train)
    datasets = [d for d in (splits.train, splits.test, splits.probe_train) if isinstance(d, FolderImageDataset)]
    datasets = list({id(d): d for d in datasets}.values())
    check_first_of_each_class(datasets)
    if verify:
        verify_images(datasets, on_bad_image)
    return splits


def _labelled(
    root: Path,
    image_size: int,
    fmt: ImageFormat,
    test_split: str,
    on_bad_image: OnBadImage,
    held_out_fraction: float,
    split_seed: int,
) -> ImageSplits:
    """``root/train/<class>/`` with ``root/<test_split>/<class>/`` or a stratified held-out slice."""
    if test_split == "auto":
        test_split = next((s for s in ("val", "test") if (root / s).is_dir()), "")
    elif not (root / test_split).is_dir():
        raise MissingFileError(f"image folder data needs {root}/{test_split}/<class>/ (test_split={test_split})")
    train = FolderImageDataset(root / "train", image_size, on_bad_image=on_bad_image, **_kw(fmt))
    if not test_split:
        train, test = held_out_split(train, held_out_fraction, split_seed, stratify=True)
        return ImageSplits(train, test, num_classes=len(train.classes))
    extra = sorted(p.name for p in (root / test_split).iterdir() if p.is_dir() and p.name not in train.classes)
    if extra:
        raise DataError(
            f"{root / test_split}/{extra[0]}: {len(extra)} class folder(s) of {test_split}/ the training split lacks "
            f"({', '.join(extra[:5])}); the probes score {test_split}/ with train/'s classes: remove them, or add "
            f"{root}/train/{extra[0]}/"
        )
    test = FolderImageDataset(
        root / test_split, image_size, classes=train.classes, on_bad_image=on_bad_image, **_kw(fmt)
    )
    return ImageSplits(train, test, num_classes=len(train.classes))
