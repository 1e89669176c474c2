"""temperatures.png: a run whose loss learns temperatures draws them; other runs write no plot."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from selfsup.pipeline import run
from selfsup.plots import TEMPERATURES, _columns, plot_temperatures

QUIET = ("eval.baselines=[]", "eval.metrics.enabled=false")


def test_the_tau_columns_are_read_and_drawn(tmp_path: Path) -> None:
    csv = tmp_path / "metrics.csv"
    csv.write_text(
        "epoch,step,train/loss,train/tau_median,train/tau_max\n0,0,5.0,0.2,\n0,1,4.0,0.3,0.5\n0,2,3.0,,nan\n"
    )
    assert _columns(csv, "train/tau_") == {"train/tau_median": [(0.0, 0.2), (1.0, 0.3)], "train/tau_max": [(1.0, 0.5)]}
    assert plot_temperatures(csv, tmp_path / "t.png")
    assert Image.open(tmp_path / "t.png").size[0] > 100
    csv.write_text("epoch,step,train/loss\n0,0,5.0\n")
    assert not plot_temperatures(csv, tmp_path / "none.png") and not (tmp_path / "none.png").exists()
    assert not plot_temperatures(tmp_path / "missing.csv", tmp_path / "none.png")


def test_amcl_and_isogclr_runs_plot_their_temperatures_and_ntxent_does_not(composed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for name, overrides in {"amcl": ("loss=amcl", "head=multi"), "isogclr": ("loss=isogclr",)}.items():
        run(composed(*overrides, *QUIET), tmp_path / name, loss_choice=name)
        assert (tmp_path / name / TEMPERATURES).is_file(), name
    run(composed(*QUIET), tmp_path / "ntxent", loss_choice="ntxent")
    assert not (tmp_path / "ntxent" / TEMPERATURES).exists()
