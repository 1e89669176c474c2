"""The ``selfsup`` command: ``selfsup COMMAND [ARGS ...]``, one module of this package per command.

    selfsup train method=simclr loss=dcl          # = python train.py ... in a checkout
    selfsup export runs/NAME --out runs/NAME-timm # = python scripts/export.py ...
    selfsup probe runs/NAME eval.knn_k=200        # = python scripts/linear_probe.py ...

A command ``NAME`` is ``selfsup/cli/NAME.py`` (``-`` for ``_``), the same code as the repository's
``train.py``, ``finetune.py`` and ``scripts/*.py``, which call it. ``selfsup COMMAND --help`` prints
a command's own help. The Hydra apps (train, finetune) run as ``python -m selfsup.cli.NAME``, so
that the processes a run starts for itself (Lightning's DDP ranks) run that same module.
"""

from __future__ import annotations

import importlib
import os
import sys

# command: what it does (its module is selfsup/cli/<command with _ for ->.py).
COMMANDS = {
    "train": "pretrain a backbone without labels (Hydra overrides, as python train.py)",
    "finetune": "transfer a run to labelled data: probe, fine-tune and from scratch side by side",
    "export": "export a run's encoder for timm and plain PyTorch (safetensors + config.json)",
    "embed": "embed a folder of images with a run's encoder (.parquet or .npy)",
    "probe": "re-evaluate a run: offline linear probe, kNN, RankMe, LiDAR",
    "collect": "collect a sweep's runs into one table (mean ± std over seeds)",
    "select-runs": "rank a sweep's runs by the label-free metrics against the probe",
    "make-shards": "write a data set as shards for data=shards",
    "make-spectral": "write the generated 13-band 16-bit TIFF set (docs/beyond-rgb.md)",
    "show-augment": "a PNG grid of held-out images and their views",
}
HYDRA_APPS = ("train", "finetune")


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {what}" for name, what in COMMANDS.items()]
    return (
        "usage: selfsup COMMAND [ARGS ...]\n\ncommands:\n"
        + "\n".join(lines)
        + "\n\n"
        + "selfsup COMMAND --help: the command's own options. Docs: README.md and docs/."
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"error: selfsup {command}: no such command; expected one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = f"selfsup.cli.{command.replace('-', '_')}"
    if command in HYDRA_APPS:
        os.execv(sys.executable, [sys.executable, "-m", module, *rest])
    sys.argv = [f"selfsup {command}", *rest]  # argparse's prog in usage lines
    return int(importlib.import_module(module).main(rest) or 0)
