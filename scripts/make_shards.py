#!/usr/bin/env python
"""``python scripts/make_shards.py ...`` is ``selfsup make-shards ...``: selfsup/cli/make_shards.py (its docs)."""

import sys

from selfsup.cli.make_shards import main

if __name__ == "__main__":
    sys.exit(main())
