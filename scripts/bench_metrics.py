#!/usr/bin/env python
"""Cost of the label-free metrics callback: the same run with and without it, in one go.

    python scripts/bench_metrics.py [--data digits fashion_mnist] [--epochs N] [--out FILE.md]

For each data set, trains twice with the same seed (metrics every epoch, then
eval.metrics.enabled=false) and reports the time spent inside the callback as a share of
pretraining, and the difference between the two runs' pretraining times.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Final-evaluation settings that do not touch pretraining time but shorten the runs.
QUIET = ["eval.baselines=[]", "eval.probe_Cs=[1.0]", "eval.probe_max_iter=100"]


def _train(args: list[str], run_dir: Path) -> dict:
    cmd = [sys.executable, "train.py", *args, *QUIET, f"hydra.run.dir={run_dir}"]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
    return json.loads((run_dir / "results.json").read_text())


def _have_fashion_mnist() -> bool:
    from selfsup.data.fashion_mnist import find_fashion_mnist

    try:
        find_fashion_mnist(None)
    except FileNotFoundError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="+", default=["digits"])
    ap.add_argument("--epochs", type=int, help="trainer.max_epochs (default: the data's default run)")
    ap.add_argument("--out", type=Path, help="also append the table to this markdown file")
    args = ap.parse_args(argv)
    lines = [
        "| data | epochs | pretrain, metrics on (s) | in the callback (s) | share | pretrain, metrics off (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for data in args.data:
            if data == "fashion_mnist" and not _have_fashion_mnist():
                print("fashion_mnist: skipped, not installed (apt-get install dataset-fashion-mnist)", flush=True)
                continue
            extra = [f"data={data}"] + ([f"trainer.max_epochs={args.epochs}"] if args.epochs else [])
            on = _train([*extra, "eval.metrics.every_n_epochs=1"], Path(tmp) / f"{data}-on")
            off = _train([*extra, "eval.metrics.enabled=false"], Path(tmp) / f"{data}-off")
            share = on["metrics_seconds"] / on["pretrain_seconds"]
            lines.append(
                f"| {data} | {on['epochs']} | {on['pretrain_seconds']:.1f} | {on['metrics_seconds']:.2f} "
                f"| {100 * share:.1f} % | {off['pretrain_seconds']:.1f} |"
            )
            print(lines[-1], flush=True)
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "a") as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
