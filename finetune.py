"""``python finetune.py ...`` is ``selfsup finetune ...``: the Hydra app of selfsup/cli/finetune.py (its docs)."""

from selfsup.cli.finetune import cli

if __name__ == "__main__":
    cli()
