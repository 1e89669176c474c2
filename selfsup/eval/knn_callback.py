"""Weighted kNN accuracy on the held-out split during training."""

from __future__ import annotations

from typing import Any

import lightning as L
from torch import Tensor

from selfsup.eval.features import labelled_features
from selfsup.eval.held_out import HeldOutMetric
from selfsup.eval.knn import knn_top1


class KNNCallback(HeldOutMetric):
    """Logs ``val/knn_top1``: held-out features voted on by the probe's train features.

    The train features are embedded anew each time (a pass over the train split), so this
    runs on its own, sparser schedule, and never after the last epoch: the end-of-run
    evaluation computes kNN right after.

    Args:
        num_classes: label count.
        every_n_epochs: compute after every N-th epoch; 0 disables it during training.
        k: neighbours. temperature: T.
    """

    at_last = False

    def __init__(self, num_classes: int, every_n_epochs: int = 10, k: int = 20, temperature: float = 0.1) -> None:
        super().__init__(every_n_epochs)
        self.num_classes = num_classes
        self.k = k
        self.temperature = temperature

    def compute(self, trainer: L.Trainer, module: Any, features: dict[str, Tensor]) -> dict[str, float]:
        dm = trainer.datamodule  # type: ignore[attr-defined]
        bank_h, bank_y = labelled_features(
            module.eval_encoder,
            dm.feature_loader(dm.probe_train_dataset()),
            module.view_maker.prepare,
            device=module.device,
        )
        top1 = knn_top1(
            bank_h,
            bank_y,
            features["h"],
            features["labels"],
            self.num_classes,
            self.k,
            self.temperature,
        )
        return {"knn_top1": top1}
