"""Pretrain a backbone without labels: ``python train.py method=simclr loss=dcl``.

Every option is a Hydra config group under ``configs/``; see README.md.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from selfsup import CONFIG_DIR

# Lightning's own use of a torch API that torch deprecates (lightning/pytorch/utilities/_pytree.py
# builds LeafSpec); nothing a user can act on, and it would be the first line a run prints. Only
# this message is silenced; set before Lightning is imported (in main, and in DDP's child processes,
# which run this file again).
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    from selfsup.errors import user_errors_as_one_line
    from selfsup.pipeline import run  # imported here so `--help` and config errors are fast
    from selfsup.sweep_metric import sweep_metric_value

    # Hydra's logging already prints (and writes train.log); Lightning's own console handler
    # would print every line a second time.
    for name in ("lightning", "lightning.pytorch"):
        for handler in list(logging.getLogger(name).handlers):
            logging.getLogger(name).removeHandler(handler)
    # Hydra has written .hydra/ into the run directory, which the CSV logger shares; there is
    # nothing of ours for it to delete there, so its warning would only alarm.
    warnings.filterwarnings("ignore", message=r"Experiment logs directory .* exists and is not empty")
    quiet_lightning(not cfg.verbose)
    hc = HydraConfig.get()
    try:
        with user_errors_as_one_line():
            results = run(cfg, Path(hc.runtime.output_dir), loss_choice=hc.runtime.choices["loss"])
    except SystemExit:
        if not _optuna_trial(hc):
            raise
        # One trial of a study failed (its error line is above; its run directory, if it got one,
        # says FAILED): the sweeper records None as a failed trial and the study goes on.
        return None
    # The value a Hydra sweeper maximises, chosen by name (selfsup/sweep_metric.py).
    return sweep_metric_value(results, cfg.objective)


# Lightning's notices that say nothing about this run a user can act on: which accelerators exist
# (the run's own is in config.yaml), a tip to install litlogger, "limit_train_batches=1.0 was
# configured so 100% of the batches will be used", a resumed run's "checkpoint directory exists
# and is not empty" (resuming is what writes there), and the logging-interval note on small data
# (metrics.csv logs every epoch whatever the interval). verbose=true shows them.
QUIET = (
    r"The number of training batches \(\d+\) is smaller than the logging interval",
    r"Checkpoint directory .* exists and is not empty",
)


class _LightningNotices(logging.Filter):
    """Drops Lightning's INFO notices (its warnings and errors pass)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


def quiet_lightning(quiet: bool) -> None:
    """Silence the notices above for this process, or (``quiet=False``) let Lightning's INFO lines
    through again. DDP's children run this file again, with the same config."""
    if quiet:
        for message in QUIET:
            warnings.filterwarnings("ignore", message=message)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        for f in [f for f in logger.filters if isinstance(f, _LightningNotices)]:
            logger.removeFilter(f)
        if quiet:
            logger.addFilter(_LightningNotices())


def _optuna_trial(hc: Any) -> bool:
    return "optuna" in str(OmegaConf.select(hc, "sweeper._target_", default=""))


def cli() -> None:
    """The command line: first the optional packages its options need, then the Hydra app."""
    from selfsup.errors import user_errors_as_one_line
    from selfsup.optional import check_command_line

    # An option whose optional package is absent, in one line; first, because without the sweeper's
    # or the launcher's plugin Hydra cannot compose the config, and its own error names no package.
    with user_errors_as_one_line():
        check_command_line(sys.argv[1:])
    main()


if __name__ == "__main__":
    cli()
