#!/usr/bin/env python
"""Rank the runs under DIR by RankMe, LiDAR and (where labels exist) the linear probe.

    python scripts/select_runs.py DIR [--plot FILE.png]

Prints a markdown table of the runs (what varied between them, the probe, each label-free
metric and its rank), then Kendall's τ between each label-free metric and the probe and the
probe accuracy of the run each metric would pick against the best run. Writes a scatter plot
(metric vs probe accuracy), by default DIR/selection.png.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from selfsup.run_dir import load_runs  # noqa: E402
from selfsup.tools.selection import LABEL_FREE, PROBE, evaluate_selection, varying_settings  # noqa: E402


def _ranks(values: list[float]) -> list[int]:
    order = sorted(range(len(values)), key=lambda i: -values[i] if math.isfinite(values[i]) else math.inf)
    ranks = [0] * len(values)
    for r, i in enumerate(order, 1):
        ranks[i] = r
    return ranks


def _fmt(v: object) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(LABEL_FREE), figsize=(4 * len(LABEL_FREE), 3.6), squeeze=False)
    ys = [r["metrics"][PROBE] for r in runs]
    for ax, m in zip(axes[0], LABEL_FREE, strict=True):
        xs = [r["metrics"].get(m, math.nan) for r in runs]
        ax.scatter(xs, ys, s=18)
        ax.set_xlabel(m.replace("_", " "))
        ax.set_ylabel("linear probe top-1 (%)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", type=Path)
    ap.add_argument("--plot", type=Path, help="scatter plot path (default DIR/selection.png)")
    args = ap.parse_args(argv)
    runs = load_runs(args.dir)
    if len(runs) < 2:
        print(
            f"error: need at least 2 finished runs (results.json) under {args.dir}, found {len(runs)}", file=sys.stderr
        )
        return 2
    keys, values = varying_settings(runs)
    ranks = {m: _ranks([r["metrics"].get(m, math.nan) for r in runs]) for m in (PROBE, *LABEL_FREE)}
    head = ["run", *keys, "probe top-1 (%)", *[m.replace("_", " ") for m in LABEL_FREE]]
    print("| " + " | ".join(head) + " |")
    print("|---|" + "---|" * len(keys) + "---:|" * (1 + len(LABEL_FREE)))
    for i in sorted(range(len(runs)), key=lambda i: ranks[PROBE][i]):
        r = runs[i]
        vals = values[i]
        cells = [Path(r["run_dir"]).relative_to(args.dir).as_posix() or "."]
        cells += [_fmt(vals[k]) for k in keys]
        cells.append(f"{r['metrics'][PROBE]:.2f} (#{ranks[PROBE][i]})")
        cells += [f"{r['metrics'].get(m, math.nan):.2f} (#{ranks[m][i]})" for m in LABEL_FREE]
        print("| " + " | ".join(cells) + " |")
    print()
    print("| metric | Kendall τ vs probe | p | probe of its pick (%) | best probe (%) | loss vs best (pts) |")
    print("|---|---:|---:|---:|---:|---:|")
    for rep in evaluate_selection(runs):
        print(
            f"| {rep.metric.replace('_', ' ')} | {rep.tau:.2f} | {rep.p_value:.3f} | {rep.picked_probe:.2f} "
            f"| {rep.best_probe:.2f} | {rep.best_probe - rep.picked_probe:.2f} |"
        )
    out = args.plot or args.dir / "selection.png"
    plot(runs, out)
    print(f"\nplot: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
