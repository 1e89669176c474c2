"""selfsup: config-driven self-supervised learning for images.

The package is called ``selfsup`` and not ``ssl`` because a top-level ``ssl`` package would
shadow Python's TLS module whenever the repository root is on ``sys.path``.
"""

__version__ = "0.1.0"
