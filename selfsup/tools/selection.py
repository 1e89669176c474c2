"""Label-free model selection: how well RankMe / LiDAR rank runs compared with the probe."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from scipy.stats import kendalltau

from selfsup.sweep_metric import METRIC

LABEL_FREE = ("rankme_backbone", "rankme_projector", "lidar_backbone", "lidar_projector")
PROBE = "linear_top1"


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _settings(run: Mapping[str, Any]) -> dict[str, Any]:
    """The run's flattened config, without the values that only say where it was written."""
    cfg = flatten(yaml.safe_load((Path(run["run_dir"]) / "config.yaml").read_text()) or {})
    where = str(cfg.get("run_dir", run["run_dir"]))
    return {k: v for k, v in cfg.items() if not (isinstance(v, str) and v.startswith(where))}


def varying_settings(runs: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Config keys whose value differs between runs, and each run's values of them.

    Reads each run's config.yaml once.
    """
    configs = [_settings(r) for r in runs]
    keys = sorted({k for c in configs for k in c})
    varying = [k for k in keys if len({repr(c.get(k)) for c in configs}) > 1]
    return varying, [{k: c.get(k) for k in varying} for c in configs]


@dataclass
class MetricReport:
    metric: str
    tau: float  # Kendall's τ between the metric and probe accuracy over runs
    p_value: float
    picked_probe: float  # probe accuracy of the run with the highest metric
    best_probe: float  # the highest probe accuracy of any run
    picked_run: str


def evaluate_selection(
    runs: Sequence[Mapping[str, Any]], metrics: Sequence[str] = LABEL_FREE, probe: str = PROBE
) -> list[MetricReport]:
    """For each label-free metric: rank agreement with the probe and the cost of trusting it."""
    labelled = [r for r in runs if math.isfinite(r["metrics"].get(probe, math.nan))]
    reports = []
    for m in metrics:
        pool = [r for r in labelled if math.isfinite(r["metrics"].get(m, math.nan))]
        if len(pool) < 2:
            continue
        xs = [r["metrics"][m] for r in pool]
        ys = [r["metrics"][probe] for r in pool]
        res = kendalltau(xs, ys)
        pick = max(pool, key=lambda r: r["metrics"][m])
        reports.append(
            MetricReport(
                metric=m,
                tau=float(res.statistic),
                p_value=float(res.pvalue),
                picked_probe=float(pick["metrics"][probe]),
                best_probe=float(max(ys)),
                picked_run=str(pick["run_dir"]),
            )
        )
    return reports


STUDY_RESULTS = "optimization_results.yaml"  # what Hydra's Optuna sweeper writes into the sweep directory
# Each way a study's trial can be chosen: its name -> the results.json metric it maximises.
CHOOSERS = {"rankme": METRIC["rankme"], "lidar": METRIC["lidar"], "linear probe (labels)": PROBE}


@dataclass
class Study:
    """A finished Optuna study of ``train.py -m sweeper=optuna``: its trials are the runs."""

    objective: str  # the name train.py returned (selfsup/sweep_metric.py)
    params: list[str]  # the swept config keys
    trials: int  # trials the study ran (hydra.sweeper.n_trials), finished or failed
    runs: dict[int, Mapping[str, Any]]  # trial number -> its finished run
    values: dict[int, dict[str, Any]]  # trial number -> its values of the swept keys
    best_value: float  # what the sweeper reported as the best objective value


def load_study(root: Path, runs: Sequence[Mapping[str, Any]]) -> Study | None:
    """The study under ``root`` (a sweep directory holding ``optimization_results.yaml``), or None.

    Trial numbers are the run directories' names (``hydra.sweep.subdir``: the job number, which is
    the trial number).
    """
    path = root / STUDY_RESULTS
    if not path.is_file():
        return None
    summary = yaml.safe_load(path.read_text()) or {}
    by_trial = {int(Path(r["run_dir"]).name): r for r in runs if Path(r["run_dir"]).name.isdigit()}
    settings = {t: _settings(r) for t, r in by_trial.items()}
    objectives = {str(c.get("objective")) for c in settings.values()}
    params = list((summary.get("best_params") or {}).keys())
    return Study(
        objective=objectives.pop() if len(objectives) == 1 else "mixed",
        params=params,
        values={t: {k: c.get(k) for k in params} for t, c in settings.items()},
        trials=_n_trials(root),
        runs=by_trial,
        best_value=float(summary.get("best_value", math.nan)),
    )


def _n_trials(root: Path) -> int:
    """``hydra.sweeper.n_trials`` of the study (any trial's ``.hydra/hydra.yaml``); else its trial
    directories (a trial refused before it ran leaves none)."""
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit())
    for d in dirs:
        if (d / ".hydra" / "hydra.yaml").is_file():
            n = ((yaml.safe_load((d / ".hydra" / "hydra.yaml").read_text()) or {}).get("hydra") or {}).get("sweeper")
            if isinstance(n, dict) and isinstance(n.get("n_trials"), int):
                return int(n["n_trials"])
    return len(dirs)


def best_trials(study: Study) -> dict[str, int]:
    """For each way of choosing (:data:`CHOOSERS`): the trial it picks, the highest value of its metric."""
    out = {}
    for name, metric in CHOOSERS.items():
        pool = {t: r for t, r in study.runs.items() if math.isfinite(r["metrics"].get(metric, math.nan))}
        if pool:
            out[name] = max(pool, key=lambda t: pool[t]["metrics"][metric])
    return out
