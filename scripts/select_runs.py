#!/usr/bin/env python
"""``python scripts/select_runs.py ...`` is ``selfsup select-runs ...``: selfsup/cli/select_runs.py (its docs)."""

import sys

from selfsup.cli.select_runs import main

if __name__ == "__main__":
    sys.exit(main())
