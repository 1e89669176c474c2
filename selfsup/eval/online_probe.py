"""Online linear probe: a linear classifier trained on detached features during pretraining."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from selfsup.dist import world_size
from selfsup.eval.gather import gather_unique
from selfsup.methods.base import require_outputs


class OnlineLinearProbe(L.Callback):
    """Trains ``Linear(F, classes)`` on the ``h`` each training step returns, with its own optimiser.

    The features are detached, so the probe never changes the representation. Logs
    ``train/online_probe_loss`` and ``train/online_top1`` every epoch and ``val/online_top1``
    on the held-out split after each validation. Unlabelled images (label -1) are skipped.
    Under DDP the probe's gradients are averaged over the ranks (every rank keeps the same
    probe, trained on the global batch) and the held-out predictions are gathered, each
    sample counted once; the ``train/`` figures are rank 0's batches.

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
        self._parts: list[dict[str, torch.Tensor]] = []

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.probe is None:
            features = int(pl_module.eval_encoder.num_features)  # type: ignore[union-attr, arg-type, operator]
            self.probe = nn.Linear(features, self.num_classes).to(pl_module.device)
            self.optimizer = torch.optim.AdamW(self.probe.parameters(), lr=self.lr, weight_decay=0.0)
            if self._pending_state is not None:
                self.load_state_dict(self._pending_state)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        assert self.probe is not None
        self.probe.to(pl_module.device)
        if world_size() > 1:  # every rank starts from rank 0's probe (the ranks seed differently)
            for t in self.probe.state_dict().values():
                dist.broadcast(t, src=0)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        assert self.probe is not None and self.optimizer is not None
        outputs = require_outputs(outputs, ("h", "labels"), "the online probe (eval.online_probe)")
        h, y = outputs["h"].float(), outputs["labels"]
        keep = y >= 0
        n = keep.sum()
        total = n.clone()  # labelled rows in the global batch
        if world_size() > 1:
            dist.all_reduce(total)  # every rank takes part, also one without labelled rows
        if total == 0:
            return
        with torch.enable_grad():
            # This rank's summed loss over the global count: the gradients summed over the
            # ranks are those of the global batch's mean loss, so every rank's probe stays equal.
            logits = self.probe(h[keep])
            loss = F.cross_entropy(logits, y[keep], reduction="sum") / total
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if world_size() > 1:
                for p in self.probe.parameters():
                    dist.all_reduce(p.grad)  # type: ignore[arg-type]
            self.optimizer.step()
        if n == 0:
            return
        m = int(n)
        top1 = 100 * (logits.detach().argmax(1) == y[keep]).float().mean()
        # This rank's batches (rank 0's is what is logged): not synced, as a rank whose whole epoch
        # had no labelled row would log nothing and leave the others waiting in the sync.
        local_loss = loss.detach() * total / n
        pl_module.log("train/online_probe_loss", local_loss, on_step=False, on_epoch=True, batch_size=m)
        pl_module.log("train/online_top1", top1, on_step=False, on_epoch=True, batch_size=m)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._parts = []

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
        if trainer.sanity_checking:
            return
        outputs = require_outputs(outputs, ("h", "labels", "index"), "the online probe (eval.online_probe)")
        pred = self.probe(outputs["h"].float()).argmax(1)
        self._parts.append({"pred": pred, "labels": outputs["labels"], "index": outputs["index"]})

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not self._parts:
            return
        local = {k: torch.cat([p[k] for p in self._parts]) for k in self._parts[0]}
        self._parts = []
        rows = gather_unique(local, pl_module.device)  # each held-out sample once
        top1 = 100.0 * float((rows["pred"] == rows["labels"]).float().mean())
        pl_module.log("val/online_top1", top1)  # the same value on every rank

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
