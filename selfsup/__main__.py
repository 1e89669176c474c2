"""``python -m selfsup COMMAND ...`` is the ``selfsup`` command (selfsup/cli/__init__.py)."""

import sys

from selfsup.cli import main

sys.exit(main())
