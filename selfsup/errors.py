"""Errors in what the user gave (a config value, a data file, a checkpoint), not in selfsup.

``train.py`` prints a :class:`UserError` as one line naming the key or file and what was
expected, and exits with status 2; ``HYDRA_FULL_ERROR=1`` shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


class UserError(Exception):
    """Input that cannot make a valid run; its message names the key or file and what is allowed."""


class ConfigError(UserError, ValueError):
    """A configuration that composes but cannot describe a valid run."""


class CheckpointError(UserError, RuntimeError):
    """No readable checkpoint to resume from where one was asked for."""


class MissingFileError(UserError, FileNotFoundError):
    """A data set, image folder or checkpoint the config names that is not there."""


class DataError(UserError, ValueError):
    """A data file that cannot be read (a corrupt image, say), named with the option that handles it."""


@contextlib.contextmanager
def user_errors_as_one_line() -> Iterator[None]:
    """Turn a :class:`UserError` into ``error: <message>`` on stderr and exit status 2.

    With ``HYDRA_FULL_ERROR=1`` the error propagates with its traceback, as Hydra's own do.
    """
    try:
        yield
    except UserError as e:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
