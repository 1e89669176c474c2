"""Re-evaluate a saved run: offline linear probe, kNN and RankMe of its last checkpoint.

    python scripts/linear_probe.py RUN_DIR [eval.knn_k=200 ...] [--ckpt PATH] [--device cuda] [--unfinished]

Reads RUN_DIR/config.yaml (the resolved config the run saved) and RUN_DIR/checkpoints/last.ckpt,
prints the same table as the end of training and writes RUN_DIR/probe.json. The overrides are
checked as train.py checks its own (a key the run's config lacks, or a value out of range, is one
line naming the key); a run that failed or has not finished is refused unless ``--unfinished``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("overrides", nargs="*", help="key=value changes to the saved config, e.g. eval.knn_k=200")
    ap.add_argument("--ckpt", type=Path, help="checkpoint to load (default RUN_DIR/checkpoints/last.ckpt)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--unfinished", action="store_true", help="probe a FAILED or unfinished run's checkpoint")
    args = ap.parse_args(argv)

    from selfsup.build import build_backbone, build_datamodule, load_trained
    from selfsup.errors import MissingFileError, user_errors_as_one_line
    from selfsup.eval.final import final_evaluation
    from selfsup.eval.report import format_table
    from selfsup.run_dir import atomic_write_json, check_finished, run_config, trained_run

    with user_errors_as_one_line():
        run = trained_run(args.run_dir)
        run_dir, ckpt = run.run_dir, run.ckpt
        if args.ckpt is not None:
            ckpt = args.ckpt
            if not ckpt.is_file():
                raise MissingFileError(f"--ckpt {ckpt}: no such checkpoint")
        check_finished(run_dir, allow=None if args.unfinished else "--unfinished")
        cfg = run_config(run, args.overrides)
        dm = build_datamodule(cfg)
        module = load_trained(cfg, ckpt)
    rows = final_evaluation(cfg, module, dm, device=args.device, new_backbone=lambda: build_backbone(cfg))
    atomic_write_json(run_dir / "probe.json", {"checkpoint": str(ckpt), "overrides": args.overrides, **rows})
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
