"""What a run directory holds, written so that a kill never leaves a file half-written.

A run is finished when ``results.json`` exists; it is written last, atomically. A run that
raised has ``FAILED`` (with the error) instead, so no tool mistakes it for a finished one. Both
describe the last attempt: an attempt that starts removes the markers of the one before it
(:func:`start_attempt`), and one refused before it starts (a bad config, an unreadable
checkpoint, missing data) writes nothing at all, so an earlier finished run stays as it was. A
finished run is read-only to ``train.py`` (:mod:`selfsup.rerun`): only ``resume=never`` starts
another attempt there, and one process at a time writes a run directory (:mod:`selfsup.run_lock`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import subprocess
import tempfile
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from omegaconf import DictConfig, OmegaConf

from selfsup.errors import writing

RESULTS = "results.json"
FAILED = "FAILED"


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        with writing(path), os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary name beside ``path`` (same suffix) for a writer that takes a path; renamed over
    ``path`` when the block ends, removed if it raises: ``path`` is whole or as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def git_revision(cwd: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Commit hash and whether the work tree had uncommitted changes; "unknown" outside git."""
    cwd = cwd or Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()

    try:
        return {
            "commit": git("rev-parse", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        }
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}


def mark_failed(run_dir: str | os.PathLike[str], exc: BaseException) -> None:
    """Record why the run stopped; an earlier ``FAILED`` is replaced, ``results.json`` never written.
    Where even that cannot be written (a full disk), the run's own error is what the user sees."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    with contextlib.suppress(OSError):
        atomic_write_text(Path(run_dir) / FAILED, text)


def start_attempt(run_dir: str | os.PathLike[str], fresh: Sequence[str] = ()) -> list[str]:
    """A new attempt at the run starts: the last attempt's ``results.json`` or ``FAILED`` goes, and
    the files and folders ``fresh`` names (those of an earlier attempt that a run starting over
    must not keep). Returns the names removed, ``FAILED`` aside (a failure has nothing to lose)."""
    removed = []
    for name in (RESULTS, FAILED, *fresh):
        path = Path(run_dir) / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        if name != FAILED:
            removed.append(name)
    return removed


def remove_if_only_hydra(run_dir: str | os.PathLike[str]) -> None:
    """Remove ``run_dir`` if it holds only what Hydra writes on launching a job (``.hydra/`` and
    ``*.log``): no attempt ever started there, so a refused one leaves no directory behind. A
    directory with anything else in it is left as it is."""
    path = Path(run_dir)
    if not path.is_dir():
        return
    entries = list(path.iterdir())
    if any(not (e.name == ".hydra" and e.is_dir() or e.suffix == ".log" and e.is_file()) for e in entries):
        return
    for e in entries:
        if e.is_dir():
            shutil.rmtree(e)
        else:
            e.unlink()
    path.rmdir()


def load_runs(root: str | os.PathLike[str], broken: list[tuple[str, str]] | None = None) -> list[dict[str, Any]]:
    """Every finished run below ``root``: its ``results.json``, with ``run_dir`` (its folder) added.

    The one reader of ``results.json`` (``scripts/collect.py``, ``select_runs.py`` and
    ``reproduce.py`` all use it). Unfinished runs have no ``results.json`` and are skipped;
    runs are in path order. A ``results.json`` that cannot be read as a run's results (empty,
    truncated, another file), or a run that trained no step, is broken: with ``broken`` given it
    is appended there as ``(run_dir, why)`` and left out; without it, :class:`ConfigError` names it.
    """
    from selfsup.errors import ConfigError

    runs = []
    for path in sorted(Path(root).rglob(RESULTS)):
        try:
            r = json.loads(path.read_text())
            why = _broken(r)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            why = f"unreadable {RESULTS} ({' '.join(str(e).split())})"
        if why:
            if broken is None:
                raise ConfigError(f"{path}: {why}")
            broken.append((str(path.parent), why))
            continue
        r["run_dir"] = str(path.parent)
        runs.append(r)
    return runs


def _broken(results: Any) -> str:
    """Why ``results`` is not a finished run's results ('' when it is)."""
    if not isinstance(results, dict) or not isinstance(results.get("metrics"), dict) or "choices" not in results:
        return f"not a run's {RESULTS} (no metrics or choices)"
    if results.get("steps") == 0:
        return "trained 0 steps"
    return ""


def run_config(run: TrainedRun, overrides: Sequence[str] = ()) -> DictConfig:
    """A trained run's resolved config (:func:`trained_run`'s ``cfg``) with ``key=value`` ``overrides``,
    checked as ``train.py`` checks its own: a key the run does not have, or a value its schema
    refuses, is one :class:`ConfigError` line naming the key. ``run.cfg`` itself is left as it is."""
    from omegaconf.errors import OmegaConfBaseException

    from selfsup.errors import ConfigError
    from selfsup.schema_check import check_schema

    run_dir = run.run_dir
    cfg = copy.deepcopy(run.cfg)
    OmegaConf.set_struct(cfg, True)  # a mistyped override is an error, as in train.py
    for item in overrides:
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(f"{item!r}: expected key=value, e.g. eval.knn_k=200")
        if OmegaConf.select(cfg, key, default=_ABSENT) is _ABSENT:
            raise ConfigError(f"{key}: the run's config ({run_dir / 'config.yaml'}) has no such key")
        try:
            merged = OmegaConf.merge(cfg, OmegaConf.from_dotlist([item]))
        except OmegaConfBaseException as e:
            raise ConfigError(f"{item}: {' '.join(str(e).split()[:12])}") from None
        assert isinstance(merged, DictConfig)
        cfg = merged
    check_schema(cfg)
    return cfg


_ABSENT = object()


def check_finished(run_dir: Path, allow: str | None) -> None:
    """Refuse a run that failed (``FAILED``) or has not finished (no ``results.json``); ``allow``
    names the option that asks for it anyway (None: that option was given)."""
    from selfsup.errors import ConfigError

    if allow is None:
        return
    if (run_dir / FAILED).is_file():
        first = (run_dir / FAILED).read_text().strip().splitlines()[-1:] or ["?"]
        raise ConfigError(f"{run_dir} is a FAILED run ({first[0][:160]}); {allow} uses its checkpoint anyway")
    if not (run_dir / RESULTS).is_file():
        raise ConfigError(f"{run_dir} has not finished (no {RESULTS}); {allow} uses its last checkpoint anyway")


class TrainedRun(NamedTuple):
    """A trained run as :func:`trained_run` finds it."""

    run_dir: Path
    ckpt: Path  # the checkpoint to load: the one named, or the run's checkpoints/last.ckpt
    cfg: DictConfig  # the run's resolved config (RUN_DIR/config.yaml), as the run saved it


def trained_run(source: str | os.PathLike[str]) -> TrainedRun:
    """``(run directory, checkpoint, config)`` of ``source``: a run directory (its
    ``checkpoints/last.ckpt``) or a ``.ckpt`` inside ``RUN_DIR/checkpoints/``, with the run's resolved
    config read from ``RUN_DIR/config.yaml``. What scripts that reuse a trained run start from.

    Raises:
        MissingFileError: ``source`` is neither, or the checkpoint or the run's ``config.yaml`` is
            missing.
    """
    from selfsup.errors import MissingFileError

    source = Path(source)
    if source.is_dir():
        run_dir, ckpt = source, source / "checkpoints" / "last.ckpt"
    elif source.suffix == ".ckpt":
        run_dir, ckpt = source.resolve().parent.parent, source
    else:
        raise MissingFileError(f"{source}: expected a run directory or a .ckpt file")
    for p, what in ((ckpt, "a checkpoint"), (run_dir / "config.yaml", "the run's resolved config")):
        if not p.is_file():
            raise MissingFileError(f"{p} not found ({what}); is {run_dir} a selfsup run directory?")
    cfg = OmegaConf.load(run_dir / "config.yaml")
    assert isinstance(cfg, DictConfig)
    if cfg.data.get("normalize", "fixed") == "auto":  # the statistics the run measured
        from selfsup.data import stats

        norm = stats.read(run_dir)
        if norm is None:
            raise MissingFileError(f"{run_dir / stats.STATS_FILE} not found (the run's data.normalize=auto statistics)")
        stats.apply(cfg, norm)
    return TrainedRun(run_dir, ckpt, cfg)
