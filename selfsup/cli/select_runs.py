"""Rank the runs under DIR by RankMe, LiDAR and (where labels exist) the linear probe.

    python scripts/select_runs.py DIR [--plot FILE.png] [--history FILE.png]

Prints a markdown table of the runs (what varied between them, the probe, each label-free
metric and its rank), then Kendall's τ between each label-free metric and the probe and the
probe accuracy of the run each metric would pick against the best run. Writes a scatter plot
(metric vs probe accuracy), by default DIR/selection.png.

DIR an Optuna study (``train.py -m sweeper=optuna``, its optimization_results.yaml): also the
trial chosen by RankMe, by LiDAR and by the probe with their hyperparameters, and the study's
history (objective per trial, best so far; probe per trial) in DIR/optuna_history.png (--history).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from selfsup.errors import ConfigError, MissingFileError, user_errors_as_one_line
from selfsup.run_dir import load_runs
from selfsup.sweep_metric import METRIC
from selfsup.tools.selection import (
    CHOOSERS,
    LABEL_FREE,
    PROBE,
    Study,
    best_trials,
    evaluate_selection,
    load_study,
    varying_settings,
)

HISTORY = "optuna_history.png"


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
    ap.add_argument("--history", type=Path, help="an Optuna study's history plot path (default DIR/optuna_history.png)")
    args = ap.parse_args(argv)
    with user_errors_as_one_line():  # every argument checked before anything is printed or written
        if not args.dir.is_dir():
            raise MissingFileError(f"{args.dir}: no such folder (expected a sweep's folder of run directories)")
        for option, path in (("--plot", args.plot), ("--history", args.history)):
            if path is not None and path.is_dir():
                raise ConfigError(f"{option} {path} is a folder; expected the path of a .png file to write")
            if path is not None and not path.parent.is_dir():
                raise MissingFileError(f"{option} {path}: there is no folder {path.parent} to write it in")
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
    study = load_study(args.dir, runs)
    if study is not None:
        report_study(study)
        history = args.history or args.dir / HISTORY
        plot_history(study, history)
        print(f"plot: {history}")
    return 0


def report_study(study: Study) -> None:
    """The trial each way of choosing picks: by RankMe, by LiDAR (no labels), by the probe."""
    print(
        f"\nOptuna study: {study.trials} trials ({len(study.runs)} finished), objective {study.objective}, "
        f"best value {study.best_value:.4g}"
    )
    print()
    head = ["chosen by", "trial", *study.params, "RankMe", "LiDAR", "probe top-1 (%)"]
    print("| " + " | ".join(head) + " |")
    print("|---|---:|" + "---:|" * (len(study.params) + 3))
    for how, t in best_trials(study).items():
        m = study.runs[t]["metrics"]
        cells = [how, str(t), *[_fmt(study.values[t][k]) for k in study.params]]
        cells += [f"{m.get(CHOOSERS['rankme'], math.nan):.2f}", f"{m.get(CHOOSERS['lidar'], math.nan):.2f}"]
        cells.append(f"{m[PROBE]:.2f}")
        print("| " + " | ".join(cells) + " |")


def plot_history(study: Study, path: Path) -> None:
    """The study's objective per trial and the best so far (Optuna's history plot), and the probe."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    metric = METRIC.get(study.objective, PROBE)
    trials = sorted(study.runs)
    values = [study.runs[t]["metrics"].get(metric, math.nan) for t in trials]
    best, so_far = [], -math.inf
    for v in values:
        so_far = max(so_far, v) if math.isfinite(v) else so_far
        best.append(so_far if math.isfinite(so_far) else math.nan)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    axes[0].scatter(trials, values, s=18, label=f"trial's {study.objective}")
    axes[0].step(trials, best, where="post", color="C1", label="best so far")
    axes[0].set_ylabel(study.objective)
    axes[0].legend()
    axes[1].scatter(trials, [study.runs[t]["metrics"][PROBE] for t in trials], s=18, color="C2")
    axes[1].set_ylabel("linear probe top-1 (%)")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("trial")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
