"""scripts/reproduce.py: launching a table's missing runs, collecting them, ours beside theirs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from selfsup.tools.reproduce import (
    DCL_REPO,
    LIGHTLY,
    PUBLISHED,
    TABLES,
    Table,
    finished,
    load_published,
    missing,
    to_markdown,
)
from tests.conftest import FAST_OVERRIDES, ROOT, run_python
from tests.test_train_options import assert_complete_run_dir

SMALL = Table(
    name="small",
    experiment="dcl_batch_reduced",
    metric="linear_top1",
    protocol="linear probe",
    losses=("ntxent", "dcl"),
    batches=(32, 256),
    seeds=(0, 1),
    published=DCL_REPO,
    budget="test",
)


def _fake_run(
    folder: Path, loss: str, batch: int, seed: int, top1: float, experiment: str = "dcl_batch_reduced"
) -> None:
    d = folder / f"somewhere_{loss}_{batch}_{seed}"
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump({"data": {"batch_size": batch}}))
    choices = {"loss": loss, "experiment": experiment}
    (d / "results.json").write_text(json.dumps({"choices": choices, "seed": seed, "metrics": {"linear_top1": top1}}))


def test_collect_pairs_seeds_and_sets_ours_beside_the_published_numbers(tmp_path: Path) -> None:
    # ntxent: 80, 82 at batch 32; dcl: 85, 86 -> gap per seed 5 and 4: mean 4.5, std 0.71.
    for loss, seed, top1 in [("ntxent", 0, 80.0), ("ntxent", 1, 82.0), ("dcl", 0, 85.0), ("dcl", 1, 86.0)]:
        _fake_run(tmp_path, loss, 32, seed, top1)
    _fake_run(tmp_path, "dcl", 256, 0, 90.0)
    _fake_run(tmp_path, "ntxent", 256, 0, 99.0, experiment="other")  # another table's run: not counted
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "config.yaml").write_text("data: {batch_size: 256}\n")

    assert set(finished(tmp_path, SMALL)) == {("ntxent", 32, 0), ("ntxent", 32, 1), ("dcl", 32, 0), ("dcl", 32, 1),
                                              ("dcl", 256, 0)}  # fmt: skip
    assert missing(tmp_path, SMALL) == [("ntxent", 256, 0), ("ntxent", 256, 1), ("dcl", 256, 1)]
    md = to_markdown(finished(tmp_path, SMALL), SMALL)
    # SimCLR at 32: 81.00 ± 1.41 over 2 seeds; published 78.3, so +2.70.
    assert "| SimCLR (NT-Xent) | 32 | 81.00 ± 1.41 | 2 | 78.30 | +2.70 | linear |" in md
    assert "| DCL | 32 | 85.50 ± 0.71 | 2 | 84.60 | +0.90 | linear |" in md
    assert "| DCL | 256 | 90.00 ± 0.00 | 1 | 85.36 | +4.64 | linear |" in md
    # The published gap at 32 is 84.6 - 78.3 = 6.3; at 256 there is no SimCLR run of ours.
    assert "| 32 | +4.50 ± 0.71 | 2 | +6.30 |" in md
    assert "| 256 |" not in md.split("DCL − SimCLR, paired")[1]
    assert "changed the experiment config" not in md  # no record of other overrides


def test_runs_given_more_overrides_say_so(tmp_path: Path) -> None:
    _fake_run(tmp_path, "dcl", 32, 0, 85.0)
    _fake_run(tmp_path, "ntxent", 32, 0, 84.0)
    hydra = tmp_path / "somewhere_dcl_32_0" / ".hydra"
    hydra.mkdir()
    (hydra / "overrides.yaml").write_text(yaml.safe_dump(
        ["experiment=dcl_batch_reduced", "loss=dcl", "data.batch_size=32", "seed=0", "launcher=slurm",
         "trainer.max_epochs=50", "+trainer.fast_dev_run=false"]))  # fmt: skip
    md = to_markdown(finished(tmp_path, SMALL), SMALL)
    assert "1 of 2 runs changed the experiment config with `trainer.max_epochs=50 +trainer.fast_dev_run=false`." in md


def test_every_table_names_an_experiment_config_and_published_rows() -> None:
    for t in TABLES.values():
        assert (ROOT / "configs" / "experiment" / f"{t.experiment}.yaml").is_file(), t.name
        assert any((loss, b) in t.published.top1 for loss in t.losses for b in t.batches), t.name
        assert len(t.seeds) >= 1 and t.metric in ("linear_top1", "knn_top1")
    assert len(TABLES["dcl_batch_reduced"].seeds) >= 3  # the DCL claim needs seeds
    assert min(TABLES["dcl_batch_reduced"].batches) == 32 and max(TABLES["dcl_batch_reduced"].batches) == 512


def test_published_numbers_are_data_files_outside_the_configs() -> None:
    """docs/published/*.yaml, each naming its source; not under configs/ (Hydra would offer them as options)."""
    files = sorted(PUBLISHED.glob("*.yaml"))
    assert files and not PUBLISHED.resolve().is_relative_to(ROOT / "configs")
    for f in files:
        p = load_published(f.stem)
        assert p.source and p.reference and p.top1, f
        assert all(0 < v <= 100 for v in p.top1.values()), f
    loaded = [load_published(f.stem) for f in files]
    assert all(t.published in loaded for t in TABLES.values())
    assert DCL_REPO.top1[("ntxent", 32)] == 78.3 and DCL_REPO.top1[("dclw", 256)] == 82.7
    assert LIGHTLY.top1[("ntxent", 128)] == 84.7 and LIGHTLY.top1[("dclw", 512)] == 82.4


def _reproduce(tmp_path: Path, data_roots: dict[str, Path], *args: str) -> subprocess.CompletedProcess[str]:
    """The table's own batch sizes (a run is keyed by the batch size in its config), tiny otherwise."""
    tiny = [t for t in FAST_OVERRIDES if not t.startswith("data.batch_size=")]  # as overrides: the report names them
    cmd = [sys.executable, "scripts/reproduce.py", "dcl_batch_reduced", "--losses", "ntxent", "dcl",
           "--batches", "32", "--dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), *args,
           "--", *tiny, f"data.root={data_roots['fashion_mnist']}", "eval.metrics.every_n_epochs=1"]  # fmt: skip
    return run_python(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)


def test_reproduce_launches_missing_runs_then_only_collects(tmp_path: Path, data_roots: dict[str, Path]) -> None:
    p = _reproduce(tmp_path, data_roots, "--seeds", "0")
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    assert "0 of 2 runs finished; launching 2" in p.stdout
    for name in ("ntxent_b32_s0", "dcl_b32_s0"):
        assert_complete_run_dir(tmp_path / "runs" / name)
    md = (tmp_path / "out" / "dcl_batch_reduced.md").read_text()
    assert "2 of 2 runs changed the experiment config with `trainer.max_epochs=" in md  # the tiny budget, stated
    assert "| SimCLR (NT-Xent) | 32 |" in md and "| 1 | 78.30 |" in md and "| 1 | 84.60 |" in md
    assert "| 32 |" in md.split("DCL − SimCLR, paired")[1] and "| 1 | +6.30 |" in md
    assert (tmp_path / "out" / "dcl_batch_reduced.png").stat().st_size > 10_000
    # Again: everything is there, nothing is launched; a second seed is what is missing.
    p = _reproduce(tmp_path, data_roots, "--seeds", "0")
    assert p.returncode == 0 and "2 of 2 runs finished; launching 0" in p.stdout
    p = _reproduce(tmp_path, data_roots, "--seeds", "0", "1", "--collect-only")
    assert p.returncode == 0, p.stderr[-2000:]
    assert "2 of 4 runs not finished: ntxent_b32_s1, dcl_b32_s1" in p.stdout
    assert not (tmp_path / "runs" / "ntxent_b32_s1").exists()


def test_reproduce_refuses_what_the_table_does_not_have(tmp_path: Path) -> None:
    p = run_python([sys.executable, "scripts/reproduce.py", "dcl_batch_reduced", "--batches", "48"], cwd=ROOT,
                       capture_output=True, text=True)  # fmt: skip
    assert p.returncode == 2 and "--batches [48]: dcl_batch_reduced has [32, 128, 512]" in p.stderr


@pytest.mark.slurm
def test_reproduce_on_slurm(slurm, tmp_path: Path, data_roots: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    p = _reproduce(tmp_path, data_roots, "--seeds", "0", "--launcher", "slurm")
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    for name in ("ntxent_b32_s0", "dcl_b32_s0"):
        assert_complete_run_dir(tmp_path / "runs" / name)
    assert list((tmp_path / "runs" / ".submitit").rglob("*_log.out")), "not run through SLURM"
    assert "| DCL | 32 |" in (tmp_path / "out" / "dcl_batch_reduced.md").read_text()
