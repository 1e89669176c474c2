#!/usr/bin/env python
"""Re-evaluate a saved run: offline linear probe, kNN and RankMe of its last checkpoint.

    python scripts/linear_probe.py RUN_DIR [eval.knn_k=200 ...] [--ckpt PATH] [--device cuda]

Reads RUN_DIR/config.yaml (the resolved config the run saved) and RUN_DIR/checkpoints/last.ckpt,
prints the same table as the end of training and writes RUN_DIR/probe.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("overrides", nargs="*", help="key=value changes to the saved config, e.g. eval.knn_k=200")
    ap.add_argument("--ckpt", type=Path, help="checkpoint to load (default RUN_DIR/checkpoints/last.ckpt)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)

    from omegaconf import DictConfig, OmegaConf

    from selfsup.build import build_datamodule, final_evaluation, load_trained
    from selfsup.errors import user_errors_as_one_line
    from selfsup.eval.report import format_table
    from selfsup.run_dir import atomic_write_json

    cfg_path = args.run_dir / "config.yaml"
    ckpt = args.ckpt or args.run_dir / "checkpoints" / "last.ckpt"
    for p, what in ((cfg_path, "the run's resolved config"), (ckpt, "a checkpoint")):
        if not p.is_file():
            print(f"error: {p} not found ({what}); is {args.run_dir} a selfsup run directory?", file=sys.stderr)
            return 2
    cfg = OmegaConf.load(cfg_path)
    OmegaConf.set_struct(cfg, True)  # a mistyped override is an error, as in train.py
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(args.overrides))
    assert isinstance(cfg, DictConfig)

    dm = build_datamodule(cfg)
    with user_errors_as_one_line():
        module = load_trained(cfg, ckpt)
    rows = final_evaluation(cfg, module, dm, device=args.device)
    atomic_write_json(args.run_dir / "probe.json", {"checkpoint": str(ckpt), "overrides": args.overrides, **rows})
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
