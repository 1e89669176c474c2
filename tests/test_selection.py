"""Label-free selection on run directories whose metrics are known."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from selfsup.cli import select_runs as select_runs_cli
from selfsup.run_dir import load_runs
from selfsup.tools.selection import evaluate_selection, varying_settings
from tests.conftest import ROOT, run_python


def _run(d: Path, tau: float, probe: float, rankme: float, lidar: float) -> None:
    d.mkdir(parents=True)
    cfg = {"seed": 0, "loss": {"temperature": tau, "_target_": "selfsup.losses.NTXent"}, "run_dir": str(d)}
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    metrics = {
        "linear_top1": probe,
        "rankme_backbone": rankme,
        "rankme_projector": rankme,
        "lidar_backbone": lidar,
        "lidar_projector": -lidar,
    }
    (d / "results.json").write_text(json.dumps({"choices": {}, "seed": 0, "metrics": metrics}))


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    # RankMe orders the runs exactly as the probe does; LiDAR (backbone) in reverse.
    for i, (probe, rankme, lidar) in enumerate([(90.0, 30.0, 1.0), (85.0, 20.0, 2.0), (80.0, 10.0, 3.0)]):
        _run(tmp_path / str(i), 0.1 * (i + 1), probe, rankme, lidar)
    (tmp_path / "unfinished").mkdir()
    return tmp_path


def test_tau_and_picks(sweep: Path) -> None:
    runs = load_runs(sweep)
    keys, values = varying_settings(runs)
    assert keys == ["loss.temperature"]
    assert [v["loss.temperature"] for v in values] == pytest.approx([0.1, 0.2, 0.3])
    reps = {r.metric: r for r in evaluate_selection(runs)}
    assert reps["rankme_backbone"].tau == pytest.approx(1.0)
    assert reps["rankme_backbone"].picked_probe == 90.0 == reps["rankme_backbone"].best_probe
    assert reps["lidar_backbone"].tau == pytest.approx(-1.0)
    assert reps["lidar_backbone"].picked_probe == 80.0
    assert reps["lidar_projector"].tau == pytest.approx(1.0)


def test_script_prints_tables_and_writes_the_plot(sweep: Path) -> None:
    p = run_python(
        [sys.executable, "scripts/select_runs.py", str(sweep)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 0, p.stderr
    assert "| 0 | 0.1 | 90.00 (#1) | 30.00 (#1) |" in p.stdout
    assert "| lidar backbone | -1.00 |" in p.stdout and "| 80.00 | 90.00 | 10.00 |" in p.stdout
    png = sweep / "selection.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args,line",
    [
        (["{sweep}/nope"], "{sweep}/nope: no such folder (expected a sweep's folder of run directories)"),
        (["{sweep}", "--plot", "{sweep}/0"], "--plot {sweep}/0 is a folder; expected the path of a .png file"),
        (["{sweep}", "--history", "{sweep}/no/h.png"], "--history {sweep}/no/h.png: there is no folder {sweep}/no"),
    ],
    ids=["no-folder", "plot-is-a-folder", "history-folder-missing"],
)
def test_bad_arguments_are_one_line_and_write_nothing(sweep: Path, args: list[str], line: str, capsys) -> None:  # type: ignore[no-untyped-def]
    before = sorted(p.relative_to(sweep) for p in sweep.rglob("*"))
    with pytest.raises(SystemExit) as e:
        select_runs_cli.main([a.format(sweep=sweep) for a in args])
    out = capsys.readouterr()
    assert e.value.code == 2 and out.out == ""
    assert out.err.strip().splitlines() == [out.err.strip()] and line.format(sweep=sweep) in out.err
    assert sorted(p.relative_to(sweep) for p in sweep.rglob("*")) == before
