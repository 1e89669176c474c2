#!/usr/bin/env python
"""``python scripts/embed.py ...`` is ``selfsup embed ...``: selfsup/cli/embed.py (its docs)."""

import sys

from selfsup.cli.embed import main

if __name__ == "__main__":
    sys.exit(main())
