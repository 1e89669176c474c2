"""SimCLR (Chen et al., ICML 2020) as a thin Lightning module; the objective is pluggable."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from selfsup.augment import ViewPipeline

OptimizerFactory = Callable[[Iterable[Any]], Optimizer]
SchedulerFactory = Callable[..., LRScheduler]


def param_groups(modules: Iterable[nn.Module], exclude_bias_and_norm: bool) -> list[dict[str, Any]]:
    """Split parameters into a decayed group and (optionally) a bias/norm group without decay."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    if not exclude_bias_and_norm:
        return [{"params": params}]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0, "lars_exclude": True}]


class SimCLR(L.LightningModule):
    """V views of each image, one backbone and projection head, a contrastive loss.

    ``training_step`` returns the detached backbone features ``h`` and projections ``z`` so
    that callbacks (online probe, metrics) read them without touching the method. Under mixed
    precision only the backbone and head run in autocast: the views are made, and the loss
    computed, in float32.

    Args:
        backbone: module with ``num_features``; (N, C, H, W) -> (N, F).
        head: projector (N, F) -> (N, D).
        loss: objective taking ``(z, views=V, mix=...)``.
        view_maker: batch -> :class:`~selfsup.augment.Views` (view groups by size, V, CutMix).
        optimizer: builds the optimiser from parameter groups (a Hydra partial).
        scheduler: builds the per-step lr schedule, called with
            ``(optimizer, total_steps=..., steps_per_epoch=...)``; None keeps the lr constant.
        exclude_bias_and_norm: no weight decay (and no LARS adaptation) on biases and norms.
        channels_last: backbone weights and inputs in NHWC memory format (faster convolutions
            under autocast on GPUs).
        compile: ``torch.compile`` the backbone in place (its state_dict keys are unchanged).
        lr_scale: the lr factor as a function of the images per optimiser step (batch size x
            processes x accumulation; see :func:`selfsup.optim.lr_scaling`); None keeps the lr.
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        loss: nn.Module,
        view_maker: ViewPipeline,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        exclude_bias_and_norm: bool = True,
        channels_last: bool = False,
        compile: bool = False,
        lr_scale: Callable[[int], float] | None = None,
    ) -> None:
        super().__init__()
        self.backbone: nn.Module = backbone
        self.head: nn.Module = head
        self.loss_fn: nn.Module = loss
        self.view_maker: ViewPipeline = view_maker
        self._optimizer = optimizer
        self._scheduler = scheduler
        self.exclude_bias_and_norm = exclude_bias_and_norm
        self.channels_last = channels_last
        self.compile_backbone = compile
        self.lr_scale = lr_scale

    def configure_model(self) -> None:
        if self.channels_last:
            self.backbone.to(memory_format=torch.channels_last)
        if self.compile_backbone and not getattr(self, "_compiled", False):
            self.backbone.compile()
            self._compiled = True

    def _layout(self, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def forward(self, x: Tensor) -> Tensor:
        """Backbone features of prepared (normalised float) images: (N, C, H, W) -> (N, F)."""
        return self.backbone(x)

    def training_step(self, batch: tuple[Any, Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        x, y, _ = batch  # uint8 (B, C, H, W) (or per-sample views), (B,), (B,)
        device = y.device.type
        with torch.autocast(device, enabled=False):
            views = self.view_maker(x)
        h = torch.cat([self.backbone(self._layout(g)) for g in views.groups])  # (V*B, F), per view size
        z = self.head(h)  # (V*B, D)
        with torch.autocast(device, enabled=False):
            loss = self.loss_fn(z.float(), views=views.count, mix=views.mix)
        self.log("train/loss", loss, on_step=True, on_epoch=True, batch_size=y.shape[0], sync_dist=True)
        return {"loss": loss, "h": h.detach(), "z": z.detach(), "labels": y.repeat(views.count)}

    def validation_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        x, y, index = batch
        h = self.backbone(self._layout(self.view_maker.prepare(x)))
        return {"h": h, "z": self.head(h), "labels": y, "index": index}

    def configure_optimizers(self) -> Any:
        opt = self._optimizer(param_groups([self.backbone, self.head], self.exclude_bias_and_norm))
        if self.lr_scale is not None:
            t = self.trainer
            batch = t.datamodule.batch_size * t.world_size * t.accumulate_grad_batches  # type: ignore[attr-defined]
            scale = self.lr_scale(batch)
            for group in opt.param_groups:
                group["lr"] *= scale
            if t.is_global_zero:
                print(f"lr x {scale:.4g} for {batch} images per optimiser step: lr {opt.param_groups[0]['lr']:.4g}")
        if self._scheduler is None:
            return opt
        total = int(self.trainer.estimated_stepping_batches)
        per_epoch = max(1, total // max(1, self.trainer.max_epochs or 1))
        sched = self._scheduler(opt, total_steps=total, steps_per_epoch=per_epoch)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
