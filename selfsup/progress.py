"""One progress bar over the epochs, instead of Lightning's bar per epoch."""

from __future__ import annotations

import sys
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ProgressBar
from tqdm import tqdm


class EpochProgressBar(ProgressBar):
    """A tqdm bar that advances once per epoch and shows the epoch's loss and online probe."""

    def __init__(self) -> None:
        super().__init__()
        self._bar: tqdm | None = None
        self._enabled = True

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._enabled and trainer.is_global_zero:
            self._bar = tqdm(
                total=trainer.max_epochs,
                initial=trainer.current_epoch,
                desc="pretraining",
                unit="epoch",
                file=sys.stdout,
                dynamic_ncols=True,
            )

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._bar is None:
            return
        m = trainer.callback_metrics
        post: dict[str, Any] = {}
        if "train/loss_epoch" in m:
            post["loss"] = f"{float(m['train/loss_epoch']):.3f}"
        if "val/online_top1" in m:
            post["online_top1"] = f"{float(m['val/online_top1']):.1f}"
        self._bar.set_postfix(post, refresh=False)
        self._bar.update(1)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        """Close the bar (ending its line) before the error is printed below it."""
        self.on_train_end(trainer, pl_module)
