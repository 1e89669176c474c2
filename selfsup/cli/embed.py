"""Embed a folder of images with the encoder of a trained run.

    python scripts/embed.py RUN_DIR --images DIR --out embeddings.parquet
    python scripts/embed.py RUN_DIR/checkpoints/last.ckpt --images DIR --out embeddings.npy

Every image under DIR (at any depth; .jpg .png .bmp .webp ... .tif .dcm .npy), in sorted path order,
is read as the run's data was (selfsup/data/image_file.py: its channels and bit depth, DICOM with
its window): converted to the run's channels (8-bit grey and colour), the shorter side resized and
the centre square cropped to data.image_size, then resized to the view size and normalised as the
evaluation does (data.normalize=auto: with the statistics the run measured). So an image of the
run's own data gets exactly the features the linear probe and kNN saw. Batched on --device (default:
a GPU if there is one), with a progress bar.

Output:
- .parquet: columns `path` (relative to DIR) and `embedding` (fixed-size list of float32);
- .npy: a float32 array (images, features), and the paths in row order beside it in
  FILE.paths.txt (one per line, relative to DIR).
Each file is written whole (to a temporary name, then renamed).

The images must have the encoder's channels (data.channels: grey or colour), judged by the first
image (PIL modes 1, L, LA, I, F are grey; the rest colour): colour photos given to a grey encoder
(or grey images to a colour one) are refused in one line naming both, unless --convert asks for
every image to be converted to the encoder's channels, which the output then says. A first image
more than 4x larger or smaller (in its shorter side) than data.image_size prints a warning naming
both sizes: every image is scaled to that size, so the objects in it may be far off the scale the
encoder was trained on.

--projector embeds with the projection head on top (the space the loss saw) instead of the
backbone features. --skip-bad leaves out images that cannot be decoded (each is logged), after
checking every file first; without it, the first such image stops the script in one line.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omegaconf import DictConfig

FORMATS = (".parquet", ".npy")
# PIL modes of one (grey) channel; every other mode (RGB, RGBA, P, CMYK, ...) is colour.
GREY_MODES = ("1", "L", "LA", "La", "I", "F")
KIND = {1: "grey", 3: "colour"}
SCALE_WARNING = 4  # a first image this many times larger or smaller than data.image_size is remarked on


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path, help="a run directory, or a .ckpt inside RUN_DIR/checkpoints/")
    ap.add_argument("--images", type=Path, required=True, help="folder of images (searched at any depth)")
    ap.add_argument(
        "--out", type=Path, help="embeddings.parquet or embeddings.npy (default RUN_DIR/embeddings.parquet)"
    )
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes decoding images")
    ap.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu, cuda, cuda:1, ...")
    ap.add_argument("--projector", action="store_true", help="embed with the projection head on top")
    ap.add_argument("--skip-bad", action="store_true", help="leave out images that cannot be decoded")
    ap.add_argument(
        "--convert", action="store_true", help="convert images of other channels (grey, colour) to the encoder's"
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from selfsup.build import load_trained, resolve_device
    from selfsup.data.folder import FolderImageDataset
    from selfsup.errors import ConfigError, DataError, MissingFileError, user_errors_as_one_line
    from selfsup.eval.features import extract_features
    from selfsup.run_dir import trained_run

    with user_errors_as_one_line():
        if args.out is not None and args.out.suffix not in FORMATS:
            raise ConfigError(f"--out {args.out}: expected a file ending in {' or '.join(FORMATS)}")
        if args.batch_size < 1 or args.num_workers < 0:
            raise ConfigError(f"--batch-size {args.batch_size} / --num-workers {args.num_workers}: need >= 1 / >= 0")
        if not args.images.is_dir():
            raise MissingFileError(f"--images {args.images}: no such folder")
        run_dir, ckpt, cfg = trained_run(args.source)
        dest = args.out or run_dir / "embeddings.parquet"
        ds = FolderImageDataset(
            args.images,
            int(cfg.data.image_size),
            int(cfg.data.channels),
            labelled=False,
            bit_depth=int(cfg.data.get("bit_depth", 8)),
            dicom_window=cfg.data.get("dicom_window"),
        )
        converted = check_images([p for p, _ in ds.samples], run_dir, cfg, args.convert)
        if args.skip_bad:
            bad = ds.unreadable()
            for path, reason in bad:
                logging.warning("--skip-bad: leaving out %s (%s)", path, reason)
            ds.drop({p for p, _ in bad})
            if bad:
                logging.warning("--skip-bad: %d of %d images left out", len(bad), len(bad) + len(ds))
        device = resolve_device(args.device)
        module = load_trained(cfg, ckpt).to(device)
        loader = DataLoader(ds, batch_size=args.batch_size, num_workers=args.num_workers, shuffle=False)
        # disable=None: no bar when stderr is not a terminal (a log file, a SLURM job).
        bar = tqdm(loader, desc=f"embedding {args.images}", unit="batch", disable=None)
        try:
            out = extract_features(
                module.eval_encoder,
                bar,  # type: ignore[arg-type]  # iterates the loader's batches
                module.view_maker.prepare,
                head=module.eval_head if args.projector else None,
                device=device,
            )
        except DataError as e:  # the data-set option it names is train.py's; here it is --skip-bad
            raise DataError(str(e).split("; ")[0] + "; --skip-bad leaves unreadable images out") from None
        emb = (out["z"] if args.projector else out["h"]).numpy()
        paths = [Path(ds.samples[int(i)][0]).relative_to(args.images).as_posix() for i in out["index"]]
        write(dest, paths, emb)
    print(f"embedded {len(paths)} images ({emb.shape[1]} features each{converted}, {ckpt}) to {dest}")
    return 0


def mode_channels(mode: str) -> int:
    """1 for a grey PIL mode, 3 for a colour one."""
    return 1 if mode in GREY_MODES or mode.startswith("I;") else 3


def check_images(paths: list[str], run_dir: Path, cfg: DictConfig, convert: bool) -> str:
    """Refuse images of other channels than the run's (unless ``convert``), and warn about images
    of a very different size, judged by the first image of ``paths`` PIL can open (its header
    only). Returns what the final line adds: ``", converted from colour to grey"`` or ``""``."""
    from PIL import Image

    from selfsup.data.folder import DECODE_ERRORS
    from selfsup.data.image_file import ARRAY_SUFFIXES
    from selfsup.errors import DataError

    if int(cfg.data.get("bit_depth", 8)) != 8 or int(cfg.data.channels) not in (1, 3):
        return ""  # no conversion: each file is read at the run's channels and bit depth, or refused naming it
    for first in paths:
        if first.lower().endswith(ARRAY_SUFFIXES):
            continue  # read as the run's data was, or refused naming it
        try:
            with Image.open(first) as img:
                mode, (w, h) = img.mode, img.size
            break
        except DECODE_ERRORS:
            continue  # embedding stops on it in one line naming the file (or --skip-bad leaves it out)
    else:
        return ""
    channels, size, view = int(cfg.data.channels), int(cfg.data.image_size), int(cfg.augment.size)
    theirs, ours = KIND[mode_channels(mode)], KIND.get(channels, f"{channels}-channel")
    said = ""
    if mode_channels(mode) != channels:
        if not convert:
            raise DataError(
                f"--images: the first image, {first}, is {theirs} ({mode}, {w}x{h} px), but the encoder of "
                f"{run_dir} takes {ours} images (data.channels={channels}, data.image_size={size}, views of "
                f"{view} px); --convert converts every image to {ours}"
            )
        said = f", converted from {theirs} to {ours}"
        logging.warning("--convert: every image is converted to %s (data.channels=%d)", ours, channels)
    scale = min(w, h) / size
    if scale > SCALE_WARNING or scale < 1 / SCALE_WARNING:
        logging.warning(
            "warning: the first image, %s, is %dx%d px and the encoder of %s was trained on %d px images "
            "(data.image_size, views of %d px): every image is scaled %s to %d px, so what it shows may be "
            "at a scale far from the training data's",
            first,
            w,
            h,
            run_dir,
            size,
            view,
            "down" if scale > 1 else "up",
            size,
        )
    return said


def write(out: Path, paths: list[str], emb: object) -> None:
    """``out`` (.parquet or .npy with a .paths.txt beside it), each file written whole."""
    import numpy as np

    from selfsup.run_dir import atomic_path, atomic_write_text

    emb = np.ascontiguousarray(emb, dtype=np.float32)
    with atomic_path(out) as tmp:
        if out.suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            column = pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), emb.shape[1])
            pq.write_table(pa.table({"path": pa.array(paths, pa.string()), "embedding": column}), tmp)
        else:
            with open(tmp, "wb") as f:
                np.save(f, emb)
            atomic_write_text(out.with_suffix(".paths.txt"), "".join(p + "\n" for p in paths))


if __name__ == "__main__":
    sys.exit(main())
