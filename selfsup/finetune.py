"""Transfer of a pretrained encoder to a labelled data set: linear probing, full fine-tuning and the
same network trained from scratch, under one schedule (``finetune.py``; docs/using-the-encoder.md,
"Fine-tuning and transfer").

Every protocol trains a classifier ``head(backbone(x))`` with a fresh linear head on the target's
train split and reports top-1 on its test split after the last epoch (no choice is made on the
test split):

- ``linear``: the pretrained backbone frozen (eval mode, BatchNorm statistics too), the head (a
  BatchNorm without affine parameters, then the linear layer) trained;
- ``finetune``: backbone and head trained, the backbone at ``lr * backbone_lr_scale``;
- ``from_scratch``: the same architecture randomly initialised, everything at ``lr``.

The schedule is the same for all three: AdamW (no weight decay on biases and norms), a linear
warm-up then cosine decay per step, cross-entropy with label smoothing; each batch is augmented
with a random resized crop (and a horizontal flip with probability ``flip_p``) made on the device.
The input of every protocol, and of the framework's offline probe beside them, is the same: uint8
images resized to ``size`` and normalised with ``mean``/``std`` (:func:`input_pipeline`).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from selfsup.augment import ViewMaker
from selfsup.data.base import seeded_indices
from selfsup.eval.features import eval_mode
from selfsup.methods.base import param_groups
from selfsup.optim.schedule import warmup_cosine

log = logging.getLogger(__name__)

#: The trained protocols, in the order they run.
TRAINED = ("linear", "finetune", "from_scratch")
#: Every protocol: the framework's offline probe of the frozen encoder (``probe``), then the trained ones.
PROTOCOLS = ("probe", *TRAINED)


@dataclass(frozen=True)
class Schedule:
    """The training schedule every trained protocol shares.

    Attributes:
        epochs: passes over the target's train split.
        batch_size: images per step (the last incomplete batch is dropped when there is a full one).
        lr: peak lr of the head (and of every parameter of ``from_scratch``).
        backbone_lr_scale: ``finetune``'s backbone trains at ``lr`` times this.
        weight_decay: AdamW's decoupled decay, not applied to biases and norms.
        warmup_epochs: linear warm-up (may be fractional), then cosine decay to 0.
        label_smoothing: of the cross-entropy.
        crop_scale: area fraction range of the random resized crop.
        flip_p: probability of a horizontal flip.
        num_workers: DataLoader worker processes.
    """

    epochs: int
    batch_size: int
    lr: float
    backbone_lr_scale: float
    weight_decay: float
    warmup_epochs: float
    label_smoothing: float
    crop_scale: tuple[float, float]
    flip_p: float
    num_workers: int = 0


class Classifier(nn.Module):
    """``head(backbone(x))``: (B, C, H, W) normalised images -> (B, classes) logits.

    Args:
        backbone: maps images to (B, num_features) features.
        num_classes: outputs of the fresh linear head.
        frozen: the backbone is not trained: its parameters need no gradient and it stays in eval
            mode (its BatchNorm statistics unchanged) whatever mode the classifier is put in; the
            head standardises its input (a BatchNorm without affine parameters) before the linear layer.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, frozen: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        features = int(backbone.num_features)  # type: ignore[arg-type]
        linear = nn.Linear(features, num_classes)
        # On frozen features, a BatchNorm without affine parameters first (MoCo v3's and MAE's linear
        # probing): it standardises the features, as the offline probe does, so one lr fits any scale.
        self.head: nn.Module = nn.Sequential(nn.BatchNorm1d(features, affine=False), linear) if frozen else linear
        self.frozen = frozen
        if frozen:
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    def train(self, mode: bool = True) -> Classifier:
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        if self.frozen:
            with torch.no_grad():
                h = self.backbone(x)
        else:
            h = self.backbone(x)
        return self.head(h)


def input_pipeline(size: int, mean: Sequence[float], std: Sequence[float], schedule: Schedule) -> ViewMaker:
    """One view per image: ``global_views`` is the training input (random resized crop, flip, no colour
    change), ``prepare`` the evaluation input (the whole image resized); both ``size`` px, normalised
    with ``mean``/``std``."""
    return ViewMaker(
        views=1,
        size=size,
        crop_scale=schedule.crop_scale,
        flip_p=schedule.flip_p,
        jitter=(0.0, 0.0, 0.0, 0.0),
        jitter_p=0.0,
        grayscale_p=0.0,
        mean=mean,
        std=std,
    )


def subset(ds: Dataset, n: int | None, seed: int) -> Dataset:
    """``n`` items of ``ds`` drawn without replacement with ``seed`` (in index order), or all of it."""
    total = len(ds)  # type: ignore[arg-type]
    if n is None or n >= total:
        return ds
    return Subset(ds, seeded_indices(total, n, seed))


def start_classifier(
    protocol: str, pretrained: nn.Module, fresh: Callable[[], nn.Module], num_classes: int, seed: int
) -> Classifier:
    """The classifier ``protocol`` starts from: a copy of the ``pretrained`` backbone (frozen for
    ``linear``) or ``fresh()`` (``from_scratch``), and a linear head initialised with ``seed``.
    ``pretrained`` itself is never changed."""
    if protocol not in TRAINED:
        raise ValueError(f"protocol {protocol!r}; expected one of {list(TRAINED)}")
    torch.manual_seed(seed)
    backbone = fresh() if protocol == "from_scratch" else copy.deepcopy(pretrained)
    backbone.requires_grad_(True)
    torch.manual_seed(seed)  # the head's initialisation is the same whatever the backbone drew
    return Classifier(backbone, num_classes, frozen=protocol == "linear")


def _optimizer(model: Classifier, protocol: str, s: Schedule) -> torch.optim.Optimizer:
    backbone_lr = s.lr * (s.backbone_lr_scale if protocol == "finetune" else 1.0)
    modules = [(model.head, s.lr)] + ([] if model.frozen else [(model.backbone, backbone_lr)])
    groups = [{**g, "lr": lr} for m, lr in modules for g in param_groups([m], exclude_bias_and_norm=True)]
    return torch.optim.AdamW(groups, lr=s.lr, weight_decay=s.weight_decay)


def train_classifier(
    model: Classifier,
    protocol: str,
    data: Dataset,
    inputs: ViewMaker,
    schedule: Schedule,
    seed: int,
    device: torch.device | str = "cpu",
) -> list[float]:
    """Train ``model`` on ``data`` (uint8 ``(image, label, index)`` items) with ``schedule``.

    Deterministic for a given ``seed`` on a given device: it seeds the batch order and the
    augmentation's random draws.

    Returns:
        the mean training loss of each epoch.
    """
    n = len(data)  # type: ignore[arg-type]
    batch = min(schedule.batch_size, n)
    torch.manual_seed(seed)
    loader = DataLoader(
        data,
        batch_size=batch,
        shuffle=True,
        drop_last=n >= schedule.batch_size,
        num_workers=schedule.num_workers,
        generator=torch.Generator().manual_seed(seed),
    )
    steps = len(loader)
    model.to(device)
    inputs.to(device)
    opt = _optimizer(model, protocol, schedule)
    sched = warmup_cosine(opt, schedule.epochs * steps, steps, schedule.warmup_epochs)
    losses = []
    for epoch in range(schedule.epochs):
        model.train()
        total, seen, start = 0.0, 0, time.perf_counter()
        for x, y, _ in loader:
            x, y = x.to(device), y.to(device)
            logits = model(inputs.global_views(x))
            loss = F.cross_entropy(logits, y, label_smoothing=schedule.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(y)
            seen += len(y)
        losses.append(total / max(seen, 1))
        log.info(
            "%s: epoch %d/%d, loss %.4f (%.1f s)",
            protocol,
            epoch + 1,
            schedule.epochs,
            losses[-1],
            time.perf_counter() - start,
        )
    return losses


@torch.no_grad()
def top1(
    model: nn.Module, loader: DataLoader, prepare: Callable[[Tensor], Tensor], device: torch.device | str = "cpu"
) -> float:
    """Top-1 accuracy (percent) of ``model`` (in eval mode) on ``loader``'s uint8 labelled items."""
    correct = count = 0
    model.to(device)
    with eval_mode(model):
        for x, y, _ in loader:
            pred = model(prepare(x.to(device))).argmax(1).cpu()
            correct += int((pred == y).sum())
            count += len(y)
    return 100.0 * correct / max(count, 1)


#: What each protocol's row is, in the printed table.
DESCRIPTIONS = {
    "probe": "frozen encoder: the framework's offline linear probe (L-BFGS on cached features)",
    "linear": "frozen encoder, linear head trained with the schedule",
    "finetune": "encoder and head trained with the schedule",
    "from_scratch": "the same network randomly initialised, trained with the schedule",
}


def table(rows: dict[str, float]) -> str:
    """Markdown table ``protocol | top-1 (%) | what``."""
    lines = ["| protocol | top-1 (%) | what |", "|---|---:|---|"]
    lines += [f"| {name} | {value:.2f} | {DESCRIPTIONS.get(name, '')} |" for name, value in rows.items()]
    return "\n".join(lines)
