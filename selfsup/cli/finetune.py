"""Transfer a pretrained run to labelled data: ``python finetune.py run=RUN_DIR data=fashion_mnist``.

Runs the frozen encoder's offline probe, linear probing, full fine-tuning and the same network from
scratch under one schedule, prints their top-1 side by side and writes ``finetune.json`` in the
output directory (``configs/finetune.yaml``; README "Fine-tuning and transfer").
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from selfsup import CONFIG_DIR


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="finetune")
def main(cfg: DictConfig) -> None:
    from selfsup.errors import user_errors_as_one_line
    from selfsup.finetune_pipeline import run  # imported here so `--help` and config errors are fast

    with user_errors_as_one_line():
        run(cfg, Path(HydraConfig.get().runtime.output_dir))


def cli() -> None:
    """The command line: first the optional packages its options need, then the Hydra app."""
    from selfsup.errors import user_errors_as_one_line
    from selfsup.optional import check_command_line

    with user_errors_as_one_line():  # data=shards without litdata, in one line
        check_command_line(sys.argv[1:])
    main()


if __name__ == "__main__":
    cli()
