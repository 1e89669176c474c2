"""SIGKILL at every file-system write of the commands that replace what a user has: export.py,
make_shards.py, a checkpoint save and a run starting over (resume=never). At each kill the public
name holds one complete version (or, between the two renames of a swap without renameat2, the old
version waits whole at ``.NAME.old``); the next run of the same command finishes and leaves
nothing else behind. The writes are pinned and counted by tests/kill_points.py."""

from __future__ import annotations

import hashlib
import os
import re
import select
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from selfsup.errors import ConfigError
from selfsup.export import WEIGHTS
from selfsup.owned_dir import MARKER, check_replaceable
from selfsup.pipeline import FRESH, run
from selfsup.resume import previous_checkpoint, resume_checkpoint
from selfsup.run_dir import RESULTS
from tests.conftest import ROOT, TINY, compose_cfg
from tests.kill_points import complete_shards, save_checkpoint


def tree(root: Path) -> dict[str, str]:
    """Every file below ``root`` (relative path -> sha256)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


class Driver:
    """tests/kill_points.py running ``entry`` with ``args``, killed where :meth:`run` says."""

    def __init__(self, watch: Path, entry: str, *args: str) -> None:
        self.p = subprocess.Popen(
            [sys.executable, "-m", "tests.kill_points", str(watch), entry, *args],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )  # fmt: skip

    def warm(self) -> str:
        """The command once, whole, in the driver itself (see tests/kill_points.py)."""
        return self.run("warm")

    def run(self, kill_at: int | str) -> str:
        assert self.p.stdin is not None and self.p.stdout is not None
        command = kill_at if kill_at == "warm" else f"run {kill_at}"
        self.p.stdin.write(f"{command}\n")
        self.p.stdin.flush()
        ready, _, _ = select.select([self.p.stdout], [], [], 300)
        assert ready, f"no answer to run {kill_at} in 300 s"
        return self.p.stdout.readline().strip()

    def close(self) -> None:
        assert self.p.stdin is not None
        self.p.stdin.close()
        self.p.wait(timeout=60)


@pytest.fixture
def driver() -> Iterator[Callable[..., Driver]]:
    started: list[Driver] = []

    def start(watch: Path, entry: str, *args: str) -> Driver:
        started.append(Driver(watch, entry, *args))
        return started[-1]

    yield start
    for d in started:
        d.close()


def kill_at_every_point(
    d: Driver, watch: Path, reset: Callable[[], None], killed: Callable[[str], None], clean: Callable[[], None]
) -> list[str]:
    """Kill the command at point 0, 1, ... until it runs whole, checking ``killed`` after each kill.
    Where a kill leaves ``watch`` in a shape not seen before (the names below it, a pid as ``N``),
    run the same command again and check ``clean``: what the next run finds decides what it does.
    Returns where each kill landed."""
    kills, shapes = [], set()
    for k in range(500):
        reset()
        out = d.run(k)
        if out == "exit 0":
            return kills
        assert out.startswith("killed "), (k, out)
        kills.append(out.removeprefix("killed "))
        killed(kills[-1])
        shape = tuple(sorted(re.sub(r"\d+", "N", str(p.relative_to(watch))) for p in watch.rglob("*")))
        if shape not in shapes:
            shapes.add(shape)
            assert d.run(-1) == "exit 0", (k, kills[-1])
            clean()
    raise AssertionError("more than 500 kill points")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("kill") / "run"
    run(compose_cfg([*TINY, "eval.baselines=[]", "eval.metrics.enabled=false"], run_dir), run_dir, loss_choice="ntxent")
    GlobalHydra.instance().clear()
    assert (run_dir / RESULTS).is_file() and (run_dir / "export" / WEIGHTS).is_file()
    return run_dir


def test_export_killed_at_every_write(finished_run: Path, tmp_path: Path, driver) -> None:  # type: ignore[no-untyped-def]
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    export = run_dir / "export"
    d = driver(run_dir, "scripts/export.py", str(run_dir), "--force")
    assert d.warm() == "exit 0"
    complete = tree(export)  # the same checkpoint exports the same bytes (the marker aside)
    complete.pop(MARKER)

    def whole(folder: Path) -> bool:
        got = tree(folder)
        return got.pop(MARKER, None) is not None and got == complete

    def killed(where: str) -> None:
        if export.exists():
            assert whole(export), where
        else:  # between the two renames of a swap without renameat2 only
            assert whole(run_dir / ".export.old"), where

    def clean() -> None:
        assert whole(export)
        assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".export")]

    kills = kill_at_every_point(d, run_dir, lambda: None, killed, clean)
    ops = {k.split()[0] for k in kills}
    assert {"mkdir", "open", "fsync", "exchange", "rmtree"} <= ops, kills


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "two renames"])
def test_make_shards_killed_at_every_write(data_roots: dict[str, Path], tmp_path: Path, driver, exchange: bool) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "shards"
    args = [str(data_roots["imagefolder"]), str(out), "--force"]
    entry = "scripts/make_shards.py" if exchange else "tests.kill_points:make_shards_without_exchange"
    d = driver(tmp_path, entry, *args)  # without the exchange: old -> .NAME.old, new -> NAME
    assert d.warm() == "exit 0" and complete_shards(out)
    seen_old = []

    def killed(where: str) -> None:
        if out.exists():
            assert complete_shards(out), where
        else:
            assert complete_shards(tmp_path / ".shards.old"), where
            seen_old.append(where)
            # Still ours: replaced only with --force, as when it stood under its name.
            with pytest.raises(ConfigError, match="exists \\(written by selfsup; at .shards.old"):
                check_replaceable(out, force=False)

    def clean() -> None:
        assert complete_shards(out)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["shards"]

    kills = kill_at_every_point(d, tmp_path, lambda: None, killed, clean)
    ops = {k.split()[0] for k in kills}
    assert ({"exchange"} if exchange else {"rename"}) <= ops and {"open", "fsync", "rmtree"} <= ops, kills
    assert bool(seen_old) is not exchange, seen_old


def test_checkpoint_save_killed_at_every_write(tmp_path: Path, driver) -> None:  # type: ignore[no-untyped-def]
    run_dir = tmp_path / "run"
    folder = run_dir / "checkpoints"
    last = folder / "last.ckpt"

    def step(path: Path) -> int:
        return int(torch.load(path, weights_only=True)["step"])

    def reset() -> None:  # last.ckpt at step 1, the one it replaced (step 0) beside it
        shutil.rmtree(folder, ignore_errors=True)
        save_checkpoint([str(folder), "0"])
        save_checkpoint([str(folder), "1"])

    def killed(where: str) -> None:
        assert step(last) in (1, 2), where
        chosen = resume_checkpoint(run_dir, "auto")
        assert chosen is not None and step(chosen) in (1, 2), where
        assert step(previous_checkpoint(last)) in (0, 1), where

    def clean() -> None:
        assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt", "last.previous.ckpt"]
        assert step(last) == 2

    d = driver(run_dir, "tests.kill_points:save_checkpoint", str(folder), "2")
    kills = kill_at_every_point(d, folder, reset, killed, clean)
    assert {"open", "fsync", "link", "replace"} <= {k.split()[0] for k in kills}, kills


def test_starting_over_killed_at_every_write(finished_run: Path, tmp_path: Path, driver) -> None:  # type: ignore[no-untyped-def]
    """resume=never removes the earlier attempt, results.json first: at each kill the run is either
    the finished run, whole, or an unfinished one whose remaining files are the run's own, unchanged."""
    run_dir = tmp_path / "run"
    before = tree(finished_run)
    kept = {f: h for f, h in before.items() if f != RESULTS and f.split("/")[0] not in FRESH}

    def reset() -> None:
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.copytree(finished_run, run_dir)

    def killed(where: str) -> None:
        now = tree(run_dir)
        if RESULTS in now:
            assert now == before, where
        else:
            assert now.items() <= before.items() and kept.items() <= now.items(), where

    def clean() -> None:
        assert tree(run_dir) == kept

    d = driver(tmp_path, "tests.kill_points:start_over", str(run_dir))
    kills = kill_at_every_point(d, run_dir, reset, killed, clean)
    assert {"unlink", "rmtree"} <= {k.split()[0] for k in kills}, kills
