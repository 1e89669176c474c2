"""One process per run directory (selfsup/run_lock.py): a second ``train.py`` is refused in one line
while the first finishes, a killed holder's lock is taken over, and the lock goes when the run ends."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from selfsup.cli import train as train_cli
from selfsup.errors import RunDirInUse
from selfsup.pipeline import run
from selfsup.run_lock import LOCK, check_free, hold, holds, release
from tests.conftest import ROOT, TINY, launch
from tests.test_rerun import hashes
from tests.test_train_options import assert_complete_run_dir

# Holds RUN/.lock as another process would, until it is killed.
HOLDER = """
import fcntl, os, socket, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, f"{os.getpid()} {socket.gethostname()}\\n".encode())
print("held", flush=True)
time.sleep(600)
"""


def _wait_for_content(path: Path, proc: subprocess.Popen[str], seconds: float = 300) -> None:
    deadline = time.time() + seconds
    while not (path.is_file() and path.read_text().strip()):
        assert proc.poll() is None and time.time() < deadline, "the first process never took the lock"
        time.sleep(0.05)


def test_a_held_lock_refuses_and_a_killed_holders_is_taken_over(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir / LOCK)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        content = (run_dir / LOCK).read_bytes()
        message = (
            f"run directory {run_dir} is in use by pid {holder.pid} on host {socket.gethostname()} "
            f"({run_dir / LOCK}); wait for it or use another hydra.run.dir"
        )
        with pytest.raises(RunDirInUse) as e:
            check_free(run_dir)
        assert str(e.value) == message
        with pytest.raises(RunDirInUse):
            hold(run_dir)
        assert (run_dir / LOCK).read_bytes() == content and not holds(run_dir)  # the refused one wrote nothing
    finally:
        holder.send_signal(signal.SIGKILL)  # the kernel lets go of its lock; its file stays
        holder.wait()
    assert (run_dir / LOCK).read_bytes() == content
    with pytest.warns(UserWarning, match=rf"\.lock was left by pid {holder.pid} on host .*; taking it over"):
        assert hold(run_dir)
    assert (run_dir / LOCK).read_text() == f"{os.getpid()} {socket.gethostname()}\n"
    assert not hold(run_dir)  # held already: nothing to take
    check_free(run_dir)  # this process's own lock does not refuse it
    release(run_dir)
    assert not (run_dir / LOCK).exists() and not holds(run_dir)


def test_a_second_train_py_on_one_run_directory_is_refused_while_the_first_finishes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "train.py", *TINY, "trainer.max_epochs=2", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for_content(run_dir / LOCK, first)
        first.send_signal(signal.SIGSTOP)  # the first holds the lock, mid-run, while the second starts
        before = hashes(run_dir)
        second = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert hashes(run_dir) == before  # the second wrote nothing, not even Hydra's .hydra/ or log
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=600) == 0, (tmp_path / "first.log").read_text()[-3000:]
    assert second.returncode == 2, second.stderr[-3000:]
    assert second.stderr.strip().splitlines()[-1] == (
        f"error: run directory {run_dir} is in use by pid {first.pid} on host {socket.gethostname()} "
        f"({run_dir / LOCK}); wait for it or use another hydra.run.dir"
    )
    assert "Traceback" not in second.stderr
    assert_complete_run_dir(run_dir)
    with open(run_dir / "metrics.csv") as f:
        epochs = [r["epoch"] for r in csv.DictReader(f) if r.get("train/loss_epoch")]
    assert epochs == ["0", "1"]  # every epoch once, from the one process that wrote it
    assert not (run_dir / LOCK).exists()  # released at the end


def test_the_lock_is_held_while_the_run_writes_and_released_when_it_fails(composed, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    run_dir = tmp_path / "run"
    seen = []

    def fails_in_training(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append((run_dir / LOCK).read_text())
        raise RuntimeError("boom in training")

    monkeypatch.setattr("lightning.Trainer.fit", fails_in_training)
    with pytest.raises(RuntimeError, match="boom in training"):
        run(composed(), run_dir, loss_choice="ntxent")
    assert seen == [f"{os.getpid()} {socket.gethostname()}\n"]
    assert not (run_dir / LOCK).exists() and not holds(run_dir)
    assert (run_dir / "FAILED").is_file()


def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path: Path, monkeypatch, capfd) -> None:  # type: ignore[no-untyped-def]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / LOCK).write_text(f"999999999 {socket.gethostname()}\n")  # no such pid: a killed run's
    main = train_cli.main
    with pytest.warns(UserWarning, match=r"\.lock was left by pid 999999999 on host .*, which no longer holds it"):
        code, output = launch(main, [*TINY, f"hydra.run.dir={run_dir}"], monkeypatch, capfd)
    assert code == 0, output[-3000:]
    assert_complete_run_dir(run_dir)
    assert not (run_dir / LOCK).exists() and not holds(run_dir)
