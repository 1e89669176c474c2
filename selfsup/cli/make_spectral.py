"""Write a generated multispectral image set: 13-band 16-bit TIFFs whose classes differ in their spectra.

    python scripts/make_spectral.py data/spectral

A stand-in for satellite tiles (Sentinel-2 has 13 bands) that anyone can make offline, to try the
N-channel, 16-bit path end to end (docs/beyond-rgb.md). ``OUT/train/<class>/*.tif`` and
``OUT/val/<class>/*.tif``, each a (13, size, size) uint16 TIFF (one page, bands planar), as
``data=imagefolder data.channels=13 data.bit_depth=16`` reads it. The folder is written beside OUT
and swapped in whole; an existing OUT is refused (``--force`` replaces one selfsup wrote).

Each image is a scene of materials, each material a smooth reflectance spectrum over the bands:

- the background mixes three "distractor" materials shared by every class, their weights varying
  smoothly over the image;
- 2 to 4 soft discs (15-35 % of the area) are of the class's material: a common base spectrum
  plus one narrow absorption dip at a band of its own (the class signal is in 1-2 of 13 bands);
- the scene is scaled by an illumination gain drawn per image (0.35 to 1), a haze offset drawn
  per image and band is added, and Gaussian sensor noise, then quantised to 16 bits.

So no single band and no overall brightness tells the classes apart: a model has to find the
pixels of the discs and compare bands within them. The set is seeded (``--seed``): the same
arguments write the same files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

BANDS = 13
DISTRACTORS = 3
DIP, DIP_WIDTH = 0.5, 0.8  # a class material's absorption: depth (share of the base reflectance), width in bands


def _smooth_spectrum(rng: np.random.Generator, bands: int) -> np.ndarray:
    """A reflectance curve over ``bands``: 0.15 plus three Gaussian bumps, in (0, 1)."""
    t = np.arange(bands)
    curve = np.full(bands, 0.15)
    for _ in range(3):
        centre, width, height = rng.uniform(0, bands - 1), rng.uniform(1.5, 4.0), rng.uniform(0.1, 0.35)
        curve += height * np.exp(-0.5 * ((t - centre) / width) ** 2)
    return np.clip(curve, 0.02, 0.95)


def _smooth_field(rng: np.random.Generator, size: int, cells: int = 4) -> np.ndarray:
    """A smooth random field on (size, size): bilinear upsampling of a cells x cells grid of N(0, 1)."""
    grid = rng.standard_normal((cells, cells))
    pos = np.linspace(0, cells - 1, size)
    i0 = np.minimum(pos.astype(int), cells - 2)
    f = pos - i0
    rows = grid[i0] * (1 - f)[:, None] + grid[i0 + 1] * f[:, None]
    return rows[:, i0] * (1 - f)[None] + rows[:, i0 + 1] * f[None]


def spectra(classes: int, bands: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(class materials (classes, bands), distractors (DISTRACTORS, bands))``: one base spectrum
    with a narrow dip at band ``1 + k * (bands - 2) // classes`` for class k; random distractors."""
    rng = np.random.default_rng(seed)
    base = _smooth_spectrum(rng, bands)
    t = np.arange(bands)
    own = np.stack(
        [
            base * (1 - DIP * np.exp(-0.5 * ((t - (1 + k * (bands - 2) // classes)) / DIP_WIDTH) ** 2))
            for k in range(classes)
        ]
    )
    return own, np.stack([_smooth_spectrum(rng, bands) for _ in range(DISTRACTORS)])


def scene(rng: np.random.Generator, material: np.ndarray, distractors: np.ndarray, size: int) -> np.ndarray:
    """One (bands, size, size) uint16 image of ``material``'s discs on a distractor background."""
    fields = np.stack([_smooth_field(rng, size) * 2.0 for _ in distractors])
    weights = np.exp(fields) / np.exp(fields).sum(0)  # (D, H, W)
    background = np.einsum("dhw,db->bhw", weights, distractors)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    disc = np.zeros((size, size))
    for _ in range(rng.integers(2, 5)):
        cy, cx = rng.uniform(0, size, 2)
        r = rng.uniform(0.12, 0.22) * size
        disc = np.maximum(disc, 1 / (1 + np.exp((np.hypot(yy - cy, xx - cx) - r) / 0.7)))
    reflectance = background * (1 - disc) + material[:, None, None] * disc
    gain = rng.uniform(0.35, 1.0)
    haze = rng.uniform(0.0, 0.08, size=(len(material), 1, 1))
    value = gain * reflectance + haze + rng.normal(0, 0.01, reflectance.shape)
    return np.round(np.clip(value, 0, 1) * 65535).astype(np.uint16)


def write_set(
    out: Path, classes: int = 4, train: int = 128, val: int = 32, size: int = 32, bands: int = BANDS, seed: int = 0
) -> Path:
    """``out/train/<class>/*.tif`` (``train`` per class) and ``out/val/<class>/*.tif`` (``val`` per class)."""
    import tifffile

    own, distractors = spectra(classes, bands, seed)
    rng = np.random.default_rng(seed + 1)
    for split, n in (("train", train), ("val", val)):
        for k in range(classes):
            folder = out / split / f"material{k}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                image = scene(rng, own[k], distractors, size)
                tifffile.imwrite(folder / f"{i:04d}.tif", image, photometric="minisblack", planarconfig="separate")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="the folder to write")
    ap.add_argument("--classes", type=int, default=4, help="materials, one class each")
    ap.add_argument("--train", type=int, default=128, help="training images per class")
    ap.add_argument("--val", type=int, default=32, help="held-out images per class")
    ap.add_argument("--size", type=int, default=32, help="image side in px")
    ap.add_argument("--bands", type=int, default=BANDS, help="bands (channels)")
    ap.add_argument("--seed", type=int, default=0, help="the seed of the spectra and the scenes")
    ap.add_argument("--force", action="store_true", help="replace OUT if it exists (only a set selfsup wrote)")
    args = ap.parse_args(argv)

    from selfsup.errors import ConfigError, user_errors_as_one_line
    from selfsup.owned_dir import check_replaceable, replacing

    with user_errors_as_one_line():
        check_replaceable(args.out, args.force)
        for name in ("classes", "train", "val", "size", "bands"):
            if getattr(args, name) < (2 if name in ("classes", "bands") else 1):
                raise ConfigError(f"--{name} {getattr(args, name)}: too small")
        if args.bands < args.classes + 2:
            raise ConfigError(f"--bands {args.bands}: need at least --classes + 2 for one dip per class")
        with replacing(args.out, "spectral") as partial:  # swapped in whole: never half a set under OUT
            write_set(partial, args.classes, args.train, args.val, args.size, args.bands, args.seed)
    n = args.classes * (args.train + args.val)
    print(f"wrote {n} images ({args.bands} bands, 16 bits, {args.size} px) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
