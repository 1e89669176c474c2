"""One progress bar over the run's training steps, instead of Lightning's bar per epoch."""

from __future__ import annotations

import math
import sys
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ProgressBar
from tqdm import tqdm


class StepProgressBar(ProgressBar):
    """A tqdm bar over every training batch of the run (``max_epochs`` x the epoch's batches), so it
    moves within an epoch and its ETA is the end of pretraining. Its label is the epoch; after each
    epoch it shows that epoch's loss and online probe."""

    def __init__(self) -> None:
        super().__init__()
        self._bar: tqdm | None = None
        self._enabled = True

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not (self._enabled and trainer.is_global_zero):
            return
        per_epoch = trainer.num_training_batches
        finite = isinstance(per_epoch, int) or math.isfinite(per_epoch)
        done = trainer.current_epoch * int(per_epoch) if finite else 0
        done += trainer.fit_loop.epoch_loop.batch_progress.current.completed  # a mid-epoch resume
        self._bar = tqdm(
            total=int(per_epoch) * (trainer.max_epochs or 1) if finite else None,
            initial=done,
            desc=self._epoch(trainer),
            unit="step",
            file=sys.stdout,
            dynamic_ncols=True,
        )

    @staticmethod
    def _epoch(trainer: L.Trainer) -> str:
        return f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if self._bar is not None:
            self._bar.update(1)

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
        if trainer.current_epoch + 1 < (trainer.max_epochs or 1):
            self._bar.set_description(f"epoch {trainer.current_epoch + 2}/{trainer.max_epochs}", refresh=False)
        self._bar.refresh()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        """Close the bar (ending its line) before the error is printed below it."""
        self.on_train_end(trainer, pl_module)
