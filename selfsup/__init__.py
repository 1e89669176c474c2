"""selfsup: config-driven self-supervised learning for images.

The package is called ``selfsup`` and not ``ssl`` because a top-level ``ssl`` package would
shadow Python's TLS module whenever the repository root is on ``sys.path``.
"""

from pathlib import Path

__version__ = "0.1.0"

# The config groups (the repository's configs/). selfsup/configs is a link to that folder in a
# checkout, and the folder itself in the wheel, so an installed package composes the same configs.
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
