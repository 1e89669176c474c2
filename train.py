"""``python train.py ...`` is ``selfsup train ...``: the Hydra app of selfsup/cli/train.py (its docs)."""

from selfsup.cli.train import cli

if __name__ == "__main__":
    cli()
