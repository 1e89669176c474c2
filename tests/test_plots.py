"""curves.png (every run: loss, online probe, RankMe, LiDAR by epoch) and temperatures.png (a run
whose loss learns temperatures draws them; other runs write no such plot)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from selfsup.pipeline import run
from selfsup.plots import CURVES, TEMPERATURES, _columns, plot_curves, plot_temperatures

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
    assert Image.open(tmp_path / "ntxent" / CURVES).size[0] > 100  # every run: its loss (metrics off here)


def test_curves_draw_a_panel_for_each_logged_series(tmp_path: Path) -> None:
    csv = tmp_path / "metrics.csv"
    csv.write_text(
        "epoch,step,train/loss_epoch,train/loss_step,val/online_top1,val/rankme_backbone\n"
        "0,0,,5.0,,\n0,9,4.5,,40.0,12.0\n1,19,3.5,,60.0,15.0\n"
    )
    assert _columns(csv, "val/", x="epoch") == {
        "val/online_top1": [(0.0, 40.0), (1.0, 60.0)],
        "val/rankme_backbone": [(0.0, 12.0), (1.0, 15.0)],
    }
    assert plot_curves(csv, tmp_path / "c.png")
    three = Image.open(tmp_path / "c.png").size[0]
    csv.write_text("epoch,step,train/loss_epoch\n0,9,4.5\n1,19,3.5\n")
    assert plot_curves(csv, tmp_path / "one.png")
    assert Image.open(tmp_path / "one.png").size[0] * 2.5 < three  # one panel, not three
    csv.write_text("epoch,step,final/linear_top1\n0,9,90.0\n")
    assert not plot_curves(csv, tmp_path / "none.png") and not (tmp_path / "none.png").exists()
