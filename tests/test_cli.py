"""`python train.py ...` as a user types it, in a subprocess, and the errors a user sees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from selfsup.cli import probe as probe_cli
from tests.conftest import ROOT, TINY, run_python

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "WANDB_MODE": "offline"}


def train(*args: str, run_dir: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    extra = [f"hydra.run.dir={run_dir}"] if run_dir else []
    return run_python(
        [sys.executable, "train.py", *args, *extra],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_simclr_dcl_from_the_command_line(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    p = train("method=simclr", "loss=dcl", *TINY, "eval.baselines=[random_init,raw_pixels]", run_dir=run_dir)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "| pretrained |" in p.stdout and "| random_init |" in p.stdout and "| raw_pixels |" in p.stdout
    assert f"run directory: {run_dir}" in p.stdout
    assert "pretraining" in p.stdout  # the epoch progress bar
    results = json.loads((run_dir / "results.json").read_text())
    assert results["choices"]["loss"] == "dcl" and results["choices"]["method"] == "simclr"
    assert results["collapsed"] is None  # 1 epoch: too short to judge (eval.collapse.after_epochs)
    assert (run_dir / "config.yaml").read_text().count("_target_: selfsup.losses.DCL") == 1


def test_mistyped_override_names_the_key(tmp_path: Path) -> None:
    p = train("loss.temprature=0.1", run_dir=tmp_path / "run")
    assert p.returncode != 0
    assert "temprature" in p.stderr and "not in struct" in p.stderr
    assert not (tmp_path / "run" / "results.json").exists()


def test_unknown_option_lists_the_valid_ones(tmp_path: Path) -> None:
    p = train("loss=infonce", run_dir=tmp_path / "run")
    assert p.returncode != 0
    assert "Could not find 'loss/infonce'" in p.stderr
    assert "Available options in 'loss'" in p.stderr and "dclw" in p.stderr and "ntxent" in p.stderr


def test_method_loss_mismatch_from_the_command_line(tmp_path: Path) -> None:
    p = train("method.losses=[ntxent]", "loss=dclw", run_dir=tmp_path / "run")
    assert p.returncode != 0
    assert p.returncode == 2 and p.stderr.strip().splitlines()[-1].startswith("error: method=simclr does not accept")
    assert not (tmp_path / "run").exists()  # refused before Hydra made the run directory


def test_linear_probe_script_reevaluates_a_run(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    assert train(*TINY, run_dir=run_dir).returncode == 0
    trained = json.loads((run_dir / "results.json").read_text())["metrics"]
    p = run_python(
        [sys.executable, "scripts/linear_probe.py", str(run_dir), "eval.baselines=[]"],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    probe = json.loads((run_dir / "probe.json").read_text())
    assert probe["pretrained"]["linear_top1"] == pytest.approx(trained["linear_top1"])
    assert probe["pretrained"]["rankme_backbone"] == pytest.approx(trained["rankme_backbone"], rel=1e-6)
    bad = run_python(
        [sys.executable, "scripts/linear_probe.py", str(tmp_path / "nope")],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'nope'}")

    # Overrides are checked as train.py checks its own, and a FAILED run is refused: one line each,
    # before anything is written (probe.json stays as it is).
    main = probe_cli.main
    before = (run_dir / "probe.json").read_bytes()
    cases = [
        (["eval.bogus=1"], "error: eval.bogus: the run's config"),
        (["eval.knn_k=0"], "error: eval.knn_k=0: must be greater than 0"),
        (["eval.knn_k"], "error: 'eval.knn_k': expected key=value"),
    ]
    for overrides, line in cases:
        with pytest.raises(SystemExit) as e:
            main([str(run_dir), *overrides])
        err = capfd.readouterr().err.strip().splitlines()
        assert e.value.code == 2 and len(err) == 1 and err[0].startswith(line), (overrides, err)
    (run_dir / "FAILED").write_text("Traceback ...\nLossNotFinite: loss is nan\n")
    with pytest.raises(SystemExit):
        main([str(run_dir)])
    assert "is a FAILED run (LossNotFinite: loss is nan); --unfinished" in capfd.readouterr().err
    assert (run_dir / "probe.json").read_bytes() == before
