#!/usr/bin/env python
"""Streaming data, measured: which library, and how fast our data path is.

    .venv-bench/bin/python scripts/bench_data.py libraries [--images 2000] [--workers 2]
    python scripts/bench_data.py throughput [--images 2000] [--workers 2]

Both generate the same seeded set of full-resolution JPEGs first (ImageNet-like: 500x375 and
375x500, smooth content plus noise, quality 90; about 60 KB each), in a temporary folder.

``libraries`` (needs webdataset and mosaicml-streaming: ``make bench-env``): the set written as
shards by webdataset (tar), litdata (its chunks, as ``scripts/make_shards.py`` writes them) and
mosaicml-streaming (MDS), keeping each file's bytes; then one shuffled epoch read back through
each library's own loader with ``--workers`` DataLoader workers, every image's bytes decoded
(torchvision ``decode_jpeg``) so the rate is what training would see. Rows: write time, size on
disk, images/s of the epoch after its first batch; the features that matter for training are in BENCHMARKS.md.

``throughput``: images/s of the data path a training step waits for, each image decoded and made
into two views' crops at 224 px, over ``--workers`` workers: ``data=shards`` (full-resolution
decode, crops drawn on the full image in the workers: :class:`selfsup.augment.sample_crops.SampleCrops`),
torchvision's ImageFolder with per-sample RandomResizedCrop on PIL images (the usual recipe), and
``data=imagefolder`` (decode, resize to a 256 centre square, then the batched crops).
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def make_jpegs(root: Path, n: int, seed: int = 0) -> Path:
    """``n`` JPEGs in ``root/train/c<k>/`` (10 classes) and 10 in ``root/val/``."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", n), ("val", 10)):
        for i in range(count):
            w, h = (500, 375) if i % 2 == 0 else (375, 500)
            small = rng.integers(0, 255, (h // 16, w // 16, 3), dtype=np.uint8)
            img = np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)).astype(np.int16)
            img = np.clip(img + rng.integers(-12, 12, img.shape), 0, 255).astype(np.uint8)
            d = root / split / f"c{i % 10}"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(d / f"{i:06d}.jpg", quality=90)
    return root


def _files(root: Path) -> list[tuple[Path, int]]:
    classes = sorted(p.name for p in (root / "train").iterdir())
    return [(p, classes.index(p.parent.name)) for p in sorted((root / "train").glob("*/*.jpg"))]


def _decode(data: bytes) -> torch.Tensor:
    from torchvision.io import decode_jpeg

    return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8))


def _rate(batches: Iterable[Any], count: Callable[[Any], int]) -> float:
    """Items per second after the first batch (worker start-up, which litdata's loader pays by
    spawning its workers, is a once-per-run cost, not a rate)."""
    it = iter(batches)
    count(next(it))
    start, n = time.perf_counter(), 0
    for b in it:
        n += count(b)
    return n / (time.perf_counter() - start)


def _size(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


# --- libraries -----------------------------------------------------------------------------------


def _webdataset(files: list[tuple[Path, int]], out: Path, workers: int) -> tuple[float, float]:
    import webdataset as wds

    out.mkdir()
    t = time.perf_counter()
    with wds.ShardWriter(str(out / "shard-%06d.tar"), maxsize=64 * 2**20, verbose=0) as w:
        for i, (path, label) in enumerate(files):
            w.write({"__key__": f"{i:08d}", "jpg": path.read_bytes(), "cls": label})
    written = time.perf_counter() - t
    urls = sorted(str(p) for p in out.glob("*.tar"))
    ds = (
        wds.WebDataset(urls, shardshuffle=len(urls), nodesplitter=wds.split_by_node, seed=0)
        .shuffle(1000)
        .map(lambda s: _decode(s["jpg"]).shape[0])
    )
    loader = wds.WebLoader(ds, batch_size=None, num_workers=min(workers, len(urls)))
    return written, _rate(loader, lambda b: 1)


def _litdata(files: list[tuple[Path, int]], out: Path, workers: int) -> tuple[float, float]:
    from litdata import StreamingDataLoader, StreamingDataset
    from litdata.streaming.writer import BinaryWriter

    t = time.perf_counter()
    writer = BinaryWriter(str(out), chunk_bytes=64 * 2**20)
    for i, (path, label) in enumerate(files):
        writer[i] = {"index": i, "label": label, "image": path.read_bytes()}
    writer.done()
    writer.merge()
    written = time.perf_counter() - t

    class Decoded(StreamingDataset):
        def __getitem__(self, index: Any) -> int:
            return int(_decode(super().__getitem__(index)["image"]).shape[0])

    loader = StreamingDataLoader(Decoded(str(out), shuffle=True, seed=0), batch_size=32, num_workers=workers)
    return written, _rate(loader, len)


def _mosaic(files: list[tuple[Path, int]], out: Path, workers: int) -> tuple[float, float]:
    from streaming import MDSWriter, StreamingDataset

    t = time.perf_counter()
    with MDSWriter(out=str(out), columns={"image": "bytes", "label": "int"}, size_limit=64 * 2**20) as w:
        for path, label in files:
            w.write({"image": path.read_bytes(), "label": label})
    written = time.perf_counter() - t

    class Decoded(StreamingDataset):
        def __getitem__(self, index: int) -> int:
            return int(_decode(super().__getitem__(index)["image"]).shape[0])

    ds = Decoded(local=str(out), shuffle=True, shuffle_seed=0, batch_size=32)
    loader: torch.utils.data.DataLoader[Any] = torch.utils.data.DataLoader(ds, batch_size=32, num_workers=workers)
    return written, _rate(loader, len)


def bench_libraries(images: int, workers: int) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        src = make_jpegs(Path(tmp) / "jpegs", images)
        files = _files(src)
        raw = sum(p.stat().st_size for p, _ in files) / 2**20
        lines = [
            f"| library | write s | size MB (files: {raw:.0f}) | epoch images/s |  ({images} JPEGs, {workers} workers)",
            "|---|---:|---:|---:|",
        ]
        for name, fn in (("webdataset", _webdataset), ("litdata", _litdata), ("mosaicml-streaming", _mosaic)):
            out = Path(tmp) / name
            written, rate = fn(files, out, workers)
            lines.append(f"| {name} | {written:.1f} | {_size(out):.0f} | {rate:,.0f} |")
            shutil.rmtree(out)
    return lines


# --- throughput ----------------------------------------------------------------------------------


def bench_throughput(images: int, workers: int) -> list[str]:
    from torchvision import datasets
    from torchvision.transforms import v2

    from selfsup.augment.views import ViewMaker
    from selfsup.data.folder import folder_splits
    from selfsup.data.shards import ShardStream, shard_splits

    spec = importlib.util.spec_from_file_location("make_shards", ROOT / "scripts" / "make_shards.py")
    assert spec is not None and spec.loader is not None
    shards_script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shards_script)

    # Crops only, in every row (no colour ops): 2 views of 224 px, the SimCLR crop scale.
    vm = ViewMaker(views=2, size=224, flip_p=0.0, jitter_p=0.0, grayscale_p=0.0)
    batch = 64
    with tempfile.TemporaryDirectory() as tmp:
        src = make_jpegs(Path(tmp) / "jpegs", images)
        shards_script.main([str(src), str(Path(tmp) / "shards")])
        rows: list[tuple[str, float]] = []
        # torchvision: ImageFolder + two RandomResizedCrop views per image on PIL, in the workers
        crop = v2.Compose([v2.RandomResizedCrop(224, antialias=True), v2.PILToTensor()])
        tv = datasets.ImageFolder(str(src / "train"), transform=lambda img: (crop(img), crop(img)))
        loader = torch.utils.data.DataLoader(tv, batch_size=batch, num_workers=workers, shuffle=True)
        rows.append(("torchvision ImageFolder, per-sample RandomResizedCrop (PIL)", _rate(loader, lambda b: len(b[1]))))
        # data=shards: full-resolution decode, crops drawn on the full image, in the workers
        train = shard_splits(str(Path(tmp) / "shards"), image_size=256, channels=3).train
        assert isinstance(train, ShardStream)
        train.sample_transform = vm.full_resolution_transform()
        rows.append(("data=shards (litdata)", _rate(train.loader(batch, workers, False), lambda b: len(b[2]))))
        # data=imagefolder: decode + 256 centre square in the workers, crops batched afterwards
        folder = folder_splits(str(src), image_size=256).train
        loader = torch.utils.data.DataLoader(folder, batch_size=batch, num_workers=workers, shuffle=True)
        made = (vm(b[0]).groups[0].shape[0] // 2 for b in loader)
        rows.append(("data=imagefolder (256 centre square) + batched crops", _rate(made, lambda n: n)))
    lines = [
        f"| data path | images/s | images/s per worker |  ({images} JPEGs 500x375, 2 views of 224 px, "
        f"{workers} workers)",
        "|---|---:|---:|",
    ]
    for name, rate in rows:
        lines.append(f"| {name} | {rate:,.0f} | {rate / max(1, workers):,.0f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["libraries", "throughput"])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    bench = {"libraries": bench_libraries, "throughput": bench_throughput}[args.what]
    print("\n".join(bench(args.images, args.workers)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
