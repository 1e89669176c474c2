#!/usr/bin/env python
"""Export the trained encoder of a run (or of any of its checkpoints) for timm and plain PyTorch.

    python scripts/export.py RUN_DIR [--out DIR]
    python scripts/export.py RUN_DIR/checkpoints/last.previous.ckpt --out DIR

Reads the run's resolved config (RUN_DIR/config.yaml; for a checkpoint, the run directory two
levels up) and writes model.safetensors, config.json and a model card README.md to DIR (default
RUN_DIR/export, which every run also writes when it finishes). See selfsup/export.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path, help="a run directory, or a .ckpt inside RUN_DIR/checkpoints/")
    ap.add_argument("--out", type=Path, help="the export directory (default RUN_DIR/export)")
    args = ap.parse_args(argv)

    from omegaconf import DictConfig, OmegaConf

    from selfsup.build import load_trained
    from selfsup.errors import CheckpointError, user_errors_as_one_line
    from selfsup.export import EXPORT, export_run
    from selfsup.run_dir import RESULTS, trained_run

    with user_errors_as_one_line():
        run_dir, ckpt = trained_run(args.source)
        cfg = OmegaConf.load(run_dir / "config.yaml")
        assert isinstance(cfg, DictConfig)
        module = load_trained(cfg, ckpt)
        results = json.loads((run_dir / RESULTS).read_text()) if (run_dir / RESULTS).is_file() else {}
        if not isinstance(results, dict):
            raise CheckpointError(f"{run_dir / RESULTS} is not a results file")
        out = export_run(cfg, module, args.out or run_dir / EXPORT, results.get("epochs"), results.get("metrics", {}))
    print(f"exported {ckpt} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
