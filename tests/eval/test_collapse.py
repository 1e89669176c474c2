"""A collapsed run is reported: in the log, the printed report and results.json."""

from __future__ import annotations

import json

from selfsup.eval.report import collapse_warning
from selfsup.pipeline import run


def test_collapse_warning_reads_the_projectors_rankme() -> None:
    assert collapse_warning({"rankme_projector": 1.3}, 4.0) is not None
    assert "RankMe is 1.30 (< eval.collapse_rankme=4)" in str(collapse_warning({"rankme_projector": 1.3}, 4.0))
    assert collapse_warning({"rankme_projector": 4.0}, 4.0) is None
    assert collapse_warning({"rankme_backbone": 1.0}, 4.0) is None  # no projector: nothing to judge


def test_a_run_below_the_threshold_warns_in_the_report(composed, tmp_path, capsys, caplog) -> None:  # type: ignore[no-untyped-def]
    results = run(composed("eval.baselines=[]", "eval.collapse_rankme=1e9"), tmp_path / "a", loss_choice="ntxent")
    assert len(results["warnings"]) == 1 and results["warnings"][0].startswith("collapse: the projector's RankMe")
    assert json.loads((tmp_path / "a" / "results.json").read_text())["warnings"] == results["warnings"]
    assert "WARNING: collapse" in capsys.readouterr().out
    assert any("collapse" in r.getMessage() for r in caplog.records)
    healthy = run(composed("eval.baselines=[]", "eval.collapse_rankme=0"), tmp_path / "b", loss_choice="ntxent")
    assert healthy["warnings"] == []
