"""Gather finished runs (as :func:`selfsup.run_dir.load_runs` reads them) into one table, seeds averaged."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from selfsup.errors import ConfigError

METRICS = ("linear_top1", "knn_top1", "rankme_backbone", "lidar_backbone", "pretrain_seconds")
# Keys that differ between runs that are otherwise the same run: the repetitions averaged over.
REPEATS = ("seed", "run_dir")


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out |= _flat(v, f"{prefix}{k}.")
        return out
    return {prefix.rstrip("."): json.dumps(node, sort_keys=True) if isinstance(node, list) else node}


def run_settings(run: dict[str, Any]) -> dict[str, Any]:
    """A run's resolved config (``RUN_DIR/config.yaml``) as dotted keys, its own directory written
    as ``RUN_DIR`` wherever a value holds it (a logger's ``save_dir``); {} where it has none."""
    path = Path(run["run_dir"]) / "config.yaml"
    if not path.is_file():
        return {}
    config = yaml.safe_load(path.read_text()) or {}
    own = str(config.get("run_dir") or run["run_dir"])
    return {
        k: v.replace(own, "RUN_DIR") if isinstance(v, str) else v
        for k, v in _flat(config).items()
        if not k.startswith("choices.")
    }


def differing_keys(runs: Sequence[dict[str, Any]], group_by: Sequence[str]) -> list[str]:
    """Config keys whose values differ between runs of one ``group_by`` group, other than the
    repetitions' (:data:`REPEATS`): averaging such a group would mix different runs."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault(tuple(str(r["choices"].get(k)) for k in group_by), []).append(r)
    keys: set[str] = set()
    for members in groups.values():
        settings = [run_settings(m) for m in members]
        for k in {k for s in settings for k in s}:
            if k not in REPEATS and len({repr(s.get(k)) for s in settings}) > 1:
                keys.add(k)
    return sorted(keys)


def _value(run: dict[str, Any], metric: str) -> float:
    return float(run[metric]) if metric in run else float(run["metrics"].get(metric, float("nan")))


def _put_stats(row: dict[str, Any], metric: str, values: list[float]) -> None:
    """``row[metric]``: the mean of ``values`` (NaN if none); ``row[metric_std]``: their sample std."""
    row[metric] = statistics.fmean(values) if values else float("nan")
    row[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(
    runs: Sequence[dict[str, Any]], group_by: Sequence[str] | None = None
) -> tuple[list[str], list[dict[str, Any]]]:
    """One row per combination of ``group_by`` choices, with mean and std over the rest (seeds).

    Args:
        runs: as :func:`selfsup.run_dir.load_runs` returns.
        group_by: choice keys (``loss``, ``data``, ...); default: every choice that varies, and
            every config key that differs between runs of one such group (:func:`differing_keys`),
            so runs are averaged only over their repetitions (seeds). Given, a group whose runs
            differ in another key is refused, naming the keys.

    Returns:
        The keys grouped by, and the rows.
    """
    if not runs:
        return list(group_by or []), []
    if group_by is None:
        keys = sorted({k for r in runs for k in r["choices"]})
        group_by = [k for k in keys if len({r["choices"].get(k) for r in runs}) > 1] or keys[:1]
        # Settings that differ within those groups (trainer.max_epochs=30 beside 2) are columns too.
        extra = differing_keys(runs, group_by)
        for r in runs:
            settings = run_settings(r)
            r["choices"] = {**r["choices"], **{k: settings.get(k) for k in extra}}
        group_by = [*group_by, *extra]
    else:
        mixed = differing_keys(runs, group_by)
        if mixed:
            raise ConfigError(
                f"--group-by {' '.join(group_by)} would average runs that differ in {', '.join(mixed)}; "
                "add them to --group-by, or leave --group-by out to group by everything that differs"
            )
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault(tuple(str(r["choices"].get(k)) for k in group_by), []).append(r)
    rows = []
    for key, members in groups.items():
        row: dict[str, Any] = dict(zip(group_by, key, strict=True))
        row["runs"] = len(members)
        row["seeds"] = sorted({m["seed"] for m in members})
        # Runs judged collapsed at their end (results.json "collapsed", selfsup/eval/collapse.py).
        row["collapsed"] = sum(bool(m.get("collapsed", False)) for m in members)
        for m in METRICS:
            _put_stats(row, m, [_value(r, m) for r in members])
        rows.append(row)
    return list(group_by), rows


def baseline_rows(runs: Sequence[dict[str, Any]], group_by: Sequence[str]) -> list[dict[str, Any]]:
    """One row per baseline (``random_init``, ``raw_pixels``) the runs evaluated, averaged over the
    runs (a baseline does not depend on the method or loss; over seeds it varies a little). The
    first ``group_by`` column names the baseline; metrics a baseline lacks (LiDAR) are NaN."""
    names = sorted({b for r in runs for b in r.get("baselines", {})})
    rows = []
    for name in names:
        members = [r["baselines"][name] for r in runs if name in r.get("baselines", {})]
        row: dict[str, Any] = {k: "" for k in group_by}
        row[group_by[0] if group_by else "baseline"] = name
        row["runs"] = len(members)
        row["seeds"] = sorted({r["seed"] for r in runs if name in r.get("baselines", {})})
        for m in METRICS:
            _put_stats(row, m, [float(b[m]) for b in members if m in b])
        rows.append(row)
    return rows


def _cell(row: dict[str, Any], metric: str, digits: int, spread: bool = True) -> str:
    value = row[metric]
    if value != value:  # NaN: a metric this row does not have (a baseline's LiDAR)
        return "–"
    return f"{value:.{digits}f} ± {row[metric + '_std']:.{digits}f}" if spread else f"{value:.{digits}f}"


def _runs_cell(row: dict[str, Any]) -> str:
    """The run count, with how many of them collapsed when any did: ``3 (1 collapsed)``."""
    collapsed = row.get("collapsed", 0)
    return f"{row['runs']} ({collapsed} collapsed)" if collapsed else str(row["runs"])


def to_markdown(rows: Sequence[dict[str, Any]], group_by: Sequence[str]) -> str:
    """One line per row; a row with collapsed runs says how many in its ``runs`` cell."""
    head = [*group_by, "runs", "linear top-1 (%)", "kNN top-1 (%)", "RankMe", "LiDAR", "pretrain (s)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(group_by) + "---:|" * 6]
    for r in rows:
        cells = [str(r[k]) for k in group_by] + [_runs_cell(r)]
        cells += [_cell(r, m, 2) for m in ("linear_top1", "knn_top1")]
        cells += [_cell(r, m, 1) for m in ("rankme_backbone", "lidar_backbone")]
        cells += [_cell(r, "pretrain_seconds", 1, spread=False)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
