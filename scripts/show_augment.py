#!/usr/bin/env python
"""``python scripts/show_augment.py ...`` is ``selfsup show-augment ...``: selfsup/cli/show_augment.py (its docs)."""

import sys

from selfsup.cli.show_augment import main

if __name__ == "__main__":
    sys.exit(main())
