"""launcher=slurm against a real single-node SLURM started by scripts/slurm_local.sh (needs root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, TINY
from tests.test_readme import _train_argv, readme_commands
from tests.test_train_options import assert_complete_run_dir

pytestmark = pytest.mark.slurm


def _slurm_idle() -> bool:
    if shutil.which("sinfo") is None:
        return False
    p = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    return p.returncode == 0 and "idle" in p.stdout.split()


@pytest.fixture(scope="module")
def slurm() -> Iterator[None]:
    """A running, idle SLURM: the one there is, or one started here (and stopped afterwards)."""
    script = ["bash", str(ROOT / "scripts" / "slurm_local.sh")]
    started = False
    if not _slurm_idle():
        if os.geteuid() != 0:
            pytest.skip("needs root to start SLURM (scripts/slurm_local.sh start), or a running idle SLURM")
        p = subprocess.run([*script, "start"], capture_output=True, text=True)
        assert p.returncode == 0, p.stdout + p.stderr
        started = True
    assert _slurm_idle()
    yield
    if started:
        subprocess.run([*script, "stop"], capture_output=True, text=True)


def test_readme_slurm_sweep_runs_as_slurm_jobs_and_every_run_dir_is_complete(slurm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The README's `launcher=slurm` command, with tiny training settings, on the local SLURM."""
    readme = next(c for c in readme_commands() if "launcher=slurm" in c)
    sweep = tmp_path / "sweep"
    p = subprocess.run(_train_argv(readme, sweep, {}), cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    runs = sorted((r for r in sweep.iterdir() if r.is_dir() and not r.name.startswith(".")), key=lambda r: int(r.name))
    assert len(runs) == 6, [r.name for r in runs]  # loss=ntxent,dcl x seed=0,1,2
    for r in runs:
        assert_complete_run_dir(r)
    # They ran under SLURM: submitit kept each job's SLURM output.
    logs = list((sweep / ".submitit").rglob("*_log.out"))
    assert len(logs) == 6, logs
    collected = subprocess.run([sys.executable, "scripts/collect.py", str(sweep)], cwd=ROOT, capture_output=True,
                               text=True)  # fmt: skip
    assert "| ntxent | 3 |" in collected.stdout and "| dcl | 3 |" in collected.stdout


def test_two_slurm_tasks_form_one_ddp_run(slurm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """One job of 2 tasks (srun): Lightning reads SLURM_PROCID/SLURM_NTASKS and the tasks form DDP."""
    sweep = tmp_path / "sweep"
    overrides = [
        "launcher=slurm",
        "hydra.launcher.tasks_per_node=2",
        "hydra.launcher.cpus_per_task=1",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.sync_batchnorm=false",
        "trainer.precision=32-true",
        "loss=dcl",
        *TINY,
        f"hydra.sweep.dir={sweep}",
    ]
    p = subprocess.run([sys.executable, "train.py", "-m", *overrides], cwd=ROOT, capture_output=True, text=True,
                       timeout=900)  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    results = assert_complete_run_dir(sweep / "0")
    assert results["world_size"] == 2
    logs = sorted((sweep / ".submitit").rglob("*_log.out"))
    assert len(logs) == 2, logs  # one log per task of the one job
