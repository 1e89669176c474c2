"""Export the trained encoder of a run (or of any of its checkpoints) for timm and plain PyTorch.

    python scripts/export.py RUN_DIR [--out DIR] [--force] [--unfinished] [--onnx]
    python scripts/export.py RUN_DIR/checkpoints/last.previous.ckpt --out DIR

Reads the run's resolved config (RUN_DIR/config.yaml; for a checkpoint, the run directory two
levels up) and writes model.safetensors, config.json and a model card README.md to DIR (default
RUN_DIR/export, which every run also writes when it finishes). See selfsup/export.py.

``--onnx`` adds model.onnx (input ``images``, (batch, C, H, W) normalised float32; output
``features``; the batch axis dynamic), written by torch's ONNX exporter and checked with
onnxruntime against the PyTorch encoder on the run's first 64 held-out images (largest absolute
difference at most 1e-4, written into the model card) before the directory is swapped in. It needs the packages onnx,
onnxscript and onnxruntime (``selfsup[onnx]``). An export selfsup wrote of the same weights (the
run's own ``export/``) is rewritten with it, without ``--force``: nothing in it changes but the
added file.

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
    ap.add_argument("--onnx", action="store_true", help="also write model.onnx, checked with onnxruntime")
    args = ap.parse_args(argv)

    from selfsup.build import build_datamodule, load_trained
    from selfsup.errors import CheckpointError, ConfigError, user_errors_as_one_line
    from selfsup.export import EXPORT, ONNX, export_run, holds_weights, not_exportable
    from selfsup.optional import require_flag
    from selfsup.owned_dir import check_replaceable
    from selfsup.run_dir import RESULTS, check_finished, trained_run

    with user_errors_as_one_line():
        if args.onnx:
            require_flag("export --onnx")
        run_dir, ckpt, cfg = trained_run(args.source)
        check_finished(run_dir, allow=None if args.unfinished else "--unfinished")
        out = args.out or run_dir / EXPORT
        if not args.onnx:
            check_replaceable(out, args.force)
        module = load_trained(cfg, ckpt)
        if args.onnx and not holds_weights(out, module.eval_encoder):
            check_replaceable(out, args.force)
        why = not_exportable(module.eval_encoder)
        if why is not None:
            raise ConfigError(f"{run_dir}: its encoder cannot be exported: {why}")
        results = json.loads((run_dir / RESULTS).read_text()) if (run_dir / RESULTS).is_file() else {}
        if not isinstance(results, dict):
            raise CheckpointError(f"{run_dir / RESULTS} is not a results file")
        images = None
        if args.onnx:
            module.cpu()
            images = module.view_maker.prepare(build_datamodule(cfg).held_out_images(64))
        export_run(cfg, module, out, results.get("epochs"), results.get("metrics", {}), onnx_inputs=images)
    checked = f" with {ONNX}, checked with onnxruntime on {len(images)} held-out images" if images is not None else ""
    print(f"exported {ckpt} to {out}{checked}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
