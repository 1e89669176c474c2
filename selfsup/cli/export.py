"""Export the trained encoder of a run (or of any of its checkpoints) for timm and plain PyTorch.

    python scripts/export.py RUN_DIR [--out DIR] [--force] [--unfinished]
    python scripts/export.py RUN_DIR/checkpoints/last.previous.ckpt --out DIR

Reads the run's resolved config (RUN_DIR/config.yaml; for a checkpoint, the run directory two
levels up) and writes model.safetensors, config.json and a model card README.md to DIR (default
RUN_DIR/export, which every run also writes when it finishes). See selfsup/export.py.

An existing DIR is replaced only with ``--force``, and only if selfsup wrote it (it holds
``.selfsup``); any other existing path is refused and left as it is. A run that failed (``FAILED``)
or has not finished (no ``results.json``) is refused unless ``--unfinished`` asks for it. Every
refusal is one line, before anything is written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path, help="a run directory, or a .ckpt inside RUN_DIR/checkpoints/")
    ap.add_argument("--out", type=Path, help="the export directory (default RUN_DIR/export)")
    ap.add_argument("--force", action="store_true", help="replace DIR if it exists (only a folder selfsup wrote)")
    ap.add_argument("--unfinished", action="store_true", help="export a FAILED or unfinished run's checkpoint")
    args = ap.parse_args(argv)

    from selfsup.build import load_trained
    from selfsup.errors import CheckpointError, ConfigError, user_errors_as_one_line
    from selfsup.export import EXPORT, export_run, not_exportable
    from selfsup.owned_dir import check_replaceable
    from selfsup.run_dir import RESULTS, check_finished, trained_run

    with user_errors_as_one_line():
        run_dir, ckpt, cfg = trained_run(args.source)
        check_finished(run_dir, allow=None if args.unfinished else "--unfinished")
        out = args.out or run_dir / EXPORT
        check_replaceable(out, args.force)
        module = load_trained(cfg, ckpt)
        why = not_exportable(module.eval_encoder)
        if why is not None:
            raise ConfigError(f"{run_dir}: its encoder cannot be exported: {why}")
        results = json.loads((run_dir / RESULTS).read_text()) if (run_dir / RESULTS).is_file() else {}
        if not isinstance(results, dict):
            raise CheckpointError(f"{run_dir / RESULTS} is not a results file")
        export_run(cfg, module, out, results.get("epochs"), results.get("metrics", {}))
    print(f"exported {ckpt} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
