"""LiDAR and alignment/uniformity of augmented views of held-out images, during training."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from selfsup.augment import ViewPipeline
from selfsup.eval.features import eval_mode
from selfsup.eval.held_out import HeldOutMetric
from selfsup.heads import projector_parts
from selfsup.metrics import alignment, lidar, uniformity


@torch.no_grad()
def view_metrics(
    backbone: nn.Module,
    head: nn.Module,
    view_maker: ViewPipeline,
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
        backbone: (N, C, H, W) -> (N, F), run in eval mode (and put back in its own mode).
        head: (N, F) -> (N, D).
        view_maker: the run's augmentation (its global views, without CutMix).
        images: (n, C, H, W) uint8 source images.
        views: q views per image (≥ 2).
        delta: LiDAR's δ. eps: LiDAR's ε.
        seed: seed of the views.

    Returns:
        ``lidar``, ``align``, ``uniform``, each with a ``_backbone`` and ``_projector`` suffix (and
        ``_projector_head{c}`` for each head of a multi-head projector).
    """
    n = images.shape[0]
    devices = [images.device] if images.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        rounds = math.ceil(views / view_maker.views)
        x = torch.cat([view_maker.global_views(images) for _ in range(rounds)])[
            : views * n
        ]  # (q*n, C, S, S), view-major
    with eval_mode(backbone, head):  # running statistics, as the probe sees it; they stay untouched
        h = torch.cat([backbone(chunk) for chunk in x.split(512)])
        z = head(h)
    out: dict[str, float] = {}
    for name, e in {"backbone": h, **projector_parts(head, z)}.items():
        e = e.float().view(views, n, -1)  # (q, n, D): row [v, i] is view v of image i
        out[f"lidar_{name}"] = lidar(e.transpose(0, 1), delta=delta, eps=eps)
        out[f"align_{name}"] = float(alignment(e[0], e[1]))
        out[f"uniform_{name}"] = float((uniformity(e[0]) + uniformity(e[1])) / 2)
    return out


class ViewMetricsCallback(HeldOutMetric):
    """Logs ``val/lidar_*``, ``val/align_*`` and ``val/uniform_*`` (``backbone`` / ``projector``).

    The views of the first ``images`` held-out images come from the run's own view maker,
    drawn with a fixed seed so that epochs are compared on the same views.

    Args:
        every_n_epochs: compute after every N-th epoch (and after the last).
        images: n source images. views: q views per image.
        delta: LiDAR's δ. eps: LiDAR's ε.
        seed: seed of the views.
    """

    needs_features = False

    def __init__(
        self,
        every_n_epochs: int = 1,
        images: int = 32,
        views: int = 4,
        delta: float = 1e-4,
        eps: float = 1e-8,
        seed: int = 0,
    ) -> None:
        super().__init__(every_n_epochs)
        self.images = images
        self.views = views
        self.delta = delta
        self.eps = eps
        self.seed = seed

    def compute(self, trainer: L.Trainer, module: Any, features: dict[str, Tensor]) -> dict[str, float]:
        images = trainer.datamodule.held_out_images(self.images).to(module.device)  # type: ignore[attr-defined]
        return view_metrics(
            module.eval_encoder,
            module.eval_head,
            module.view_maker,
            images,
            self.views,
            self.delta,
            self.eps,
            self.seed,
        )
