"""launcher=slurm against a real single-node SLURM started by scripts/slurm_local.sh (needs root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_readme import _train_argv, readme_commands
from tests.test_train_options import assert_complete_run_dir

pytestmark = pytest.mark.slurm


def _slurm_idle() -> bool:
    if shutil.which("sinfo") is None:
        return False
    p = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    return p.returncode == 0 and "idle" in p.stdout.split()


@pytest.fixture(scope="module")
def slurm() -> None:
    if not _slurm_idle():
        if os.geteuid() != 0:
            pytest.skip("needs root to start SLURM (scripts/slurm_local.sh start), or a running idle SLURM")
        p = subprocess.run(["bash", str(ROOT / "scripts" / "slurm_local.sh"), "start"], capture_output=True, text=True)
        assert p.returncode == 0, p.stdout + p.stderr
    assert _slurm_idle()


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
