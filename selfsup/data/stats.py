"""``data.normalize=auto``: per-channel mean and standard deviation measured on the training images.

For data whose statistics nobody published (a 13-band satellite set, 12-bit microscopy in
16-bit files, DICOM), the run measures them once, before training, on a seeded sample of
``SAMPLE`` training images (each at ``data.image_size``, values scaled to [0, 1] by the bit
depth as the view maker scales them), and writes them to ``RUN_DIR/normalization.json``. The views,
the evaluation, the export (its ``mean``/``std``) and every script that reuses the run (export,
embed, probe, fine-tune: :func:`selfsup.run_dir.trained_run`) read them from there; a resumed
run reads the file instead of measuring again, so it normalises exactly as it started.
``data.mean`` and ``data.std`` are then not used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, open_dict
from torch.utils.data import Dataset

from selfsup.data.base import seeded_indices

STATS_FILE = "normalization.json"
SAMPLE = 1024  # training images measured
SEED = 0  # the sample's seed (independent of the run's seed: the same data gives the same statistics)


def measure(ds: Dataset, bit_depth: int, sample: int = SAMPLE, seed: int = SEED) -> dict[str, Any]:
    """Per-channel mean and (population) standard deviation of ``sample`` images of ``ds``, drawn
    with ``seed``, in [0, 1] units; float64 sums. Items are ``(image (C, H, W), label, index)``."""
    picked = seeded_indices(len(ds), sample, seed)  # type: ignore[arg-type]
    total = total_sq = None
    count = 0
    for i in picked:
        x = ds[i][0].to(torch.float64) / float(2**bit_depth - 1)
        s, sq = x.sum(dim=(1, 2)), (x * x).sum(dim=(1, 2))
        total, total_sq = (s, sq) if total is None else (total + s, total_sq + sq)  # type: ignore[operator]
        count += x.shape[1] * x.shape[2]
    assert total is not None and total_sq is not None
    mean = total / count
    std = (total_sq / count - mean * mean).clamp(min=0).sqrt().clamp(min=1e-6)  # a constant channel: no division by 0
    return {"mean": mean.tolist(), "std": std.tolist(), "images": len(picked), "seed": seed}


def read(run_dir: Path) -> dict[str, Any] | None:
    """The statistics a run wrote, or None."""
    f = Path(run_dir) / STATS_FILE
    return json.loads(f.read_text()) if f.is_file() else None


def apply(cfg: DictConfig, norm: dict[str, Any]) -> None:
    """Write ``norm``'s mean and std into ``cfg``'s ``data`` and ``augment`` (what the export and
    the scripts that reuse a run read), in place, and make them fixed (``data.normalize=fixed``):
    a view maker built from ``cfg`` then normalises as the run did."""
    with open_dict(cfg):
        for node in (cfg.data, cfg.augment):
            node.mean, node.std = list(norm["mean"]), list(norm["std"])
        cfg.data.normalize = "fixed"
