"""scripts/collect.py on run directories with known results."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from selfsup.run_dir import load_runs
from selfsup.tools.collect import summarize, to_markdown
from tests.conftest import ROOT, run_python


def _fake_run(d: Path, loss: str, seed: int, top1: float, finished: bool = True, collapsed: bool = False) -> None:
    d.mkdir(parents=True)
    if not finished:
        (d / "FAILED").write_text("boom")
        return
    r = {
        "choices": {"loss": loss, "data": "digits"},
        "seed": seed,
        "pretrain_seconds": 10.0,
        "metrics": {"linear_top1": top1, "knn_top1": top1 - 1, "rankme_backbone": 5.0, "lidar_backbone": 3.0},
        "baselines": {"raw_pixels": {"linear_top1": 50.0 + seed, "knn_top1": 40.0, "rankme_backbone": 9.0}},
        "collapsed": collapsed,
    }
    (d / "results.json").write_text(json.dumps(r))


def test_groups_by_varying_choice_and_averages_seeds(tmp_path: Path) -> None:
    _fake_run(tmp_path / "0", "dcl", 0, 90.0)
    _fake_run(tmp_path / "1", "dcl", 1, 92.0)
    _fake_run(tmp_path / "2", "ntxent", 0, 80.0)
    _fake_run(tmp_path / "3", "ntxent", 1, 0.0, finished=False)
    group_by, rows = summarize(load_runs(tmp_path))
    assert group_by == ["loss"]
    by = {r["loss"]: r for r in rows}
    assert by["dcl"]["runs"] == 2 and by["dcl"]["linear_top1"] == pytest.approx(91.0)
    assert by["dcl"]["linear_top1_std"] == pytest.approx(2**0.5)
    assert by["ntxent"]["runs"] == 1 and by["ntxent"]["seeds"] == [0]

    csv_path = tmp_path / "out.csv"
    p = run_python(
        [sys.executable, "scripts/collect.py", str(tmp_path), "--csv", str(csv_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert "| dcl | 2 | 91.00 ± 1.41 |" in p.stdout
    assert csv_path.read_text().startswith("loss,runs,seeds,")


def test_empty_dir_is_an_error(tmp_path: Path) -> None:
    p = run_python(
        [sys.executable, "scripts/collect.py", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 2 and "no finished run" in p.stderr


def test_baselines_are_rows_of_their_own(tmp_path: Path) -> None:
    _fake_run(tmp_path / "0", "dcl", 0, 90.0)
    _fake_run(tmp_path / "1", "ntxent", 1, 80.0)
    p = run_python(
        [sys.executable, "scripts/collect.py", str(tmp_path), "--baselines"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    # Averaged over both runs (seeds 0 and 1); no LiDAR or pretraining time for a baseline.
    assert "| raw_pixels | 2 | 50.50 ± 0.71 | 40.00 ± 0.00 | 9.0 ± 0.0 | – | – |" in p.stdout, p.stdout


def test_group_by_dir_gives_one_row_per_sweep_folder(tmp_path: Path) -> None:
    """Options that are not config groups (loss.drop_top_k=2, say) are told apart by their folder."""
    for name, top1 in (("plain", 90.0), ("drop_top_k", 93.0)):
        for seed in (0, 1):
            _fake_run(tmp_path / name / str(seed), "ntxent", seed, top1 + seed)
    p = run_python(
        [sys.executable, "scripts/collect.py", str(tmp_path), "--group-by", "dir"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [line for line in p.stdout.splitlines() if line.startswith("| plain") or line.startswith("| drop_top_k")]
    assert len(rows) == 2 and "| 2 | 90.50 ± 0.71" in rows[1] and "| 2 | 93.50 ± 0.71" in rows[0], p.stdout


def test_a_group_with_collapsed_runs_says_how_many(tmp_path: Path) -> None:
    _fake_run(tmp_path / "0", "dcl", 0, 90.0)
    _fake_run(tmp_path / "1", "dcl", 1, 10.0, collapsed=True)
    _fake_run(tmp_path / "2", "ntxent", 0, 80.0)
    group_by, rows = summarize(load_runs(tmp_path))
    assert {r["loss"]: r["collapsed"] for r in rows} == {"dcl": 1, "ntxent": 0}
    md = to_markdown(rows, group_by)
    assert "| dcl | 2 (1 collapsed) | 50.00 ± 56.57 |" in md and "| ntxent | 1 | 80.00 ± 0.00 |" in md, md


def _with_config(d: Path, **settings: object) -> None:
    """A run's config.yaml: its own directory in run_dir and a logger's save_dir, plus ``settings``."""
    import yaml

    config: dict = {"run_dir": str(d), "seed": 0, "logger": {"csv": {"save_dir": str(d)}}, "trainer": {}}
    for key, value in settings.items():
        config["trainer"][key] = value
    (d / "config.yaml").write_text(yaml.safe_dump(config))


def test_runs_that_differ_in_more_than_the_seed_are_not_averaged(tmp_path: Path) -> None:
    """30 and 2 epochs are two rows, not '2 runs, mean ± std'; with --group-by, refused naming the key."""
    for name, seed, epochs, top1 in (("a", 0, 30, 90.0), ("b", 1, 30, 92.0), ("c", 0, 2, 40.0)):
        _fake_run(tmp_path / name, "dcl", seed, top1)
        _with_config(tmp_path / name, max_epochs=epochs)
    group_by, rows = summarize(load_runs(tmp_path))
    assert group_by == ["data", "trainer.max_epochs"]  # one data set: its column stays; the epochs split
    by = {r["trainer.max_epochs"]: r for r in rows}
    assert by["30"]["runs"] == 2 and by["30"]["linear_top1"] == pytest.approx(91.0) and by["2"]["runs"] == 1
    p = run_python([sys.executable, "scripts/collect.py", str(tmp_path), "--group-by", "loss"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [
        "error: --group-by loss would average runs that differ in trainer.max_epochs; add them to --group-by, "
        "or leave --group-by out to group by everything that differs"
    ]


def test_broken_runs_are_listed_and_the_rest_collected(tmp_path: Path) -> None:
    _fake_run(tmp_path / "ok", "dcl", 0, 90.0)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "results.json").write_text("")
    _fake_run(tmp_path / "zero", "dcl", 1, 10.0)
    results = json.loads((tmp_path / "zero" / "results.json").read_text())
    (tmp_path / "zero" / "results.json").write_text(json.dumps(results | {"steps": 0}))
    p = run_python([sys.executable, "scripts/collect.py", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "| digits | 1 | 90.00 ± 0.00 |" in p.stdout and "2 broken run(s), not counted:" in p.stdout
    assert f"| {tmp_path / 'empty'} | unreadable results.json (" in p.stdout
    assert f"| {tmp_path / 'zero'} | trained 0 steps |" in p.stdout


def test_a_run_directory_itself_is_collected_as_one_run(tmp_path: Path) -> None:
    """SWEEP_DIR may be one run's own directory (it holds results.json): one row, no traceback."""
    _fake_run(tmp_path / "run", "dcl", 0, 90.0)
    p = run_python([sys.executable, "scripts/collect.py", str(tmp_path / "run")], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)  # fmt: skip
    assert p.returncode == 0 and "| digits | 1 | 90.00 ± 0.00 |" in p.stdout, p.stdout + p.stderr
