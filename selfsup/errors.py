"""Errors in what the user gave (a config value, a data file, a checkpoint), not in selfsup.

``train.py`` prints a :class:`UserError` as one line naming the key or file and what was
expected, and exits with status 2; ``HYDRA_FULL_ERROR=1`` shows the traceback instead.

A UserError raised in a DataLoader worker (a corrupt image, say) is re-raised by torch in the main
process as the same type, with the worker's traceback as its message; :class:`UserError` takes
back the original message, so it still prints as one line.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path


class UserError(Exception):
    """Input that cannot make a valid run; its message names the key or file and what is allowed."""

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            args = (_worker_message(args[0], type(self)),)
        super().__init__(*args)


def _worker_message(message: str, cls: type) -> str:
    """The original message of a ``cls`` torch re-raises from a DataLoader worker, else ``message``.

    torch (``ExceptionWrapper.reraise``) builds ``cls(text)`` where text is "Caught <Name> in DataLoader
    worker process N." and, on the next lines, "Original Traceback ...", which ends with the line
    ``<module>.<Name>: <original message>``.
    """
    if not (message.startswith(f"Caught {cls.__name__} in ") and "\nOriginal Traceback" in message):
        return message
    header = f"\n{cls.__module__}.{cls.__qualname__}: "
    at = message.rfind(header)
    return message[at + len(header) :].strip() if at >= 0 else message


class ConfigError(UserError, ValueError):
    """A configuration that composes but cannot describe a valid run."""


class CheckpointError(UserError, RuntimeError):
    """No readable checkpoint to resume from where one was asked for."""


class MissingFileError(UserError, FileNotFoundError):
    """A data set, image folder or checkpoint the config names that is not there."""


class LossNotFinite(UserError, FloatingPointError):
    """A NaN or infinite training loss: the run stops (usually the lr or the precision)."""


class RunDirInUse(UserError, RuntimeError):
    """Another process is running in the run directory (it holds ``RUN/.lock``)."""


class DataError(UserError, ValueError):
    """A data file that cannot be read (a corrupt image, say), named with the option that handles it."""


class DiskFullError(UserError, OSError):
    """The disk filled up while a file was written; the message names the file and the free space."""


# torch.save's zip writer reports a full disk as RuntimeError("[enforce fail at inline_container.cc...]
# unexpected pos ..."), not as ENOSPC: a write that fails with this little space left was the disk.
FULL_BELOW_BYTES = 16 * 2**20


def _free_bytes(path: Path) -> int | None:
    for p in (path, *path.parents):
        if p.exists():
            return shutil.disk_usage(p).free
    return None


@contextlib.contextmanager
def writing(path: str | os.PathLike[str]) -> Iterator[None]:
    """Around the writing of ``path``: a full disk (``ENOSPC``, or torch's zip writer failing with
    almost no space left) becomes :class:`DiskFullError` ``disk full writing PATH (N MB free)``."""
    path = Path(path)
    try:
        yield
    except DiskFullError:
        raise
    except (OSError, RuntimeError) as e:
        free = _free_bytes(path)
        full = getattr(e, "errno", None) == errno.ENOSPC or (
            isinstance(e, RuntimeError) and free is not None and free < FULL_BELOW_BYTES
        )
        if not full:
            raise
        mb = "?" if free is None else f"{free / 2**20:.0f}"
        raise DiskFullError(f"disk full writing {path} ({mb} MB free)") from e


class MissingPackageError(UserError, ImportError):
    """An option chosen whose optional package is not installed (:mod:`selfsup.optional`)."""


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
