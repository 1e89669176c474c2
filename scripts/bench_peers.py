#!/usr/bin/env python
"""The same SimCLR step three ways, side by side: lightly's example, stable-pretraining's, ours.

    make bench-env    # once: .venv-bench with selfsup, lightly and stable-pretraining
    .venv-bench/bin/python scripts/bench_peers.py --device cpu --steps 10 --warmup 3 --batch 128
    .venv-bench/bin/python scripts/bench_peers.py --device cuda --steps 50 --warmup 10 --batch 128

Needs lightly and stable-pretraining (``make bench-env``); nothing in selfsup imports this file.

**The rule: the same backbone, batch and recipe.** Every row trains a ResNet-18 with the CIFAR
stem (3x3 stride-1 first conv, no max-pool; timm's ``resnet18``, as ``backbone=timm
backbone.cifar_stem=true`` builds it: lightly's row gets that very module, stable-pretraining's
its own ``spt.backbone.from_timm("resnet18", low_resolution=True)``, the same layers), a
512-512-128 projector (Linear, BatchNorm, ReLU, Linear), NT-Xent at τ = 0.2, AdamW (lr 1e-3,
weight decay 1e-4), two 32 px SimCLR views per image (random resized crop (0.08, 1), flip 0.5,
colour jitter (0.4, 0.4, 0.2, 0.1) with p 0.8, grey 0.2, no blur, CIFAR-10's normalisation)
of ``--images`` seeded random uint8 RGB images (no download: the peers read them as
torchvision's CIFAR10 serves its images, PIL images from a uint8 array), ``--batch`` images per
step. The per-example choices that differ from this recipe (lightly's example: torchvision's
resnet18 with the ImageNet stem, SGD at lr 0.06, τ 0.5, ImageNet normalisation and jitter 0.8;
stable-pretraining's: a 2048-2048-256 projector, LARS, τ 0.5) are set to the recipe's values,
so the rows differ only in how each framework gets from uint8 images to an optimiser step:

- **lightly**: its documented SimCLR example, lightly-ai/lightly ``examples/pytorch/simclr.py``
  (SimCLRProjectionHead, NTXentLoss, ``SimCLRTransform(input_size=32, gaussian_blur=0.0)``
  applied per sample in a DataLoader, a plain PyTorch loop forwarding each view on its own).
- **stable-pretraining**: its documented CIFAR-10 SimCLR ResNet-18 recipe,
  galilai-group/stable-pretraining ``benchmarks/cifar10/simclr-resnet18.py`` (per-sample
  ``transforms.MultiViewTransform`` of two ``transforms.Compose`` views through
  ``spt.data.FromTorchDataset``, ``spt.data.DataModule``, ``spt.Module`` with
  ``forward.simclr``, ``spt.Manager`` around a Lightning trainer), without its probes and logger.
- **selfsup**: ``train.py``'s module through ``Trainer.fit`` (scripts/bench_train.py ``_fit``:
  ``method=simclr loss=ntxent``, batched views made on the device from uint8 batches).

Each row's step time is the median interval between consecutive training-step starts after
``--warmup`` untimed steps (bench_train.py's ``StepTimes``: Lightning's ``on_train_batch_start``
for the Lightning rows, the same call at the top of lightly's loop), so the data pipeline's
waits are in it. ``--device cpu`` runs with ``--threads`` torch threads (2) and the
per-sample transforms in the main process (``--workers 0``: workers would compete for the
same cores); ``--device cuda`` uses bf16 autocast in all three (``bf16-mixed`` for the
Lightning rows, ``torch.autocast`` around lightly's forward and loss) and ``--workers 8``
DataLoader processes for the per-sample pipelines (both examples' value).

The issue's GPU goals (one GPU, batch 128, 32 px): selfsup's images/s at least 3x lightly's
pipeline and at least 1.5x stable-pretraining's. The table's last column is selfsup's speed
over each row's.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from functools import partial
from typing import Any

import bench_train as bt  # scripts/bench_train.py: this script's folder is on sys.path when it runs
import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

CIFAR_MEAN = [0.4914, 0.4822, 0.4465]
CIFAR_STD = [0.2470, 0.2435, 0.2616]
LR, WEIGHT_DECAY, TEMPERATURE = 1e-3, 1e-4, 0.2


class CifarLike(Dataset):
    """``(PIL image, label)`` items from a (N, H, W, 3) uint8 array, as torchvision's CIFAR10."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Any = None) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        from PIL import Image

        img = Image.fromarray(self.images[i])
        return (self.transform(img) if self.transform is not None else img), int(self.labels[i])


def _data(n: int) -> tuple[np.ndarray, np.ndarray]:
    """bench_train.random_splits' training images, (N, H, W, 3) uint8, and labels."""
    train = bt.random_splits(n).train
    return train.images.permute(0, 2, 3, 1).numpy(), train.labels.numpy()


def cifar_resnet18() -> nn.Module:
    """ResNet-18 with the CIFAR stem exactly as ``backbone=timm backbone.cifar_stem=true`` builds it."""
    from selfsup.backbones import TimmBackbone

    return TimmBackbone(name="resnet18", in_chans=3, cifar_stem=True)


def _projector() -> nn.Sequential:
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True), nn.Linear(512, 128))


def _trainer(device: str, bf16: bool, total: int, timer: bt.StepTimes) -> L.Trainer:
    accelerator = "gpu" if device == "cuda" else "cpu"
    return bt.bench_trainer(
        total, timer, accelerator=accelerator, devices=1, precision="bf16-mixed" if bf16 else "32-true"
    )


def run_lightly(device: str, batch: int, images: int, workers: int, bf16: bool, total: int) -> bt.StepTimes:
    """lightly's examples/pytorch/simclr.py with the recipe's backbone, jitter, τ and optimiser."""
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead
    from lightly.transforms.simclr_transform import SimCLRTransform

    class SimCLR(nn.Module):
        def __init__(self, backbone: nn.Module) -> None:
            super().__init__()
            self.backbone = backbone
            self.projection_head = SimCLRProjectionHead(512, 512, 128)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.backbone(x).flatten(start_dim=1)
            return self.projection_head(x)

    torch.manual_seed(0)
    model = SimCLR(cifar_resnet18()).to(device)
    transform = SimCLRTransform(
        input_size=32,
        cj_bright=0.4,
        cj_contrast=0.4,
        cj_sat=0.2,
        cj_hue=0.1,
        gaussian_blur=0.0,
        normalize={"mean": CIFAR_MEAN, "std": CIFAR_STD},
    )
    x, y = _data(images)
    dataloader = DataLoader(
        CifarLike(x, y, transform=transform),
        batch_size=batch,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=device == "cuda",
        persistent_workers=workers > 0,
    )
    criterion = NTXentLoss(temperature=TEMPERATURE)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    timer, done = bt.StepTimes(), 0
    while done < total:
        for b in dataloader:
            if done == total:
                break
            x0, x1 = b[0]
            x0, x1 = x0.to(device), x1.to(device)
            timer.on_train_batch_start(None)  # type: ignore[arg-type]
            with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
                z0 = model(x0)
                z1 = model(x1)
                loss = criterion(z0, z1)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            done += 1
    return timer


def run_spt(device: str, batch: int, images: int, workers: int, bf16: bool, total: int) -> bt.StepTimes:
    """stable-pretraining's benchmarks/cifar10/simclr-resnet18.py with the recipe's projector, τ
    and optimiser, without its probes, LR monitor and wandb logger."""
    import stable_pretraining as spt
    from stable_pretraining import forward
    from stable_pretraining.data import transforms

    def view() -> Any:
        return transforms.Compose(
            transforms.RGB(),
            transforms.RandomResizedCrop((32, 32)),
            transforms.RandomHorizontalFlip(p=0.5),
            transforms.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, p=0.8),
            transforms.RandomGrayscale(p=0.2),
            transforms.ToImage(**spt.data.static.CIFAR10),
        )

    torch.manual_seed(0)
    x, y = _data(images)
    train_dataset = spt.data.FromTorchDataset(
        CifarLike(x, y), names=["image", "label"], transform=transforms.MultiViewTransform([view(), view()])
    )
    train_dataloader = DataLoader(
        dataset=train_dataset,
        batch_size=batch,
        num_workers=workers,
        drop_last=True,
        shuffle=True,
        pin_memory=device == "cuda",
        persistent_workers=workers > 0,
    )
    data = spt.data.DataModule(train=train_dataloader)
    backbone = spt.backbone.from_timm("resnet18", low_resolution=True, num_classes=0)
    module = spt.Module(
        backbone=backbone,
        projector=_projector(),
        forward=forward.simclr,
        simclr_loss=spt.losses.NTXEntLoss(temperature=TEMPERATURE),
        optim={"optimizer": {"type": "AdamW", "lr": LR, "weight_decay": WEIGHT_DECAY}},
    )
    timer = bt.StepTimes()
    spt.Manager(trainer=_trainer(device, bf16, total, timer), module=module, data=data)()
    return timer


def run_ours(
    device: str, batch: int, images: int, workers: int, bf16: bool, total: int, layout: str = "joint"
) -> bt.StepTimes:
    """train.py's module through Trainer.fit (bench_train.py's ``_fit``), same images. ``layout``:
    SimCLR's published ``joint`` forward (both views in one pass, the default), or ``per_view``, one
    pass per view as lightly's and stable-pretraining's examples do (BN statistics per view)."""
    overrides = [*bt.P1_DATA, "method=simclr", "loss=ntxent", f"data.batch_size={batch}"]
    overrides.append(f"method.module.forward_layout={layout}")
    kwargs = {"accelerator": "gpu" if device == "cuda" else "cpu", "devices": 1}
    kwargs["precision"] = "bf16-mixed" if bf16 else "32-true"
    timer = bt.StepTimes()
    bt._fit(overrides, kwargs, total - 1, 0, splits=lambda: bt.random_splits(images), timer=timer)  # total steps
    return timer


ROWS: dict[str, Callable[[str, int, int, int, bool, int], bt.StepTimes]] = {
    "lightly (per-sample SimCLRTransform, plain loop)": run_lightly,
    "stable-pretraining (per-sample MultiViewTransform, spt.Module)": run_spt,
    "selfsup (batched views on the device, Trainer.fit)": run_ours,
    "selfsup, forward_layout=per_view": partial(run_ours, layout="per_view"),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per row")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--batch", type=int, default=128, help="images per step")
    ap.add_argument("--images", type=int, default=4096, help="seeded random uint8 32 px RGB images")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (--device cpu)")
    ap.add_argument("--workers", type=int, default=None, help="DataLoader workers of the per-sample pipelines")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_peers.py --device cuda: no CUDA GPU here")
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    workers = args.workers if args.workers is not None else (8 if args.device == "cuda" else 0)
    bf16 = args.device == "cuda"
    # StepTimes keeps one start per step and the one after the last timed step (_fit's max_steps).
    total = args.warmup + args.steps + 1
    seconds: dict[str, float] = {}
    for name, run in ROWS.items():
        L.seed_everything(0, verbose=False)
        timer = run(args.device, args.batch, args.images, workers, bf16, total)
        seconds[name] = statistics.median(timer.intervals(args.warmup))
    ours = seconds["selfsup (batched views on the device, Trainer.fit)"]
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    precision = "bf16" if bf16 else "fp32"
    lines = [
        f"| pipeline | s/step | steps/s | images/s | selfsup's speed / this row's |  ({where}, {precision}, "
        f"batch {args.batch}, {args.steps} steps, {workers} workers)",
        "|---|---:|---:|---:|---:|",
    ]
    for name, s in seconds.items():
        lines.append(f"| {name} | {s:.4f} | {1 / s:.2f} | {args.batch / s:,.0f} | {s / ours:.2f}x |")
    lines.append("GPU goals: selfsup >= 3x lightly's images/s, >= 1.5x stable-pretraining's.")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
