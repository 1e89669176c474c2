"""What ``train.py`` may do in a run directory that already holds a run; decided before any write.

A finished run (``results.json``) is read-only. The same config again does nothing: it prints the
run's results and exits 0. Another config is refused, naming the keys that differ, since the run's
``config.yaml`` would then claim the new values for a run that never had them. The ways forward
are another ``hydra.run.dir`` (a new run beside it), or ``resume=never``, which starts the run over
in its directory (the earlier attempt's results, metrics, export and checkpoints are removed when
the new attempt starts: :data:`selfsup.pipeline.FRESH`).

An unfinished run resumed from a checkpoint must have its own config too: a resume with another
``trainer.max_epochs`` would train on with another learning-rate schedule, another optimiser or
model would not load or would train something else, and any other change would leave a run that
no config describes.

Both are compared on the resolved config that would be saved (:func:`selfsup.build.resolved_config`)
against the run's ``config.yaml``, except the keys in :data:`IGNORED`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from selfsup.errors import ConfigError
from selfsup.resume import resume_checkpoint
from selfsup.run_dir import RESULTS
from selfsup.run_lock import check_free, takes_the_lock

CONFIG = "config.yaml"

# Keys that may differ between two invocations of one run: how a run is started, not what it
# computes. Every other key of the resolved config must be the run's own.
IGNORED = (
    # Where the run is, not what it is: a run directory moved or copied elsewhere, or named by
    # another path, is the same run (the keys that interpolate it, the loggers' save_dir, take the
    # saved value before the comparison).
    "run_dir",
    # How this invocation starts (auto, never, a checkpoint's path), not what the run computes.
    "resume",
    # How often last.ckpt is written, not what is trained: a save reads the RNG states and the
    # loader's position and draws nothing, so a long run may add mid-epoch saves when resumed.
    "checkpoint_every_n_steps",
)

WAYS = (
    "use another hydra.run.dir for a new run, or resume=never to start this one over there "
    "(its results.json, metrics.csv, export/ and checkpoints/ are removed)"
)
SHOWN = 10  # differing keys named in the message; the rest are counted


def check_run_dir(cfg: DictConfig, run_dir: Path) -> tuple[dict[str, Any] | None, Path | None]:
    """What this invocation may do in ``run_dir``; reads only.

    Args:
        cfg: the composed config.
        run_dir: the run directory.

    Returns:
        ``(results, None)``: ``run_dir`` holds the finished run of this config, nothing to do;
        ``(None, checkpoint)``: a run to start (checkpoint None) or resume.

    Raises:
        RunDirInUse: another process runs there (see :mod:`selfsup.run_lock`).
        ConfigError: a finished run, or an unfinished one to resume, has another config.
        CheckpointError: no readable checkpoint where ``resume`` asks for one.
    """
    if takes_the_lock():
        check_free(run_dir)
    resume = str(cfg.resume)
    if (run_dir / RESULTS).is_file() and resume != "never":
        saved = _saved(run_dir)
        if saved is None:
            raise ConfigError(
                f"{run_dir} holds a finished run ({RESULTS}) but no {CONFIG} to compare this config with; "
                f"a finished run is not changed: {WAYS}"
            )
        diff = differences(saved, cfg)
        if diff:
            raise ConfigError(
                f"{run_dir} holds a finished run ({RESULTS}) with another config: {diff}; "
                f"a finished run is not changed: {WAYS}"
            )
        return json.loads((run_dir / RESULTS).read_text()), None
    ckpt = resume_checkpoint(run_dir, resume)
    saved = _saved(run_dir) if ckpt is not None else None
    if saved is not None:
        diff = differences(saved, cfg)
        if diff:
            raise ConfigError(
                f"{run_dir} holds an unfinished run with another config: {diff}; resuming it from {ckpt} "
                f"would train on under a config that does not describe its start. Give its own config "
                f"({run_dir / CONFIG}) to resume it, or {WAYS}"
            )
    return None, ckpt


def _saved(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / CONFIG
    return _plain(OmegaConf.load(path)) if path.is_file() else None


def _plain(node: Any) -> dict[str, Any]:
    return OmegaConf.to_container(node, resolve=False)  # type: ignore[return-value]


def differences(saved: dict[str, Any], cfg: DictConfig) -> str:
    """The keys of ``cfg`` (resolved) whose values differ from ``saved`` (a run's ``config.yaml``),
    dotted, each with both values: ``loss.temperature (0.1 -> 0.5)``; empty when none differ."""
    from selfsup.build import resolved_config

    mine = OmegaConf.masked_copy(cfg, [str(k) for k in cfg if k != "hydra"])
    with read_write(mine), open_dict(mine):
        mine.run_dir = saved.get("run_dir", "")  # what interpolates it resolves to the saved value
    # Through YAML as config.yaml was, so both sides read the same way (floats, tuples).
    ours = _plain(OmegaConf.create(OmegaConf.to_yaml(OmegaConf.create(dict(resolved_config(mine))))))
    old, new = _flat(saved), _flat(ours)
    keys = [k for k in sorted(old.keys() | new.keys()) if k.split(".")[0] not in IGNORED]
    changed = [f"{k} ({_show(old, k)} -> {_show(new, k)})" for k in keys if old.get(k, _ABSENT) != new.get(k, _ABSENT)]
    more = f" and {len(changed) - SHOWN} more" if len(changed) > SHOWN else ""
    return ", ".join(changed[:SHOWN]) + more


_ABSENT = object()


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict) and node:
        return {k: v for key, child in node.items() for k, v in _flat(child, f"{prefix}{key}.").items()}
    return {prefix[:-1]: node}


def _show(values: dict[str, Any], key: str) -> str:
    if key not in values:
        return "absent"
    v = values[key]
    return v if isinstance(v, str) else json.dumps(v)


def finished_report(results: dict[str, Any], run_dir: Path) -> str:
    """What a rerun of a finished run prints: that there is nothing to do, its table, its results file."""
    from selfsup.eval.layers import layer_row
    from selfsup.eval.report import format_table

    lines = [
        f"{run_dir} holds the finished run of this config: nothing to do "
        "(resume=never starts it over; another hydra.run.dir starts a new run)"
    ]
    try:
        rows = {"pretrained": results["metrics"]}  # in the order the run printed them
        rows |= {layer_row(k): v for k, v in results.get("layers", {}).items()}
        rows |= results.get("baselines", {})
        lines.append(format_table(rows))
    except (KeyError, TypeError, ValueError):  # a results.json without the usual metrics
        pass
    lines.append(f"results: {run_dir / RESULTS}")
    return "\n\n".join(lines)
