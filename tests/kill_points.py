"""Kill a command at each of its file-system writes: the driver behind tests/test_kill_at_every_write.py.

``python -m tests.kill_points WATCH ENTRY [ARG ...]`` imports ``ENTRY`` (a script path with a
``main(argv)``, or ``module:function``) once, then reads commands on stdin, one per line:

* ``run K`` forks a child that calls ``ENTRY(ARGS)`` and SIGKILLs itself just before, or just
  after, the K-th write below ``WATCH`` (``K = -1``: never). A write is a call of ``os.rename``,
  ``os.replace``, ``os.link``, ``os.unlink``, ``os.remove``, ``os.rmdir``, ``os.mkdir``,
  ``shutil.rmtree``, ``shutil.copyfile``, an ``open`` for writing, selfsup's one-call folder exchange
  (``renameat2``), with a path below ``WATCH``, and every ``os.fsync``; each has a kill point
  before and after it, so K counts those points.
* ``warm`` calls ``ENTRY(ARGS)`` once in the driver itself, unarmed: the children then start with
  what a first call loads (lazy imports, timm's registry). The driver runs with one thread
  (``OMP_NUM_THREADS=1``), so no thread pool is copied into a fork.
* It answers ``killed OP`` (the write it was killed at, and ``before``/``after``) or ``exit RC``.

Forking after the imports keeps each attempt to the command's own work, without the seconds of
``import torch``; the parent itself computes nothing, so the children start with no threads.
"""

from __future__ import annotations

import builtins
import importlib
import io
import os
import runpy
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import selfsup.build  # noqa: F401  (the scripts' imports, done once before the forks)
import selfsup.export  # noqa: F401
import selfsup.pipeline  # noqa: F401
from selfsup.data.shards import META, check_files, read_meta
from selfsup.owned_dir import MARKER
from selfsup.resume import AtomicCheckpointIO, remove_partial_checkpoints
from selfsup.run_dir import start_attempt

WRITE_MODES = set("wax+")
REPORT = [-1]  # the child's end of the pipe that says where it was killed


def save_checkpoint(argv: list[str]) -> int:
    """What a run does at a checkpoint: clear a killed save's leftovers, then save ``last.ckpt``
    (its step from ``argv[1]``) into the folder ``argv[0]``."""
    folder = Path(argv[0])
    remove_partial_checkpoints(folder)
    step = int(argv[1])
    checkpoint = {"step": step, "global_step": step, "w": torch.full((256,), float(step))}
    AtomicCheckpointIO().save_checkpoint(checkpoint, folder / "last.ckpt")
    return 0


def start_over(argv: list[str]) -> int:
    """What ``resume=never`` does in a run directory before training: remove the earlier attempt."""
    from selfsup.pipeline import FRESH

    start_attempt(argv[0], FRESH)
    return 0


def make_shards_without_exchange(argv: list[str]) -> int:
    """scripts/make_shards.py where renameat2's exchange is missing (another OS or file system)."""
    sys.modules["selfsup.owned_dir"]._exchange = lambda a, b: False  # type: ignore[attr-defined]
    return int(_entry("scripts/make_shards.py")(argv))


def complete_shards(root: Path) -> bool:
    """``root`` is a whole shard root: its description and every file it lists, byte for byte."""
    if not (root / META).is_file() or not (root / MARKER).is_file():
        return False
    meta = read_meta(root)
    check_files(root, meta, verify=True)
    return True


def _entry(spec: str) -> Callable[[list[str]], Any]:
    if spec.endswith(".py"):
        return runpy.run_path(spec, run_name="kill_points")["main"]
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def _arm(watch: str, kill_at: int) -> None:
    """Count every write below ``watch`` and SIGKILL this process at point ``kill_at``."""
    step = [0]

    def below(arg: Any) -> bool:
        try:
            path = os.fsdecode(os.fspath(arg))
        except TypeError:
            return False
        return os.path.realpath(path).startswith(watch)

    def point(name: str, when: str) -> None:
        if step[0] == kill_at:
            os.write(REPORT[0], f"{name} {when}\n".encode())
            os.kill(os.getpid(), signal.SIGKILL)
        step[0] += 1

    def pinned(name: str, fn: Callable[..., Any], counts: Callable[..., bool]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if not counts(*args, **kwargs):
                return fn(*args, **kwargs)
            point(name, "before")
            out = fn(*args, **kwargs)
            point(name, "after")
            return out

        return call

    def any_below(*args: Any, **kwargs: Any) -> bool:
        return any(below(a) for a in args[:2])

    def opens_for_writing(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> bool:
        return bool(WRITE_MODES & set(mode)) and below(file)

    for name in ("rename", "replace", "link", "unlink", "remove", "rmdir", "mkdir"):
        setattr(os, name, pinned(name, getattr(os, name), any_below))
    os.fsync = pinned("fsync", os.fsync, lambda *a, **k: True)
    shutil.rmtree = pinned("rmtree", shutil.rmtree, any_below)
    shutil.copyfile = pinned("copyfile", shutil.copyfile, any_below)
    builtins.open = io.open = pinned("open", io.open, opens_for_writing)
    od = sys.modules["selfsup.owned_dir"]
    od._exchange = pinned("exchange", od._exchange, any_below)


def main() -> None:
    watch, spec, args = os.path.realpath(sys.argv[1]), sys.argv[2], sys.argv[3:]
    entry = _entry(spec)
    for line in sys.stdin:
        if line.strip() == "warm":  # once, in this process: what a first call loads and sets up
            saved = os.dup(1), os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            try:
                rc = entry(args)
            finally:
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
            print(f"exit {rc or 0}", flush=True)
            continue
        kill_at = int(line.split()[1])
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            REPORT[0] = write
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            _arm(watch, kill_at)
            try:
                rc = entry(args)
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else 1
            except BaseException:
                rc = 1
            os._exit(rc or 0)
        os.close(write)
        _, status = os.waitpid(pid, 0)
        with os.fdopen(read) as f:
            where = f.read().strip()
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
            print(f"killed {where}", flush=True)
        else:
            print(f"exit {os.waitstatus_to_exitcode(status)}", flush=True)


if __name__ == "__main__":
    main()
