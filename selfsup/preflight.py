"""The config and run-directory checks, run as a Hydra callback before Hydra writes the run directory.

Hydra makes the run directory (and writes ``.hydra/`` and the log into it) before it calls
``train.py``'s task; a config refused there would leave a directory behind, or, in an existing
run's directory, overwrite its ``.hydra/config.yaml`` with the refused config. Registered in
``configs/train.yaml`` (``hydra.callbacks.check_config``), this runs, on the composed config:

- :func:`selfsup.build.check_config`, so a bad value stops the run with one line (``error:
  optim.optimizer.lr=-1: must be greater than 0``);
- :func:`selfsup.rerun.check_run_dir`: another process running in the directory, a finished run
  rerun with another config, an unfinished one resumed with another config, or no readable
  checkpoint where ``resume`` asks for one are refused the same way; a finished run of this very
  config prints its results and exits 0, before Hydra writes anything;
- then it takes the run directory's lock (:mod:`selfsup.run_lock`), which the run keeps until it
  ends, so that no second process writes there from here on.

Nothing on disk changes for a refused run. Sweeps (``-m``) check the keys their jobs share
(``objective``) before the first job, and each job checks its own config and directory
(in :func:`selfsup.pipeline.run`, after Hydra has written the job's ``.hydra/``).
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict


class CheckConfig(Callback):
    """Checks a single run's config and directory before Hydra touches the disk (see the module docstring)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from selfsup.build import check_config  # imported here: Hydra builds callbacks before `--help`
        from selfsup.dist import launcher_rank_zero
        from selfsup.errors import user_errors_as_one_line
        from selfsup.optional import check_choices
        from selfsup.rerun import check_run_dir, finished_report
        from selfsup.resume import resume_checkpoint
        from selfsup.run_dir import remove_if_only_hydra
        from selfsup.run_lock import hold, release, takes_the_lock

        task = OmegaConf.masked_copy(config, [str(k) for k in config if k != "hydra"])
        HydraConfig.instance().set_config(config)  # as Hydra does next, for ${hydra:...} in the run dir's name
        run_dir = Path(str(OmegaConf.select(config, "hydra.run.dir")))  # ${now:} is cached: the same name
        with open_dict(task):
            task.run_dir = os.path.abspath(run_dir)  # as Hydra sets hydra.runtime.output_dir next
        finished = None
        with user_errors_as_one_line():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the task warns again, into the run's log
                check_choices(config.hydra.runtime.choices)
                check_config(task, loss_choice=str(config.hydra.runtime.choices["loss"]))
                if not launcher_rank_zero():  # another rank of a DDP run: rank 0 has checked the directory
                    resume_checkpoint(run_dir, str(task.resume))
                    return
                finished, _ = check_run_dir(task, run_dir)
            if finished is None and takes_the_lock() and hold(run_dir):  # a stale lock's warning is shown
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        finished, _ = check_run_dir(task, run_dir)  # again, now that no other process can write
                except BaseException:
                    release(run_dir)
                    remove_if_only_hydra(run_dir)  # made for the lock alone
                    raise
        if finished is not None:
            release(run_dir)
            print(finished_report(finished, run_dir), flush=True)
            sys.exit(0)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """A sweep: the keys its jobs share (``objective``) before the first job; each job checks
        the rest of its own config."""
        from selfsup.errors import user_errors_as_one_line
        from selfsup.optional import check_choices
        from selfsup.schema_check import check_sweep

        with user_errors_as_one_line():
            check_choices(config.hydra.runtime.choices)
            check_sweep(OmegaConf.masked_copy(config, [str(k) for k in config if k != "hydra"]))
            check_optuna(config.hydra.sweeper, list(config.hydra.overrides.task))


# Optuna's distributions in Hydra's override grammar: interval(low, high), range(start, stop[, step]).
_BOUNDED = re.compile(r"\b(interval|range)\(\s*([^,()]+?)\s*,\s*([^,()]+?)\s*(?:,[^()]*)?\)")


def check_optuna(sweeper: DictConfig, overrides: list[str]) -> None:
    """The Optuna sweeper's settings (``hydra.sweeper.*`` of ``sweeper=optuna``) before its first
    trial: at least one trial, and every search interval, in ``hydra.sweeper.params`` or on the
    command line (``overrides``: ``key=interval(low,high)``), with low <= high."""
    from selfsup.errors import ConfigError

    if "optuna" not in str(sweeper.get("_target_", "")):
        return
    n = sweeper.get("n_trials")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"hydra.sweeper.n_trials={n}: must be an integer >= 1 (the number of runs in the study)")
    params = {f"hydra.sweeper.params.{k}": v for k, v in (sweeper.get("params") or {}).items()}
    params |= dict(o.split("=", 1) for o in overrides if "=" in o)
    for key, value in params.items():
        for kind, low, high in _BOUNDED.findall(str(value)):
            try:
                lo, hi = float(low), float(high)
            except ValueError:
                raise ConfigError(f"{key}={value}: {kind}() needs two numbers") from None
            if lo > hi:
                raise ConfigError(f"{key}={value}: {kind}({low}, {high}) needs low <= high")
