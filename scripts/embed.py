#!/usr/bin/env python
"""Embed a folder of images with the encoder of a trained run.

    python scripts/embed.py RUN_DIR --images DIR --out embeddings.parquet
    python scripts/embed.py RUN_DIR/checkpoints/last.ckpt --images DIR --out embeddings.npy

Every image under DIR (at any depth; .jpg .png .bmp .webp ...), in sorted path order, is read
as the run's data was: converted to the run's channels, the shorter side resized and the centre
square cropped to data.image_size, then resized to the view size and normalised as the
evaluation does. So an image of the run's own data gets exactly the features the linear probe
and kNN saw. Batched on --device (default: a GPU if there is one), with a progress bar.

Output:
- .parquet: columns `path` (relative to DIR) and `embedding` (fixed-size list of float32);
- .npy: a float32 array (images, features), and the paths in row order beside it in
  FILE.paths.txt (one per line, relative to DIR).
Each file is written whole (to a temporary name, then renamed).

--projector embeds with the projection head on top (the space the loss saw) instead of the
backbone features. --skip-bad leaves out images that cannot be decoded (each is logged), after
checking every file first; without it, the first such image stops the script in one line.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FORMATS = (".parquet", ".npy")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path, help="a run directory, or a .ckpt inside RUN_DIR/checkpoints/")
    ap.add_argument("--images", type=Path, required=True, help="folder of images (searched at any depth)")
    ap.add_argument("--out", type=Path, required=True, help="embeddings.parquet or embeddings.npy")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes decoding images")
    ap.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu, cuda, cuda:1, ...")
    ap.add_argument("--projector", action="store_true", help="embed with the projection head on top")
    ap.add_argument("--skip-bad", action="store_true", help="leave out images that cannot be decoded")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from omegaconf import DictConfig, OmegaConf
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from selfsup.build import load_trained, resolve_device
    from selfsup.data.folder import FolderImageDataset
    from selfsup.errors import ConfigError, DataError, MissingFileError, user_errors_as_one_line
    from selfsup.eval.features import extract_features
    from selfsup.run_dir import trained_run

    with user_errors_as_one_line():
        if args.out.suffix not in FORMATS:
            raise ConfigError(f"--out {args.out}: expected a file ending in {' or '.join(FORMATS)}")
        if args.batch_size < 1 or args.num_workers < 0:
            raise ConfigError(f"--batch-size {args.batch_size} / --num-workers {args.num_workers}: need >= 1 / >= 0")
        if not args.images.is_dir():
            raise MissingFileError(f"--images {args.images}: no such folder")
        run_dir, ckpt = trained_run(args.source)
        cfg = OmegaConf.load(run_dir / "config.yaml")
        assert isinstance(cfg, DictConfig)
        ds = FolderImageDataset(args.images, int(cfg.data.image_size), int(cfg.data.channels), labelled=False)
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
        write(args.out, paths, emb)
    print(f"embedded {len(paths)} images ({emb.shape[1]} features each, {ckpt}) to {args.out}")
    return 0


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
