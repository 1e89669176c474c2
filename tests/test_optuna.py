"""sweeper=optuna: a study that maximises `objective` through the real Hydra Optuna sweeper, and
scripts/select_runs.py's report of it (the SLURM variant: tests/test_slurm.py)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from selfsup.run_dir import FAILED, RESULTS
from selfsup.sweep_metric import METRIC, sweep_metric_value
from tests.conftest import ROOT, TINY, run_python
from tests.test_train_options import assert_complete_run_dir


def study(sweep: Path, *overrides: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    # debug=fast (TINY) shortens every trial; a key in overrides wins over it.
    argv = [sys.executable, "train.py", "-m", "sweeper=optuna", *TINY, *overrides, f"hydra.sweep.dir={sweep}"]
    return run_python(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def trial_results(sweep: Path) -> dict[int, dict]:
    """Trial number -> its results.json, with its config.yaml under "config"."""
    return {
        int(p.parent.name): json.loads(p.read_text())
        | {"config": yaml.safe_load((p.parent / "config.yaml").read_text())}
        for p in sweep.glob(f"*/{RESULTS}")
    }


def check_study(sweep: Path, objective: str, trials: int) -> dict[int, dict]:
    """Every trial a complete run, the swept values differ, and the sweeper's best is the best run's."""
    results = trial_results(sweep)
    assert sorted(results) == list(range(trials)), sorted(results)
    for t in results:
        assert_complete_run_dir(sweep / str(t))
    swept = {(r["config"]["loss"]["temperature"], r["config"]["optim"]["optimizer"]["lr"]) for r in results.values()}
    assert len(swept) == trials  # TPE proposed a new point every time
    for temperature, lr in swept:
        assert 0.05 <= temperature <= 1.0 and 1e-4 <= lr <= 1e-2
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    values = {t: r["metrics"][METRIC[objective]] for t, r in results.items()}
    top = max(values, key=lambda t: values[t])
    assert best["best_value"] == pytest.approx(values[top], rel=1e-9)
    assert best["best_params"]["loss.temperature"] == pytest.approx(results[top]["config"]["loss"]["temperature"])
    return results


def test_a_local_study_of_8_trials_maximises_the_named_objective_and_select_runs_reports_it(tmp_path: Path) -> None:
    sweep = tmp_path / "study"
    p = study(sweep, "objective=rankme", "hydra.sweeper.n_trials=8")
    assert p.returncode == 0, p.stderr[-3000:]
    check_study(sweep, "rankme", 8)
    s = run_python([sys.executable, "scripts/select_runs.py", str(sweep)], cwd=ROOT, capture_output=True,
                       text=True)  # fmt: skip
    assert s.returncode == 0, s.stderr
    assert "Optuna study: 8 trials (8 finished), objective rankme" in s.stdout, s.stdout
    for how in ("| rankme |", "| lidar |", "| linear probe (labels) |"):
        assert how in s.stdout, s.stdout
    assert "| rankme backbone |" in s.stdout and "Kendall τ" in s.stdout
    assert (sweep / "optuna_history.png").stat().st_size > 1000 and (sweep / "selection.png").is_file()


def test_a_failed_trial_is_recorded_and_the_study_goes_on(tmp_path: Path) -> None:
    """A trial whose run fails (here: a batch size its config check refuses, sampled from the search
    space) prints its one-line error, is a failed trial for Optuna, and the rest still run."""
    sweep = tmp_path / "study"
    p = study(
        sweep,
        "objective=linear_top1",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.sampler.n_startup_trials=4",
        "data.batch_size=choice(0,16)",  # a search-space entry on the command line
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert "error: data.batch_size=0: must be greater than 0" in p.stderr + p.stdout
    results = trial_results(sweep)
    assert 0 < len(results) < 4, sorted(results)  # the sampler (seed 0) drew both sizes
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(max(r["metrics"]["linear_top1"] for r in results.values()))
    assert not list(sweep.glob(f"*/{FAILED}"))  # refused before training: no run directory left


def test_an_unknown_objective_stops_the_sweep_before_its_first_trial(tmp_path: Path) -> None:
    sweep = tmp_path / "study"
    p = study(sweep, "objective=rank_me")
    assert p.returncode == 2, p.stderr[-2000:]
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("error: objective='rank_me': must be ") and "'rankme'" in last, last
    assert "Traceback" not in p.stderr
    assert not sweep.exists()


@pytest.mark.parametrize(
    "override,line",
    [
        ("hydra.sweeper.n_trials=0", "error: hydra.sweeper.n_trials=0: must be an integer >= 1"),
        (
            "optim.optimizer.lr=interval(0.1,0.001)",
            "error: optim.optimizer.lr=interval(0.1,0.001): interval(0.1, 0.001) needs low <= high",
        ),
    ],
)
def test_bad_study_settings_stop_the_sweep_before_its_first_trial(tmp_path: Path, override: str, line: str) -> None:
    """Optuna would end in 'No trials are completed yet' or its own message without a key."""
    sweep = tmp_path / "study"
    p = study(sweep, override)
    assert p.returncode == 2 and p.stderr.strip().splitlines()[-1].startswith(line), p.stderr[-2000:]
    assert not sweep.exists()


def test_sweep_metric_value_reads_the_named_metric() -> None:
    results = {"metrics": {"linear_top1": 91.0, "rankme_backbone": 30.5, "lidar_backbone": 12.0}}
    assert sweep_metric_value(results, "linear_top1") == 91.0
    assert sweep_metric_value(results, "rankme") == 30.5
    assert sweep_metric_value(results, "lidar") == 12.0
    assert sweep_metric_value(results, "rankme_projector") is None  # a method without a projector
    assert sweep_metric_value({"metrics": {"rankme_backbone": math.nan}}, "rankme") is None
