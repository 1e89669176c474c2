"""Folders that selfsup writes and replaces whole: a run's ``export/``, a shard root, a script's ``--out``.

* **Ownership.** Every such folder holds :data:`MARKER` (``.selfsup``: what wrote it, and when). An
  existing path without it is not ours: it is refused, named, and never changed or deleted.
  Replacing one of ours is asked for explicitly (``--force``), except the run's own ``export/``.
* **Replacement.** The new version is written beside the public name as ``.NAME.new-PID`` and
  fsynced, then exchanged with the old one in one system call (Linux ``renameat2`` with
  ``RENAME_EXCHANGE``), so the public name holds one complete version at every instant; the old
  version, now under the temporary name, is deleted. Where the exchange is not available (another
  OS, a file system without it) the old folder is renamed to ``.NAME.old``, the new one to NAME,
  and ``.NAME.old`` is deleted; a kill between those two renames leaves the old version at
  ``.NAME.old``, which :func:`recover` puts back.
* **Recovery.** :func:`recover`, run before every write of the same folder (and at the start of a
  run for its ``export/``), deletes what a killed attempt left (``.NAME.new-*``) and puts
  ``.NAME.old`` back where NAME is missing.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from selfsup.errors import ConfigError, writing

MARKER = ".selfsup"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def owned(path: Path) -> bool:
    """``path`` is a folder selfsup wrote (it holds :data:`MARKER`)."""
    return (path / MARKER).is_file()


def _old(public: Path) -> Path:
    """Where the old version of ``public`` waits between the two renames of a replacement."""
    return public.parent / f".{public.name}.old"


def check_replaceable(public: Path, force: bool, how: str = "pass --force") -> None:
    """Refuse, before any work, to replace ``public`` where it exists and is not ours, or is ours
    and ``force`` is not set (``how`` says what replaces it)."""
    if not (public.exists() or public.is_symlink()):
        old = _old(public)
        if not (old.is_dir() and owned(old)):
            return
        # A replacement killed between its two renames: :func:`recover` puts this version back
        # under the public name, so it is the existing folder that --force must be asked for.
        if not force:
            raise ConfigError(
                f"{public} exists (written by selfsup; at {old.name} since a killed replacement); {how} to replace it"
            )
        return
    if not public.is_dir() or public.is_symlink() or not owned(public):
        raise ConfigError(
            f"{public} exists and was not written by selfsup (no {MARKER} in it): it is left as it is; "
            "choose another path"
        )
    if not force:
        raise ConfigError(f"{public} exists (written by selfsup); {how} to replace it")


def recover(public: Path) -> None:
    """Clean up after a killed replacement of ``public`` (see the module doc)."""
    parent = public.parent
    if not parent.is_dir():
        return
    for leftover in parent.glob(f".{public.name}.new-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    old = _old(public)
    if old.exists():
        if public.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(old, public)


@contextlib.contextmanager
def replacing(public: Path, kind: str) -> Iterator[Path]:
    """A new, empty folder to write ``public``'s next version into; when the block ends it replaces
    ``public`` whole (with :data:`MARKER` added). If the block raises, ``public`` is as it was and
    the new folder is gone. Call :func:`check_replaceable` first where the caller may refuse.

    Args:
        public: the folder's public name.
        kind: what it holds (``export``, ``shards``), recorded in the marker.
    """
    public = Path(public)
    public.parent.mkdir(parents=True, exist_ok=True)
    recover(public)
    new = public.parent / f".{public.name}.new-{os.getpid()}"
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir()
    try:
        with writing(new):
            yield new
            marker = {"kind": kind, "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            (new / MARKER).write_text(json.dumps(marker) + "\n")
            _fsync_tree(new)
        _swap(new, public)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise


def _swap(new: Path, public: Path) -> None:
    if not public.exists():
        os.rename(new, public)
    elif _exchange(new, public):
        shutil.rmtree(new)  # the old version, now under the temporary name
    else:
        old = _old(public)
        os.rename(public, old)
        os.rename(new, public)
        shutil.rmtree(old)
    _fsync(public.parent)


def _exchange(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` in one step (``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    fn = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """Every file and folder below ``root`` (and ``root``) on disk before the swap names it."""
    for folder, _, files in os.walk(root):
        for name in files:
            fd = os.open(Path(folder) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync(Path(folder))
