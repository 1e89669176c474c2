"""Label-free model selection: how well RankMe / LiDAR rank runs compared with the probe."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from scipy.stats import kendalltau

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
