"""What a run prints besides its own lines (Lightning's notices only with verbose=true; the
progress bar over the run's steps), and ``python train.py --help`` (the config groups with their
options, and examples)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, TINY, run_python

NOTICES = ("GPU available", "TPU available", "litlogger", "was configured so 100%", "smaller than the logging interval")


@pytest.mark.readme  # the README's `verbose=true`, in fresh interpreters: make test-readme (CI runs it)
def test_lightning_notices_only_with_verbose(tmp_path: Path) -> None:
    """Fresh processes (not tests/command_server.py's forks): in this one other tests' runs have
    configured Lightning's loggers, and in the server Lightning is imported before Hydra configures
    logging, which disables the loggers that exist by then."""

    def train(*extra: str) -> str:
        argv = [sys.executable, "train.py", *TINY, "eval.baselines=[]", "trainer.log_every_n_steps=50", *extra]
        p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-3000:]
        return p.stdout + p.stderr

    out = train(f"hydra.run.dir={tmp_path / 'quiet'}")
    assert "run directory:" in out, out[-2000:]
    assert not [n for n in NOTICES if n in out], out
    # One bar over the run's steps (2 batches in 1 epoch here), labelled with the epoch.
    assert "epoch 1/1" in out and "2/2 [" in out, out
    out = train("verbose=true", f"hydra.run.dir={tmp_path / 'verbose'}")
    assert "GPU available" in out and "was configured so 100%" in out, out


def test_help_lists_the_groups_their_options_and_examples() -> None:
    p = run_python([sys.executable, "train.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) < 60, len(lines)
    for group in sorted(d.name for d in (ROOT / "configs").iterdir() if d.is_dir()):
        options = sorted(f.stem for f in (ROOT / "configs" / group).glob("*.yaml"))
        assert f"{group}: {', '.join(options)}" in lines, group
    examples = [line for line in lines if line.startswith("python train.py ") and "=" in line]
    assert len(examples) >= 3, examples
