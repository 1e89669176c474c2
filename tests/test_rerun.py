"""A run directory that holds a run, through ``train.py`` (Hydra's callback, then the pipeline): a
finished run is read-only, a resume needs the run's own config, and a refused or idle attempt
changes no byte (every file of the run directory hashed before and after)."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra

from selfsup.cli import train as train_cli
from selfsup.resume import LossNotFinite
from tests.conftest import TINY, launch
from tests.test_train_options import assert_complete_run_dir


@pytest.fixture(scope="module")
def train_main() -> Callable[[], object]:
    return train_cli.main


def hashes(run_dir: Path) -> dict[str, str]:
    """sha256 of every file below ``run_dir``, by relative path."""
    return {
        str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file()
    }


def _train(main: Callable[[], object], argv: list[str]) -> int:
    """``python train.py ARGV`` in this process (for a module's fixture): its exit status."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", ["train.py", *argv])
        GlobalHydra.instance().clear()
        try:
            main()
        except SystemExit as e:  # how train.py and Hydra report a failed run
            return e.code if isinstance(e.code, int) else 1
        finally:
            GlobalHydra.instance().clear()
    return 0


@pytest.fixture(scope="module")
def finished(train_main, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """A finished TINY run (1 epoch)."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    assert _train(train_main, [*TINY, f"hydra.run.dir={run_dir}"]) == 0
    return run_dir


def _killed_in_epoch_1(self, trainer, module, outputs, batch, i) -> None:  # type: ignore[no-untyped-def]
    if trainer.global_step > 2:  # TINY: 2 steps per epoch; epoch 0's checkpoint is written
        raise LossNotFinite("killed in epoch 1")


@pytest.fixture(scope="module")
def unfinished(train_main, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """A TINY run of 2 epochs stopped in its second: ``FAILED`` and epoch 0's checkpoint."""
    run_dir = tmp_path_factory.mktemp("unfinished") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("selfsup.resume.FiniteLoss.on_train_batch_end", _killed_in_epoch_1)
        assert _train(train_main, [*TINY, "trainer.max_epochs=2", f"hydra.run.dir={run_dir}"]) == 2
    assert (run_dir / "FAILED").is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()
    return run_dir


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    """A copy of a module's run to change: a moved run directory, which is the same run."""
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


# (id, overrides, exit status, what the output's last line holds).
FINISHED = [
    (
        "another-config",
        ["loss.temperature=0.5", "trainer.max_epochs=3"],
        2,
        "with another config: loss.temperature (0.2 -> 0.5), trainer.max_epochs (1 -> 3); a finished run is not "
        "changed: use another hydra.run.dir for a new run, or resume=never to start this one over there",
    ),
    ("more-epochs", ["trainer.max_epochs=2"], 2, "with another config: trainer.max_epochs (1 -> 2);"),
    ("same-config", [], 0, "results: "),
]


@pytest.mark.parametrize("overrides,code,last", [c[1:] for c in FINISHED], ids=[c[0] for c in FINISHED])
def test_a_finished_run_is_read_only(train_main, finished, overrides, code, last, tmp_path, monkeypatch, capfd) -> None:  # type: ignore[no-untyped-def]
    run_dir = _copy(finished, tmp_path)
    before = hashes(run_dir)
    got, output = launch(train_main, [*TINY, *overrides, f"hydra.run.dir={run_dir}"], monkeypatch, capfd)
    assert got == code, output[-3000:]
    assert last in output.strip().splitlines()[-1], output[-3000:]
    assert "Traceback" not in output
    assert hashes(run_dir) == before
    if code == 0:
        assert f"{run_dir} holds the finished run of this config: nothing to do" in output
        assert "| pretrained |" in output  # its table, from results.json
        assert output.strip().endswith(str(run_dir / "results.json"))


UNFINISHED = [
    ("other-model", ["head.out_dim=64"], "unfinished run with another config: head.out_dim (128 -> 64);"),
    ("more-epochs", ["trainer.max_epochs=3"], "unfinished run with another config: trainer.max_epochs (2 -> 3);"),
]


@pytest.mark.parametrize("overrides,last", [c[1:] for c in UNFINISHED], ids=[c[0] for c in UNFINISHED])
def test_an_unfinished_run_resumes_only_with_its_config(
    train_main, unfinished, overrides, last, tmp_path, monkeypatch, capfd
) -> None:  # type: ignore[no-untyped-def]
    run_dir = _copy(unfinished, tmp_path)
    before = hashes(run_dir)
    argv = [*TINY, "trainer.max_epochs=2", *overrides, f"hydra.run.dir={run_dir}"]
    code, output = launch(train_main, argv, monkeypatch, capfd)
    assert code == 2, output[-3000:]
    line = output.strip().splitlines()[-1]
    assert line.startswith("error: ") and last in line and "resume=never" in line, line
    assert "Traceback" not in output
    assert hashes(run_dir) == before


def test_an_unfinished_run_resumes_with_its_config(train_main, unfinished, tmp_path, monkeypatch, capfd) -> None:  # type: ignore[no-untyped-def]
    run_dir = _copy(unfinished, tmp_path)  # moved: run_dir in its config.yaml is the old path
    code, output = launch(train_main, [*TINY, "trainer.max_epochs=2", f"hydra.run.dir={run_dir}"], monkeypatch, capfd)
    assert code == 0, output[-3000:]
    assert f"resuming from {run_dir / 'checkpoints' / 'last.ckpt'}" in output
    assert assert_complete_run_dir(run_dir)["epochs"] == 2


def test_a_checkpoint_of_another_model_is_refused_before_anything_is_written(
    train_main, unfinished, tmp_path, monkeypatch, capfd
) -> None:  # type: ignore[no-untyped-def]
    """A checkpoint from elsewhere (no config.yaml to compare) is read before the run starts."""
    ckpt, run_dir = unfinished / "checkpoints" / "last.ckpt", tmp_path / "new"
    argv = [*TINY, "head.out_dim=64", f"resume={ckpt}", f"hydra.run.dir={run_dir}"]
    code, output = launch(train_main, argv, monkeypatch, capfd)
    assert code == 2, output[-3000:]
    line = output.strip().splitlines()[-1]
    assert line.startswith(f"error: {ckpt} holds another model than this config ("), line
    assert re.search(r"\(head\.net\.\d+\.\w+ is \(128,.*\) there, \(64,.*\) in this config's model\)", line), line
    assert not run_dir.exists()  # the directory Hydra made is gone again


def test_resume_never_starts_a_finished_run_over(train_main, finished, tmp_path, monkeypatch, capfd) -> None:  # type: ignore[no-untyped-def]
    run_dir = _copy(finished, tmp_path)
    old = hashes(run_dir)
    argv = [*TINY, "loss.temperature=0.5", "resume=never", f"hydra.run.dir={run_dir}"]
    code, output = launch(train_main, argv, monkeypatch, capfd)
    assert code == 0, output[-3000:]
    assert (
        f"resume=never: starting {run_dir} over; removed the earlier attempt's results.json, metrics.csv, "
        "checkpoints, export" in output
    )
    assert "temperature: 0.5" in (run_dir / "config.yaml").read_text()
    new = hashes(run_dir)
    assert new["results.json"] != old["results.json"]
    assert "checkpoints/last.previous.ckpt" not in new  # the old run's checkpoint is not the new one's fallback
    with open(run_dir / "metrics.csv") as f:
        epochs = [r["epoch"] for r in csv.DictReader(f) if r.get("train/loss_epoch")]
    assert epochs == ["0"]  # the new run's one epoch, not the old run's rows besides it
    assert json.loads((run_dir / "results.json").read_text())["choices"]["loss"] == "ntxent"
