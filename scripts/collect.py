#!/usr/bin/env python
"""``python scripts/collect.py ...`` is ``selfsup collect ...``: selfsup/cli/collect.py (its docs)."""

import sys

from selfsup.cli.collect import main

if __name__ == "__main__":
    sys.exit(main())
