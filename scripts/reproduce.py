#!/usr/bin/env python
"""Reproduce a paper table: launch its runs (the missing ones), collect them, print ours beside theirs.

    python scripts/reproduce.py TABLE                       # run what is missing here, then report
    python scripts/reproduce.py TABLE --launcher slurm      # the missing runs as a SLURM job array
    python scripts/reproduce.py TABLE --collect-only        # report what has finished, launch nothing
    python scripts/reproduce.py TABLE -- trainer.max_epochs=2   # extra train.py overrides (every run)
    python scripts/reproduce.py TABLE --losses ntxent dcl --batches 32 --seeds 0 1   # part of it

Runs go to ``--dir`` (default ``reproduce/TABLE``), one directory per loss, batch size and seed;
unfinished ones resume from their last checkpoint. The report is written to ``--out``
(``TABLE.md`` and ``TABLE.png``) and printed. Tables: see ``selfsup/tools/reproduce.py``; the
published numbers they are compared with: ``docs/published/``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from selfsup.tools.reproduce import TABLES, Table, finished, missing, overrides, plot, run_name, to_markdown

ROOT = Path(__file__).resolve().parent.parent


def launch(table: Table, folder: Path, launcher: str, extra: list[str]) -> None:
    """Every missing run of the table: one train.py each (local), or one multirun per run group (slurm)."""
    todo = missing(folder, table)
    print(f"{table.name}: {len(table.runs()) - len(todo)} of {len(table.runs())} runs finished; launching {len(todo)}")
    if not todo:
        return
    if launcher == "local":
        for loss, batch, seed in todo:
            run_dir = folder / run_name(loss, batch, seed)
            cmd = [sys.executable, "train.py", *overrides(table, loss, batch, seed), *extra, f"hydra.run.dir={run_dir}"]
            print("  " + " ".join(cmd[1:]), flush=True)
            subprocess.run(cmd, cwd=ROOT, check=True)
        return
    # SLURM: one job array per (loss, batch) over its missing seeds; each job's folder is named
    # like the local runs', so a table can be finished by either launcher.
    groups: dict[tuple[str, int], list[int]] = {}
    for loss, batch, seed in todo:
        groups.setdefault((loss, batch), []).append(seed)
    for (loss, batch), seeds in groups.items():
        base = [o for o in overrides(table, loss, batch, seeds[0]) if not o.startswith("seed=")]
        cmd = [
            sys.executable, "train.py", "-m", "launcher=slurm", *base, "seed=" + ",".join(map(str, seeds)), *extra,
            f"hydra.sweep.dir={folder}", f"hydra.sweep.subdir={loss}_b{batch}_s${{seed}}",
        ]  # fmt: skip
        print("  " + " ".join(cmd[1:]), flush=True)
        subprocess.run(cmd, cwd=ROOT, check=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("table", choices=sorted(TABLES))
    ap.add_argument("--dir", type=Path, help="where the runs are (default: reproduce/TABLE)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "reproduce", help="folder of TABLE.md and TABLE.png")
    ap.add_argument("--launcher", choices=["local", "slurm"], default="local")
    ap.add_argument("--collect-only", action="store_true", help="launch nothing; report the finished runs")
    ap.add_argument("--losses", nargs="+", help="only these losses of the table")
    ap.add_argument("--batches", nargs="+", type=int, help="only these batch sizes")
    ap.add_argument("--seeds", nargs="+", type=int, help="these seeds (default: the table's)")
    args = ap.parse_args(argv)
    table = TABLES[args.table]
    for key in ("losses", "batches"):
        unknown = set(getattr(args, key) or []) - set(getattr(table, key))
        if unknown:
            ap.error(f"--{key} {sorted(unknown)}: {args.table} has {list(getattr(table, key))}")
    table = replace(
        table,
        losses=tuple(args.losses or table.losses),
        batches=tuple(args.batches or table.batches),
        seeds=tuple(args.seeds or table.seeds),
    )
    folder = (args.dir or ROOT / "reproduce" / args.table).resolve()
    if not args.collect_only:
        launch(table, folder, args.launcher, extra)
    done = finished(folder, table)  # read once, after the launches
    left = [r for r in table.runs() if r not in done]
    if len(left) == len(table.runs()):
        print(f"{args.table}: no finished run under {folder}", file=sys.stderr)
        return 1
    text = to_markdown(done, table)
    if left:
        text += f"\n{len(left)} of {len(table.runs())} runs not finished: {', '.join(run_name(*r) for r in left)}\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.table}.md").write_text(text)
    plot(done, table, args.out / f"{args.table}.png")
    print(text)
    print(f"wrote {args.out / (args.table + '.md')} and {args.out / (args.table + '.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
