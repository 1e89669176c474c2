"""Images streamed from shards (``data=shards``): data sets larger than RAM, at full resolution.

``scripts/make_shards.py`` writes a data set as chunk files of `litdata <https://github.com/Lightning-AI/litdata>`_
(chosen over webdataset and mosaicml-streaming by the comparison in BENCHMARKS.md): every image
keeps its original encoded bytes (a JPEG stays the same JPEG; in-memory sets such as CIFAR are
stored as lossless PNG), so its full resolution and aspect ratio. Layout of a shard root::

    ROOT/selfsup_shards.json   classes, channels, sample counts, every file's size and sha256
                                (written last: present = complete)
    ROOT/train/                 litdata chunks + index.json
    ROOT/val/                   the held-out split, the same way

Training streams ``ROOT/train`` (:class:`ShardStream`): litdata assigns chunks to DDP ranks and
DataLoader workers (each sample to exactly one rank per epoch), shuffles chunks and samples with
a seed and the epoch, and its loader's ``state_dict`` records how far each worker got, so a run
resumed from a mid-epoch checkpoint (``checkpoint_every_n_steps``) continues the same order with
no sample repeated or skipped (Lightning saves the loader's state in the checkpoint). Each image
is decoded at full resolution in the worker and cropped there to the view size by the view
maker's :meth:`~selfsup.augment.views.ViewPipeline.full_resolution_transform`; only the small
crops are batched and moved to the device. Memory does not grow with the data set: a worker
holds a chunk or two and the batches in flight.

Opening a shard root checks that every file is there with the size it was written with
(``data.verify=true`` also compares each file's sha256): a damaged or missing chunk is named, with
the command that rebuilds the root, before anything trains.

Evaluation (probes, kNN, RankMe) reads both splits by index (:class:`ShardImages`): each image
decoded and resized (shorter side) and centre-cropped to ``data.image_size``, pixel for pixel
what ``data=imagefolder`` gives for the same files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode, decode_image

from selfsup.data.base import ImageSplits
from selfsup.data.folder import DECODE_ERRORS, decode_reason
from selfsup.data.image_file import ARRAY_SUFFIXES, ImageFormat, as_tensor, read_image, square
from selfsup.errors import DataError, MissingFileError
from selfsup.optional import require

# Only data=shards and the scripts that write or time shards import this module; without litdata,
# one line naming the option and the package instead of an ImportError's traceback.
require("data=shards")
from litdata import StreamingDataLoader, StreamingDataset  # noqa: E402

# litdata reports its cache settings at INFO on every dataset it opens: a dozen lines per run.
logging.getLogger("litdata").setLevel(logging.WARNING)
# Lightning warns that an IterableDataset with __len__ may be inaccurate with several workers;
# litdata's __len__ is its per-rank count, which every worker split honours.
warnings.filterwarnings("ignore", message=r"Your `IterableDataset` has `__len__` defined")

META = "selfsup_shards.json"
FORMAT = 2  # 2: META lists every file with its size and sha256
HOW_TO_WRITE = "write shards with `python scripts/make_shards.py SOURCE ROOT`"


def read_meta(root: str | Path) -> dict[str, Any]:
    """The shard root's description; a one-line error if ``root`` is not a complete shard root."""
    path = Path(root) / META
    if not path.is_file():
        raise MissingFileError(f"data.path={root}: no {META} there (not a complete shard root); {HOW_TO_WRITE}")
    try:
        meta = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path} is damaged ({' '.join(str(e).split())}); {HOW_TO_WRITE} --force") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else None
        raise DataError(f"{path}: shard format {got!r}, this version reads {FORMAT}; {HOW_TO_WRITE} --force")
    return meta


def file_digest(path: Path) -> str:
    """sha256 of a file, read in 8 MB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 * 2**20):
            h.update(block)
    return h.hexdigest()


def check_files(root: Path, meta: dict[str, Any], verify: bool) -> None:
    """Every file META lists is there with its size (and, with ``verify``, its sha256); else a
    one-line :class:`DataError` naming the file and the command that rebuilds the root."""
    how = f"rebuild the shards: `python scripts/make_shards.py {meta.get('source', 'SOURCE')} {root} --force`"
    for rel, written in meta["files"].items():
        f = root / rel
        if not f.is_file():
            raise DataError(f"shard file {f} is missing; {how}")
        size = f.stat().st_size
        if size != written["bytes"]:
            raise DataError(f"shard file {f} is damaged ({size} bytes, {written['bytes']} were written); {how}")
        if verify and file_digest(f) != written["sha256"]:
            raise DataError(f"shard file {f} is damaged (its sha256 is not the one written); {how}")


def decode_full(data: bytes, fmt: ImageFormat, name: str) -> Tensor:
    """An encoded image at full resolution: (C, H, W) of the format's dtype. 8-bit grey and RGB
    JPEG, PNG, WEBP and GIF by torchvision (libjpeg-turbo, libpng); anything else (TIFF, DICOM,
    ``.npy``, 16 bits, other channel counts) by :func:`~selfsup.data.image_file.read_image`."""
    if fmt.classic and not name.lower().endswith(ARRAY_SUFFIXES):
        mode = ImageReadMode.GRAY if fmt.channels == 1 else ImageReadMode.RGB
        try:
            x = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=mode)
            if x.dtype == torch.uint8:  # torchvision decodes a 16-bit PNG to uint16: read_image refuses it
                return x
        except RuntimeError:
            pass  # a format torchvision does not decode (BMP, ...), or a damaged file: PIL says which
    try:
        return as_tensor(read_image(data, name, fmt))
    except DECODE_ERRORS as e:
        raise DataError(f"image {name} in the shards cannot be read ({decode_reason(e)})") from e


class ShardStream(StreamingDataset):
    """The training split, streamed: items ``(transform(image), label, index)``.

    Args:
        root: a split's folder of chunks (``ROOT/train``).
        fmt: the images' channels and bit depth.
        seed: shuffles chunks and samples (with the epoch); the run's seed.
        num_images: images in the split (the shard root's count).
        transform: per-sample transform of the full-resolution (C, H, W) image; set by the
            data module from the view maker (None: the decoded image itself).
    """

    def __init__(
        self,
        root: str | Path,
        fmt: ImageFormat,
        seed: int,
        num_images: int,
        transform: Callable[[Tensor], Any] | None = None,
    ) -> None:
        super().__init__(str(root), shuffle=True, seed=seed)
        self.root = Path(root)
        self.num_images = num_images
        self.format = fmt
        self.sample_transform = transform

    def __getitem__(self, index: Any) -> tuple[Any, Tensor, int]:
        item = super().__getitem__(index)
        image = decode_full(item["image"], self.format, f"{item['name']} ({self.root})")
        out = self.sample_transform(image) if self.sample_transform is not None else image
        return out, torch.tensor(item["label"]), item["index"]

    def loader(self, batch_size: int, num_workers: int, drop_last: bool) -> StreamingDataLoader:
        """litdata's loader over this split: resumable (``state_dict``), rank and worker aware."""
        return StreamingDataLoader(
            self,
            batch_size=batch_size,
            num_workers=num_workers,
            drop_last=drop_last,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=num_workers > 0,
        )


class ShardImages(Dataset):
    """A split read by index for evaluation: ``(image (C, size, size), label, index)``,
    resized (shorter side) and centre-cropped to ``size`` as ``data=imagefolder`` does.

    Args:
        root: a split's folder of chunks.
        size: side of the square images.
        fmt: the images' channels and bit depth.
    """

    def __init__(self, root: str | Path, size: int, fmt: ImageFormat) -> None:
        self.root = Path(root)
        self.size, self.format = size, fmt
        self._shards: StreamingDataset | None = None  # opened on first use, in the process that reads
        self._len = len(self._open())
        self._shards = None  # not carried into DataLoader workers

    def _open(self) -> StreamingDataset:
        if self._shards is None:
            self._shards = StreamingDataset(str(self.root), shuffle=False)
        return self._shards

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, int]:
        item = self._open()[i]
        try:
            x = square(read_image(item["image"], item["name"], self.format), self.size)
        except DECODE_ERRORS as e:
            raise DataError(f"image {item['name']} in {self.root} cannot be read ({decode_reason(e)})") from e
        return x, torch.tensor(item["label"]), int(item["index"])


def shard_splits(
    path: str, image_size: int, channels: int, seed: int = 0, verify: bool = False, bit_depth: int = 8
) -> ImageSplits:
    """``path/train`` streamed for pretraining; ``path/train`` and ``path/val`` by index for evaluation.

    Args:
        path: a shard root written by ``scripts/make_shards.py``.
        image_size: side of the evaluation images (resize shorter side, centre crop).
        channels: C; must match the shards' ``channels``.
        seed: the shuffle seed of the training stream.
        verify: also compare every file's sha256 with the one written (sizes are always compared).
        bit_depth: 8 or 16; must match the shards' ``bit_depth`` (8 where they do not say).
    """
    meta = read_meta(path)
    root = Path(path)
    check_files(root, meta, verify)
    if int(meta["channels"]) != channels:
        raise DataError(
            f"data.channels={channels}, but the shards in {path} hold {meta['channels']}-channel images; "
            f"set data.channels={meta['channels']}"
        )
    if int(meta.get("bit_depth", 8)) != bit_depth:
        raise DataError(
            f"data.bit_depth={bit_depth}, but the shards in {path} hold {meta.get('bit_depth', 8)}-bit images; "
            f"set data.bit_depth={meta.get('bit_depth', 8)}"
        )
    fmt = ImageFormat(channels, bit_depth, meta.get("dicom_window"))  # make_shards.py --dicom-window
    train = ShardStream(root / "train", fmt, seed, num_images=int(meta["samples"]["train"]))
    return ImageSplits(
        train=train,
        test=ShardImages(root / "val", image_size, fmt),
        num_classes=len(meta["classes"]),
        probe_train=ShardImages(root / "train", image_size, fmt),
    )
