"""Base of the callbacks that measure the representation on the held-out split during training."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch
from torch import Tensor

from selfsup.eval.gather import gather_unique
from selfsup.methods.base import require_outputs


class HeldOutMetric(L.Callback):
    """After every N-th epoch's validation, compute metrics and log them as ``val/<name>``.

    The validation loop has already embedded the held-out split; subclasses that set
    ``needs_features`` receive those features (``h``, ``z``, ``labels``, ``index``) instead of
    embedding the images again. Under DDP the ranks' shards are gathered and each sample kept
    once (the sampler pads shards with repeats), and the metrics are computed on rank 0 only.
    ``seconds`` accumulates the wall time spent here, to report the cost. Reads the validation
    step's ``h``, ``z``, ``labels`` and ``index`` (the method contract, ``selfsup/methods/base.py``)
    and the module's ``eval_encoder``, ``eval_head`` and ``view_maker``.

    Args:
        every_n_epochs: compute after every N-th epoch; 0 disables it during training.
    """

    needs_features = True
    at_last = True  # also after the last epoch, whatever N is

    def __init__(self, every_n_epochs: int = 1) -> None:
        self.every_n_epochs = every_n_epochs
        self.seconds = 0.0
        self._parts: list[dict[str, Tensor]] = []

    def compute(self, trainer: L.Trainer, module: Any, features: dict[str, Tensor]) -> dict[str, float]:
        """The metrics to log (without the ``val/`` prefix)."""
        raise NotImplementedError

    def due(self, trainer: L.Trainer) -> bool:
        if self.every_n_epochs <= 0 or trainer.sanity_checking:
            return False
        if trainer.max_epochs is not None and trainer.current_epoch + 1 >= trainer.max_epochs:
            return self.at_last
        return (trainer.current_epoch + 1) % self.every_n_epochs == 0

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._parts = []

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.needs_features and self.due(trainer):
            start = time.perf_counter()
            outputs = require_outputs(outputs, ("h", "z", "labels", "index"), type(self).__name__)
            part = {k: outputs[k].detach() for k in ("labels", "index")}
            part |= {k: outputs[k].detach().float() for k in ("h", "z")}  # bf16 under autocast
            self._parts.append({k: v.cpu() for k, v in part.items()})
            self.seconds += time.perf_counter() - start

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.due(trainer):
            return
        start = time.perf_counter()
        features: dict[str, Tensor] = {}
        if self.needs_features:
            if not self._parts:
                raise RuntimeError(f"rank {trainer.global_rank} validated no held-out batch")
            local = {k: torch.cat([p[k] for p in self._parts]) for k in self._parts[0]}
            features = gather_unique(local, pl_module.device)  # a collective: every rank takes part
        self._parts = []
        if trainer.is_global_zero:
            for k, v in self.compute(trainer, pl_module, features).items():
                pl_module.log(f"val/{k}", v, rank_zero_only=True)
        self.seconds += time.perf_counter() - start
