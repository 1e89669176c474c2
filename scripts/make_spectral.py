#!/usr/bin/env python
"""``python scripts/make_spectral.py ...`` is ``selfsup make-spectral ...``: selfsup/cli/make_spectral.py (its docs)."""

import sys

from selfsup.cli.make_spectral import main

if __name__ == "__main__":
    sys.exit(main())
