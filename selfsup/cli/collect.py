"""Collect a sweep's finished runs into one markdown table (and optionally CSV).

    python scripts/collect.py SWEEP_DIR [--group-by loss data] [--csv OUT.csv] [--baselines]

Every ``results.json`` below SWEEP_DIR is one run; runs that differ only in seed are averaged
(mean ± sample std): every other key that differs within a group becomes a column of its own
(with ``--group-by``, such a group is refused, naming the keys). Unfinished runs (no
results.json) are not counted; broken ones (an unreadable results.json, a run that trained 0
steps) are listed below the table, and the rest are still collected. Besides the config
groups (``loss``, ``method``, ...), ``--group-by dir`` groups by the folder that holds a run's
folder, relative to SWEEP_DIR: one row per sweep of ``SWEEP_DIR/NAME/`` (options that are not
groups, such as ``loss.drop_top_k=2``, get their own sweep folder and so their own row).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from selfsup.errors import user_errors_as_one_line
from selfsup.run_dir import load_runs
from selfsup.tools.collect import baseline_rows, summarize, to_markdown


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep_dir", type=Path)
    ap.add_argument("--group-by", nargs="+", help="choice keys to group by (default: those that vary)")
    ap.add_argument("--csv", type=Path, help="also write the rows here")
    ap.add_argument("--baselines", action="store_true", help="add a row per baseline the runs evaluated")
    args = ap.parse_args(argv)
    broken: list[tuple[str, str]] = []
    runs = load_runs(args.sweep_dir, broken)
    for r in runs:  # the pseudo-choice `dir`: the sweep folder a run belongs to
        folder = Path(r["run_dir"]).parent  # outside SWEEP_DIR when SWEEP_DIR is the run directory itself
        inside = folder.is_relative_to(args.sweep_dir)
        r["choices"]["dir"] = folder.relative_to(args.sweep_dir).as_posix() if inside else "."
    if not runs:
        print(f"error: no finished run (results.json) under {args.sweep_dir}", file=sys.stderr)
        return 2
    with user_errors_as_one_line():
        group_by, rows = summarize(runs, args.group_by)
    if args.baselines:
        rows += baseline_rows(runs, group_by)
    print(to_markdown(rows, group_by))
    if broken:
        print(f"\n{len(broken)} broken run(s), not counted:\n\n| broken run | why |\n|---|---|")
        print("\n".join(f"| {d} | {why} |" for d, why in broken))
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
