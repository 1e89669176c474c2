#!/usr/bin/env python
"""``python scripts/linear_probe.py ...`` is ``selfsup probe ...``: selfsup/cli/probe.py (its docs)."""

import sys

from selfsup.cli.probe import main

if __name__ == "__main__":
    sys.exit(main())
