"""Plots of a run, drawn from the training log it already writes (``metrics.csv``).

:func:`plot_curves` (``curves.png``, every run): the training loss, the online probe's top-1 and
the label-free metrics (RankMe, LiDAR) by epoch, one panel each, for the metrics the run logged.

A loss that learns temperatures reports their quantiles through ``logged()`` (AMCL's per-pair
temperatures of the multi-head projector: ``train/tau_pos_*``, ``train/tau_neg_*``; iSogCLR's
per-image temperatures: ``train/tau_min`` ... ``train/tau_max``), which the CSV logger writes to
``metrics.csv``. :func:`plot_temperatures` draws every such column against the step, so a reader
sees whether the temperatures moved, spread or hit their bounds.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

from selfsup.run_dir import atomic_path

TEMPERATURES = "temperatures.png"
CURVES = "curves.png"
# The panels of curves.png: title, the metrics.csv columns it draws (those the run logged).
PANELS = (
    ("training loss", ("train/loss_epoch",)),
    ("online probe top-1 (%)", ("train/online_top1", "val/online_top1")),
    ("RankMe", ("val/rankme_backbone", "val/rankme_projector")),
    ("LiDAR", ("val/lidar_backbone", "val/lidar_projector")),
)


def _columns(metrics_csv: Path, prefix: str, x: str = "step") -> dict[str, list[tuple[float, float]]]:
    """``{column: [(x, value), ...]}`` of the CSV's columns starting with ``prefix``, against the
    column ``x`` (``step`` or ``epoch``)."""
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    with open(metrics_csv, newline="") as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if key and key.startswith(prefix) and value not in ("", None) and row.get(x):
                    v = float(value)
                    if math.isfinite(v):
                        series[key].append((float(row[x]), v))
    return dict(series)


def plot_curves(metrics_csv: Path, out: Path) -> bool:
    """Draw the :data:`PANELS` the run logged, by epoch, into ``out`` (PNG).

    Returns:
        Whether there was anything to draw (no file is written otherwise).
    """
    if not metrics_csv.is_file():
        return False
    logged = {k: v for k, v in _columns(metrics_csv, "", x="epoch").items() if k.startswith(("train/", "val/"))}
    panels = [(title, [c for c in columns if c in logged]) for title, columns in PANELS]
    panels = [(title, columns) for title, columns in panels if columns]
    if not panels:
        return False
    from matplotlib.figure import Figure

    # Margins fixed in inches (tight_layout's search would double the drawing time of every run).
    width, height, gap = 3.4 * len(panels), 3.0, 0.55
    fig = Figure(figsize=(width, height))
    axes = fig.subplots(1, len(panels), squeeze=False)
    axis_width = (width - 0.6 - 0.15 - gap * (len(panels) - 1)) / len(panels)
    fig.subplots_adjust(left=0.6 / width, right=1 - 0.15 / width, bottom=0.5 / height, top=1 - 0.3 / height,
                        wspace=gap / axis_width)  # fmt: skip
    for ax, (title, columns) in zip(axes[0], panels, strict=True):
        for column in columns:
            epochs, values = zip(*sorted(logged[column]), strict=True)
            ax.plot(epochs, values, marker="o", ms=3, lw=1.2, label=column)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    return True


def plot_temperatures(metrics_csv: Path, out: Path) -> bool:
    """Draw the ``train/tau_*`` columns of ``metrics_csv`` against the step into ``out`` (PNG).

    Returns:
        Whether there was anything to draw (no file is written otherwise).
    """
    if not metrics_csv.is_file():
        return False
    series = _columns(metrics_csv, "train/tau_")
    if not series:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for key in sorted(series):
        steps, values = zip(*sorted(series[key]), strict=True)
        ax.plot(steps, values, label=key.removeprefix("train/"), lw=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("temperature")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("learned temperatures (quantiles)")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return True
