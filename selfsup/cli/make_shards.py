"""Write a data set as shards for ``data=shards`` (streamed, full resolution, beyond RAM).

    python scripts/make_shards.py /data/imagenet shards/imagenet      # an image folder
    python scripts/make_shards.py data=cifar10 shards/cifar10 data.root=data/cifar10

An image folder is read as ``data=imagefolder`` reads it (selfsup/data/folder.py): with
``SOURCE/train/<class>/*`` labelled by its class folders (sorted names, as torchvision's
ImageFolder) and held out from ``SOURCE/val/<class>/*`` (or ``test/``, or a seeded, stratified
``--held-out-fraction`` of train); in any other layout every image at any depth, unlabelled (label
-1, no classes), with a seeded ``--held-out-fraction`` held out. Every file's bytes are stored as
they are (a JPEG stays the same JPEG, at its full resolution and aspect ratio), in sorted path
order. ``data=NAME`` shards one of the configured
in-memory sets (cifar10, cifar100, stl10, fashion_mnist, digits; ``data.*`` overrides after OUT
as for train.py): each image is stored as a lossless PNG, so it reads back pixel for pixel.

OUT gets ``train/`` and ``val/`` (litdata chunks of ``--chunk-mb`` MB) and ``selfsup_shards.json``
(classes, channels, bit depth, counts). Files of any format ``data=imagefolder`` reads (TIFF, DICOM,
``.npy``, 16-bit PNG; ``--channels``, ``--bit-depth``, ``--dicom-window`` as ``data.*``) are stored
as their own bytes too, each decoded once here to check it. Everything is written under a temporary
name beside OUT and swapped in whole at the end (selfsup/owned_dir.py): OUT is the old complete set
or the new one, never a mix, and what a killed run left beside it is removed by the next one. An
existing OUT is refused; ``--force`` replaces it if selfsup wrote it (it holds ``.selfsup``), never
another folder.
Then: ``python train.py data=shards data.path=OUT``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

SPLITS = ("train", "val")


def _folder_items(
    source: Path, fmt: Any, held_out_fraction: float, split_seed: int
) -> tuple[dict[str, Iterator[dict[str, Any]]], list[str], dict[str, int]]:
    from selfsup.data.folder import DECODE_ERRORS, FolderImageDataset, folder_splits, mismatch_error
    from selfsup.data.image_file import ImageMismatch, check_image

    splits = folder_splits(
        str(source),
        image_size=1,
        channels=fmt.channels,
        held_out_fraction=held_out_fraction,
        split_seed=split_seed,
        bit_depth=fmt.bit_depth,
        dicom_window=fmt.dicom_window,
    )
    train, val = splits.train, splits.test
    assert isinstance(train, FolderImageDataset) and isinstance(val, FolderImageDataset)
    classes = train.classes if splits.num_classes else []

    def read(path: str) -> bytes:
        """The file's own bytes, once decoded here: a file of other channels or bit depth is refused now."""
        data = Path(path).read_bytes()
        try:
            check_image(data, path, fmt)
        except ImageMismatch as e:
            raise mismatch_error(path, e) from None
        except DECODE_ERRORS:
            pass  # unreadable: data.on_bad_image decides when it is read
        return data

    def items(ds: FolderImageDataset) -> Iterator[dict[str, Any]]:
        with ThreadPoolExecutor(8) as pool:  # file reads overlap; order kept
            contents = pool.map(lambda s: read(s[0]), ds.samples)
            for i, ((path, label), data) in enumerate(zip(ds.samples, contents, strict=True)):
                yield {"index": i, "label": label, "name": os.path.relpath(path, source), "image": data}

    return {"train": items(train), "val": items(val)}, classes, {"train": len(train), "val": len(val)}


def _config_items(
    data: str, overrides: list[str]
) -> tuple[dict[str, Iterator[dict[str, Any]]], list[str], dict[str, int], int]:
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from hydra.utils import instantiate
    from PIL import Image

    from selfsup import CONFIG_DIR
    from selfsup.errors import ConfigError
    from selfsup.schema_check import check_schema

    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(config_name="train", overrides=[data, *overrides])
    except HydraException as e:  # an unknown option or key, a malformed override: Hydra's first line
        raise ConfigError(f"{' '.join([data, *overrides])}: {str(e).strip().splitlines()[0]}") from None
    check_schema(cfg)  # the types and ranges train.py checks, in the same words
    splits = instantiate(cfg.data.splits)()

    def items(ds: Any, split: str) -> Iterator[dict[str, Any]]:
        for i in range(len(ds)):
            image, label, _ = ds[i]
            arr = image.numpy()
            arr = arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, format="PNG")
            yield {"index": i, "label": int(label), "name": f"{split}/{i:07d}.png", "image": buf.getvalue()}

    classes = [str(c) for c in range(splits.num_classes)]
    return (
        {"train": items(splits.train, "train"), "val": items(splits.test, "val")},
        classes,
        {"train": len(splits.train), "val": len(splits.test)},
        int(cfg.data.channels),
    )


def _write(items: Iterable[dict[str, Any]], out: Path, chunk_bytes: int, total: int, split: str) -> None:
    from litdata.streaming.writer import BinaryWriter
    from tqdm import tqdm

    writer = BinaryWriter(str(out), chunk_bytes=chunk_bytes)
    for item in tqdm(items, total=total, desc=f"{split} -> {out}", unit="img", file=sys.stdout, disable=None):
        writer[item["index"]] = item
    writer.done()
    writer.merge()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", help="an image folder (any layout; SOURCE/train/<class>/ for classes) or data=NAME")
    ap.add_argument("out", type=Path, help="the shard root to write")
    ap.add_argument("overrides", nargs="*", help="data.* overrides for data=NAME (as for train.py)")
    ap.add_argument("--channels", type=int, default=3, help="image folders: C, 1 grey, 3 RGB or any count")
    ap.add_argument("--bit-depth", type=int, choices=(8, 16), default=8, help="image folders: bits per value")
    ap.add_argument(
        "--dicom-window", type=float, nargs=2, metavar=("CENTER", "WIDTH"), help="DICOM files: the window applied"
    )
    ap.add_argument(
        "--held-out-fraction", type=float, default=0.1, help="image folders without val/ or test/: the share held out"
    )
    ap.add_argument("--split-seed", type=int, default=0, help="the seed of that split")
    ap.add_argument("--chunk-mb", type=float, default=64.0, help="chunk file size in MB")
    ap.add_argument("--force", action="store_true", help="replace OUT if it exists (only shards selfsup wrote)")
    args = ap.parse_args(argv)

    from selfsup.errors import ConfigError, user_errors_as_one_line
    from selfsup.optional import require
    from selfsup.owned_dir import check_replaceable, replacing

    with user_errors_as_one_line():
        require("data=shards")  # litdata writes the chunks; without it, one line naming the package
    from selfsup.data.image_file import ImageFormat
    from selfsup.data.shards import FORMAT, META, file_digest

    with user_errors_as_one_line():
        if not args.chunk_mb > 0:
            raise ConfigError(f"--chunk-mb {args.chunk_mb}: must be greater than 0 (the chunk file size in MB)")
        check_replaceable(args.out, args.force)
        if args.source.startswith("data="):
            streams, classes, counts, channels = _config_items(args.source, args.overrides)
            fmt = ImageFormat(channels)
        else:
            if args.overrides:
                raise ConfigError(f"overrides {args.overrides} apply to data=NAME only, not to an image folder")
            try:
                fmt = ImageFormat(args.channels, args.bit_depth, args.dicom_window)
            except ValueError as e:
                raise ConfigError(str(e).replace("data.", "--").replace("_", "-")) from None
            streams, classes, counts = _folder_items(Path(args.source), fmt, args.held_out_fraction, args.split_seed)
        with replacing(args.out, "shards") as partial:
            for split in SPLITS:
                _write(streams[split], partial / split, int(args.chunk_mb * 2**20), counts[split], split)
            meta = {"format": FORMAT, "classes": classes, "channels": fmt.channels, "samples": counts}
            meta["bit_depth"] = fmt.bit_depth
            if fmt.dicom_window is not None:
                meta["dicom_window"] = list(fmt.dicom_window)
            meta["source"] = args.source
            written = sorted(f for split in SPLITS for f in (partial / split).rglob("*") if f.is_file())
            meta["files"] = {
                f.relative_to(partial).as_posix(): {"bytes": f.stat().st_size, "sha256": file_digest(f)}
                for f in written
            }
            (partial / META).write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {counts['train']} + {counts['val']} images to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
