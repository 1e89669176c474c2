"""Online linear probe: a linear classifier trained on detached features during pretraining."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn


class OnlineLinearProbe(L.Callback):
    """Trains ``Linear(F, classes)`` on the ``h`` each training step returns, with its own optimiser.

    The features are detached, so the probe never changes the representation. Logs
    ``train/online_probe_loss`` and ``train/online_top1`` every epoch and ``val/online_top1``
    on the held-out split after each validation. Unlabelled images (label -1) are skipped.

    Args:
        num_classes: label count.
        lr: AdamW learning rate of the probe.
    """

    def __init__(self, num_classes: int, lr: float = 1e-2) -> None:
        self.num_classes = num_classes
        self.lr = lr
        self.probe: nn.Linear | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self._pending_state: dict[str, Any] | None = None
        self._correct = 0
        self._seen = 0

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.probe is None:
            features = int(pl_module.backbone.num_features)  # type: ignore[union-attr, arg-type]
            self.probe = nn.Linear(features, self.num_classes).to(pl_module.device)
            self.optimizer = torch.optim.AdamW(self.probe.parameters(), lr=self.lr, weight_decay=0.0)
            if self._pending_state is not None:
                self.load_state_dict(self._pending_state)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        assert self.probe is not None
        self.probe.to(pl_module.device)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        assert self.probe is not None and self.optimizer is not None
        h, y = outputs["h"].float(), outputs["labels"]
        keep = y >= 0
        if not keep.any():
            return
        with torch.enable_grad():
            logits = self.probe(h[keep])
            loss = F.cross_entropy(logits, y[keep])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        acc = (logits.argmax(1) == y[keep]).float().mean()
        n = int(keep.sum())
        pl_module.log("train/online_probe_loss", loss.detach(), on_step=False, on_epoch=True, batch_size=n)
        pl_module.log("train/online_top1", 100 * acc, on_step=False, on_epoch=True, batch_size=n)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._correct, self._seen = 0, 0

    @torch.no_grad()
    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        assert self.probe is not None
        y = outputs["labels"]
        pred = self.probe(outputs["h"].float()).argmax(1)
        self._correct += int((pred == y).sum())
        self._seen += int(y.numel())

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._seen and not trainer.sanity_checking:
            pl_module.log("val/online_top1", 100.0 * self._correct / self._seen)

    def state_dict(self) -> dict[str, Any]:
        if self.probe is None or self.optimizer is None:
            return {}
        return {"probe": self.probe.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not state_dict:
            return
        if self.probe is None or self.optimizer is None:
            self._pending_state = state_dict  # restored once setup() has built the probe
            return
        self.probe.load_state_dict(state_dict["probe"])
        self.optimizer.load_state_dict(state_dict["optimizer"])
