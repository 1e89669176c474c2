"""One process per run directory: ``RUN/.lock``, held with ``flock`` while a run writes there.

The lock is the kernel's (``fcntl.flock`` on the open file), so it goes with the process however
the process ends, SIGKILL included: a ``.lock`` that no process holds is stale, whatever it says.
The file holds the holder's pid and host, for the message that refuses a second process, and is
removed when the run ends. A second process is refused before it writes anything, the lock file
included (:func:`check_free` only reads).

Only the run's rank 0 takes it (:func:`takes_the_lock`): the other ranks of a DDP run are the
same run.

Examples:
    >>> check_free(run_dir)  # refuses if another process runs there; writes nothing
    >>> hold(run_dir)  # before the first write; released by release(run_dir) or at exit
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import os
import socket
import time
import warnings
from pathlib import Path

from selfsup.dist import launcher_rank_zero
from selfsup.errors import RunDirInUse

LOCK = ".lock"
# A process that only looks (check_free) holds the lock for a moment; one that means to run waits
# this long for such a look to end before it takes a held lock for another run's.
WAIT_SECONDS = 1.0

# run directory (absolute) -> (the open, locked file descriptor, the pid that locked it: a forked
# child inherits the descriptor but is not the holder)
_held: dict[Path, tuple[int, int]] = {}


def takes_the_lock() -> bool:
    """This process is the run's rank 0 (:func:`~selfsup.dist.launcher_rank_zero`) on its first node.

    ``launcher_rank_zero`` is also true of the first process of every node that Lightning launches
    itself (no ``RANK`` in the environment); ``NODE_RANK`` tells those apart.
    """
    node = os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", "0"))
    return launcher_rank_zero() and node == "0"


def _key(run_dir: Path) -> Path:
    return Path(os.path.abspath(run_dir))


def holds(run_dir: str | os.PathLike[str]) -> bool:
    """This process holds ``run_dir``'s lock."""
    return _key(Path(run_dir)) in _held


def _holder(fd: int, path: Path) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    words = os.read(fd, 4096).decode(errors="replace").split()
    who = f"pid {words[0]} on host {words[1]}" if len(words) >= 2 else "another process"
    return f"run directory {path.parent} is in use by {who} ({path}); wait for it or use another hydra.run.dir"


def _try_flock(fd: int, path: Path) -> bool:
    """Whether the exclusive lock was taken; False when another process holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as e:  # a file system without flock: nothing to prevent a second process
        if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
        warnings.warn(
            f"{path}: this file system cannot lock files ({e.strerror}); nothing stops a second process "
            "from writing the same run directory",
            stacklevel=3,
        )
    return True


def check_free(run_dir: str | os.PathLike[str]) -> None:
    """Refuse if another process holds ``run_dir``'s lock; reads only (no file is created).

    Raises:
        RunDirInUse: naming the holder's pid and host.
    """
    path = Path(run_dir) / LOCK
    if holds(run_dir):
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        if not _try_flock(fd, path):
            raise RunDirInUse(_holder(fd, path))
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def hold(run_dir: str | os.PathLike[str]) -> bool:
    """Take ``run_dir``'s lock (making the directory if need be); False if this process holds it already.

    A ``.lock`` left by a process that is gone (killed) is taken over, with a warning naming it.

    Raises:
        RunDirInUse: another process holds it.
    """
    run_dir = Path(run_dir)
    if holds(run_dir):
        return False
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_flock(fd, path):
            if time.monotonic() < deadline:
                os.close(fd)
                time.sleep(0.05)
                continue
            message = _holder(fd, path)
            os.close(fd)
            raise RunDirInUse(message)
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # its holder removed it as we opened it: lock the file that is there now
    earlier = os.read(fd, 4096).decode(errors="replace").split()
    if earlier:
        who = f"pid {earlier[0]} on host {earlier[1]}" if len(earlier) >= 2 else "an unknown process"
        warnings.warn(f"{path} was left by {who}, which no longer holds it (killed?); taking it over", stacklevel=2)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
    _held[_key(run_dir)] = (fd, os.getpid())
    return True


def release(run_dir: str | os.PathLike[str]) -> None:
    """Remove ``run_dir``'s lock file and let go of the lock, if this process holds it."""
    key = _key(Path(run_dir))
    fd, pid = _held.pop(key, (None, None))
    if fd is None or pid != os.getpid():
        return
    try:
        # Removed while still locked: a process that opened it meanwhile sees that it is gone (hold).
        (key / LOCK).unlink(missing_ok=True)
    finally:
        os.close(fd)


@atexit.register
def _release_all() -> None:
    for run_dir in list(_held):
        release(run_dir)


def _forget_in_child() -> None:
    # A forked child (a DataLoader worker) shares the locked open file; closing its copy leaves the
    # lock with the run's process alone, so it goes when that process does, not with its last worker.
    for fd, _ in _held.values():
        os.close(fd)
    _held.clear()


os.register_at_fork(after_in_child=_forget_in_child)
