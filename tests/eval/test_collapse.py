"""A collapsed run is reported: after each validation (log), in results.json and the printed table,
and with eval.stop_on_collapse=true it stops like the NaN guard."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from selfsup.eval.collapse import CollapseCheck, CollapseError, collapse_findings, rankme_bounds, rankme_threshold
from selfsup.eval.report import format_table
from selfsup.pipeline import run
from tests.test_cli import train

# A run driven into collapse: lr 100 (AdamW) makes SimCLR on digits embed every image alike from the
# first epoch on (backbone RankMe 1.09, projector 1.01 of 128 on the 450 held-out images), with a
# finite loss, so the NaN guard does not stop it (lr 1e6 does: NaN in the second epoch).
COLLAPSING = [
    "optim.optimizer.lr=100",
    "trainer.limit_train_batches=2",
    "data.batch_size=64",
    "eval.baselines=[]",
    "eval.probe_max_iter=50",
    "eval.probe_Cs=[1.0]",
    "eval.collapse.after_epochs=1",
]


def test_rankme_threshold_is_a_share_of_the_range_above_one() -> None:
    assert rankme_threshold(128, 0.02) == pytest.approx(1 + 0.02 * 127)  # 3.54
    assert rankme_threshold(8, 0.02) == pytest.approx(1.14)
    assert rankme_threshold(128, 0.0) == 1.0 and rankme_threshold(128, 1.0) == 128.0
    module = SimpleNamespace(eval_encoder=SimpleNamespace(num_features=128), eval_head=SimpleNamespace(out_dim=16))
    assert rankme_bounds(module, 450) == {"rankme_backbone": 128, "rankme_projector": 16}
    assert rankme_bounds(module, 40) == {"rankme_backbone": 40, "rankme_projector": 16}  # RankMe <= min(N, K)


def test_findings_name_the_metric_its_value_the_threshold_and_the_causes() -> None:
    bounds = {"rankme_backbone": 128, "rankme_projector": 128}
    (msg,) = collapse_findings({"rankme_backbone": 30.0, "rankme_projector": 1.3}, bounds, 0.02)
    assert msg.startswith("collapse: the projector's RankMe (rankme_projector) is 1.30, below 3.54")
    assert "optim.optimizer.lr" in msg and "loss.temperature" in msg and "predictor" in msg
    assert collapse_findings({"rankme_backbone": 3.55, "rankme_projector": 3.55}, bounds, 0.02) == []
    both = collapse_findings({"rankme_backbone": 3.5, "rankme_projector": math.nan}, bounds, 0.02)
    assert [m.split(")")[0] for m in both] == [
        "collapse: the backbone's RankMe (rankme_backbone",
        "collapse: the projector's RankMe (rankme_projector",
    ]
    assert collapse_findings({"rankme_backbone": 1.0}, bounds, 0.0) == []  # share 0: no RankMe check
    assert collapse_findings({}, {}, 0.02) == []  # nothing measured, nothing judged


def test_the_online_probe_at_chance_is_a_finding() -> None:
    # 10 classes: chance 10 %, margin 5 points: 15 % or less is chance.
    (msg,) = collapse_findings({}, {}, 0.02, online_top1=15.0, num_classes=10, probe_chance_margin=5.0)
    assert "online probe (val/online_top1) is at chance, 15.00 % <= 10.00 %" in msg and "optim.optimizer.lr" in msg
    assert collapse_findings({}, {}, 0.02, online_top1=15.1, num_classes=10, probe_chance_margin=5.0) == []
    assert collapse_findings({}, {}, 0.02, online_top1=None, num_classes=10) == []


class FakeRankMe:
    """Stands for RankMeCallback: ``take`` gives the figures of the last validation once."""

    def __init__(self) -> None:
        self.pending: tuple[dict[str, float], int] | None = None

    def take(self) -> tuple[dict[str, float], int] | None:
        out, self.pending = self.pending, None
        return out


def _trainer(epoch: int, **metrics: float) -> Any:
    return SimpleNamespace(
        sanity_checking=False,
        is_global_zero=True,
        current_epoch=epoch,
        global_step=10 * (epoch + 1),
        callback_metrics=metrics,
        strategy=SimpleNamespace(reduce_boolean_decision=lambda decision, all=True: decision),
    )


def test_the_callback_judges_fresh_figures_after_the_grace_epochs(caplog: pytest.LogCaptureFixture) -> None:
    module = SimpleNamespace(eval_encoder=SimpleNamespace(num_features=128), eval_head=SimpleNamespace(out_dim=128))
    rankme = FakeRankMe()
    check = CollapseCheck(10, rankme_share=0.02, probe_chance_margin=5.0, after_epochs=2, rankme=rankme)  # type: ignore[arg-type]
    collapsed = {"rankme_backbone": 1.09, "rankme_projector": 40.0}

    rankme.pending = (collapsed, 450)
    check.on_validation_end(_trainer(0, **{"val/online_top1": 10.0}), module)  # type: ignore[arg-type]
    assert check.findings == [] and not caplog.records  # the first epoch is not judged (after_epochs=2)
    assert rankme.pending is None  # and its figures are not judged later either

    rankme.pending = (collapsed, 450)
    check.on_validation_end(_trainer(1, **{"val/online_top1": 80.0}), module)  # type: ignore[arg-type]
    assert [f.split(" is ")[0] for f in check.findings] == ["collapse: the backbone's RankMe (rankme_backbone)"]
    assert "after epoch 1: collapse: the backbone's RankMe (rankme_backbone) is 1.09, below 3.54" in caplog.text

    caplog.clear()
    check.on_validation_end(_trainer(2, **{"val/online_top1": 80.0}), module)  # type: ignore[arg-type]
    assert check.findings == [] and not caplog.records  # RankMe not measured this time: nothing stale judged

    check.on_validation_end(_trainer(3, **{"val/online_top1": 12.0}), module)  # type: ignore[arg-type]
    assert len(check.findings) == 1 and "at chance" in check.findings[0]


def test_stop_on_collapse_raises_after_a_collapsed_validation() -> None:
    module = SimpleNamespace(eval_encoder=SimpleNamespace(num_features=128), eval_head=SimpleNamespace(out_dim=128))
    rankme = FakeRankMe()
    check = CollapseCheck(10, after_epochs=1, stop=True, rankme=rankme)  # type: ignore[arg-type]
    rankme.pending = ({"rankme_backbone": 30.0, "rankme_projector": 30.0}, 450)
    check.on_validation_end(_trainer(0), module)  # type: ignore[arg-type]  # healthy: goes on
    rankme.pending = ({"rankme_backbone": 30.0, "rankme_projector": 1.0}, 450)
    with pytest.raises(CollapseError, match=r"collapsed after epoch 1, step 20 \(eval.stop_on_collapse=true\)"):
        check.on_validation_end(_trainer(1), module)  # type: ignore[arg-type]


def test_format_table_marks_a_collapsed_row() -> None:
    rows = {"pretrained": {"linear_top1": 10.0, "knn_top1": 10.0, "rankme_backbone": 1.0}}
    assert "| pretrained (collapsed) | 10.00 |" in format_table(rows, collapsed=["pretrained"])
    assert "| pretrained | 10.00 |" in format_table(rows)


def test_the_end_of_run_judgement_reaches_results_and_report(composed, tmp_path, capsys, caplog) -> None:  # type: ignore[no-untyped-def]
    # Every RankMe is below a share of 1 (the whole range): the run is judged collapsed at its end.
    overrides = ("eval.baselines=[]", "eval.collapse.rankme_share=1.0", "eval.collapse.after_epochs=1")
    results = run(composed(*overrides), tmp_path / "a", loss_choice="ntxent")
    assert results["collapsed"] is True and results["warnings"][0].startswith("collapse: the backbone's RankMe")
    on_disk = json.loads((tmp_path / "a" / "results.json").read_text())
    assert on_disk["collapsed"] is True and on_disk["warnings"] == results["warnings"]
    out = capsys.readouterr().out
    assert "| pretrained (collapsed) |" in out and "WARNING: collapse" in out
    assert any("collapse" in r.getMessage() for r in caplog.records)
    # One epoch is fewer than eval.collapse.after_epochs (10): not judged, whatever the RankMe.
    short = run(composed("eval.baselines=[]", "eval.collapse.rankme_share=1.0"), tmp_path / "b", loss_choice="ntxent")
    assert short["collapsed"] is None and short["warnings"] == []
    assert "| pretrained |" in capsys.readouterr().out


def test_a_run_driven_into_collapse_is_warned_and_marked(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    p = train(*COLLAPSING, "trainer.max_epochs=2", run_dir=run_dir)
    assert p.returncode == 0, p.stderr[-3000:]
    output = p.stdout + p.stderr
    # After each validation (epochs 0 and 1), naming the metric, and again at the end.
    for epoch in (0, 1):
        assert f"after epoch {epoch}: collapse: the backbone's RankMe (rankme_backbone) is 1." in output
        assert f"after epoch {epoch}: collapse: the projector's RankMe (rankme_projector) is 1." in output
    assert "below 3.54 = 1 + eval.collapse.rankme_share=0.02 x (128 - 1)" in output
    assert "| pretrained (collapsed) |" in p.stdout and "WARNING: collapse" in p.stdout
    results = json.loads((run_dir / "results.json").read_text())
    assert results["collapsed"] is True and results["epochs"] == 2
    assert results["metrics"]["rankme_backbone"] < 3.54
    assert "after epoch 1: collapse" in (run_dir / "train.log").read_text()


def test_stop_on_collapse_stops_the_run_like_the_nan_guard(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    p = train(*COLLAPSING, "trainer.max_epochs=4", "eval.stop_on_collapse=true", run_dir=run_dir)
    assert p.returncode != 0
    failed = (run_dir / "FAILED").read_text()
    assert "CollapseError: collapsed after epoch 0, step 2 (eval.stop_on_collapse=true): stopped" in failed
    assert "rankme_backbone" in failed and "optim.optimizer.lr" in failed
    assert not (run_dir / "results.json").exists()
    # Stopped at the first validation, before that epoch's checkpoint (of 4 epochs).
    epochs = {line.split(",")[0] for line in (run_dir / "metrics.csv").read_text().splitlines()[1:]}
    assert epochs == {"0"}
    assert not (run_dir / "checkpoints" / "last.ckpt").exists()
