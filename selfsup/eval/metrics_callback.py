"""Label-free representation metrics on the held-out split, logged during training."""

from __future__ import annotations

import math
import time
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from selfsup.augment import ViewMaker
from selfsup.eval.features import extract_features
from selfsup.eval.knn import knn_top1
from selfsup.metrics import alignment, lidar, rankme, uniformity


@torch.no_grad()
def view_metrics(
    backbone: nn.Module,
    head: nn.Module,
    view_maker: ViewMaker,
    images: Tensor,
    views: int,
    delta: float,
    eps: float,
    seed: int = 0,
) -> dict[str, float]:
    """LiDAR, alignment and uniformity of ``views`` augmented views of each image.

    Views come from the run's own view maker and are grouped by their source image (never by
    position in a buffer). Randomness is drawn from a forked RNG seeded with ``seed``, so the
    metric neither depends on nor disturbs the training RNG stream.

    Args:
        backbone: (N, C, H, W) -> (N, F), called in eval mode.
        head: (N, F) -> (N, D).
        view_maker: the run's augmentation.
        images: (n, C, H, W) uint8 source images.
        views: q views per image (≥ 2).
        delta: LiDAR's δ. eps: LiDAR's ε.
        seed: seed of the views.

    Returns:
        ``lidar``, ``align``, ``uniform``, each with a ``_backbone`` and ``_projector`` suffix.
    """
    n = images.shape[0]
    devices = [images.device] if images.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        rounds = math.ceil(views / view_maker.views)
        x = torch.cat([view_maker(images) for _ in range(rounds)])[: views * n]  # (q*n, C, S, S), view-major
    h = torch.cat([backbone(chunk) for chunk in x.split(512)])
    z = head(h)
    out: dict[str, float] = {}
    for name, e in (("backbone", h), ("projector", z)):
        e = e.float().view(views, n, -1)  # (q, n, D): row [v, i] is view v of image i
        out[f"lidar_{name}"] = lidar(e.transpose(0, 1), delta=delta, eps=eps)
        out[f"align_{name}"] = float(alignment(e[0], e[1]))
        out[f"uniform_{name}"] = float((uniformity(e[0]) + uniformity(e[1])) / 2)
    return out


class RepresentationMetrics(L.Callback):
    """RankMe, LiDAR, alignment/uniformity (and kNN) on the held-out split after validation.

    RankMe reuses the features the validation loop already computed; LiDAR and alignment/
    uniformity embed ``lidar_views`` views of the first ``lidar_images`` held-out images; kNN
    embeds the probe's train split, so it runs on its own (sparser) schedule. Logs
    ``val/rankme_*``, ``val/lidar_*``, ``val/align_*``, ``val/uniform_*`` with suffix ``backbone``
    or ``projector``, and ``val/knn_top1``.

    Args:
        num_classes: label count (for kNN).
        every_n_epochs: compute after every N-th epoch's validation (and after the last).
        knn_every_n_epochs: kNN schedule, never after the last epoch (the final evaluation has it);
            0 disables it during training.
        lidar_images: n source images for LiDAR and alignment/uniformity.
        lidar_views: q views per image.
        lidar_delta: δ. lidar_eps: ε.
        knn_k: neighbours. knn_temperature: T.
        seed: seed of the metric's views (fixed, so epochs are compared on the same views).
    """

    def __init__(
        self,
        num_classes: int,
        every_n_epochs: int = 1,
        lidar_images: int = 32,
        lidar_views: int = 4,
        lidar_delta: float = 1e-4,
        lidar_eps: float = 1e-8,
        knn_every_n_epochs: int = 10,
        knn_k: int = 20,
        knn_temperature: float = 0.1,
        seed: int = 0,
    ) -> None:
        self.num_classes = num_classes
        self.every_n_epochs = every_n_epochs
        self.lidar_images = lidar_images
        self.lidar_views = lidar_views
        self.lidar_delta = lidar_delta
        self.lidar_eps = lidar_eps
        self.knn_every_n_epochs = knn_every_n_epochs
        self.knn_k = knn_k
        self.knn_temperature = knn_temperature
        self.seed = seed
        self._h: list[Tensor] = []
        self._z: list[Tensor] = []
        self._y: list[Tensor] = []
        self.seconds = 0.0  # wall time spent in this callback, to report its cost

    def _due(self, trainer: L.Trainer, every: int, at_last: bool = True) -> bool:
        if every <= 0:
            return False
        last = trainer.max_epochs is not None and trainer.current_epoch + 1 >= trainer.max_epochs
        if last:
            return at_last
        return (trainer.current_epoch + 1) % every == 0

    def _knn_due(self, trainer: L.Trainer) -> bool:
        # Not after the last epoch: the end-of-run evaluation computes kNN right after.
        return self._due(trainer, self.knn_every_n_epochs, at_last=False)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._h, self._z, self._y = [], [], []

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self._due(trainer, self.every_n_epochs) or self._knn_due(trainer):
            start = time.perf_counter()
            self._h.append(outputs["h"].float().cpu())
            self._z.append(outputs["z"].float().cpu())
            self._y.append(outputs["labels"].cpu())
            self.seconds += time.perf_counter() - start

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not self._h:
            return
        start = time.perf_counter()
        h, z, y = torch.cat(self._h), torch.cat(self._z), torch.cat(self._y)
        self._h, self._z, self._y = [], [], []
        logs: dict[str, float] = {}
        module: Any = pl_module
        if self._due(trainer, self.every_n_epochs):
            logs["rankme_backbone"] = rankme(h)
            logs["rankme_projector"] = rankme(z)
            images = trainer.datamodule.held_out_images(self.lidar_images).to(pl_module.device)  # type: ignore[attr-defined]
            logs.update(
                view_metrics(
                    module.backbone,
                    module.head,
                    module.view_maker,
                    images,
                    self.lidar_views,
                    self.lidar_delta,
                    self.lidar_eps,
                    self.seed,
                )
            )
        if self._knn_due(trainer):
            dm = trainer.datamodule  # type: ignore[attr-defined]
            bank = extract_features(
                module.backbone,
                dm.feature_loader(dm.probe_train_dataset()),
                module.view_maker.prepare,
                device=pl_module.device,
            )
            keep = bank["labels"] >= 0
            logs["knn_top1"] = knn_top1(
                bank["h"][keep], bank["labels"][keep], h, y, self.num_classes, self.knn_k, self.knn_temperature
            )
        for k, v in logs.items():
            pl_module.log(f"val/{k}", v)
        self.seconds += time.perf_counter() - start
