"""Plots of a run's learned temperatures, from the training log it already writes.

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


def _columns(metrics_csv: Path, prefix: str) -> dict[str, list[tuple[float, float]]]:
    """``{column: [(step, value), ...]}`` of the CSV's columns starting with ``prefix``."""
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    with open(metrics_csv, newline="") as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if key and key.startswith(prefix) and value not in ("", None) and row.get("step"):
                    v = float(value)
                    if math.isfinite(v):
                        series[key].append((float(row["step"]), v))
    return dict(series)


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
