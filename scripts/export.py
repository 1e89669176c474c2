#!/usr/bin/env python
"""``python scripts/export.py ...`` is ``selfsup export ...``: selfsup/cli/export.py (its docs)."""

import sys

from selfsup.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
