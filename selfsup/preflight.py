"""The config check, run as a Hydra callback before Hydra creates the run directory.

Hydra makes the run directory (and writes ``.hydra/`` and the log into it) before it calls
``train.py``'s task; a config refused there would leave a directory behind, or, in an existing
run's directory, overwrite its ``.hydra/config.yaml`` with the refused config. Registered in
``configs/train.yaml`` (``hydra.callbacks.check_config``), this runs
:func:`selfsup.build.check_config` on the composed config first, so a bad value stops the
run with one line (``error: optim.optimizer.lr=-1: must be greater than 0``) and nothing on
disk changes. Sweeps (``-m``) are checked per job by the task itself.
"""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf


class CheckConfig(Callback):
    """Checks a single run's config before Hydra touches the disk (see the module docstring)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from selfsup.build import check_config  # imported here: Hydra builds callbacks before `--help`
        from selfsup.errors import user_errors_as_one_line

        task = OmegaConf.masked_copy(config, [str(k) for k in config if k != "hydra"])
        with user_errors_as_one_line():
            check_config(task, loss_choice=str(config.hydra.runtime.choices["loss"]))
