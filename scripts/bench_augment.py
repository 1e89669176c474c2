#!/usr/bin/env python
"""Views per second: the batched view maker vs torchvision's per-sample pipeline, in one run.

Both make the SimCLR recipe's views of the same seeded uint8 images. The batched backend
gets uint8 batches from a DataLoader in the main process and makes the views on the device
(what training does); the per-sample backend runs torchvision v2 in a DataLoader with the
machine's workers. Also times variants (RandAugment, random fields, CutMix, multi-crop)
and, for the ops written here rather than taken from kornia, kornia's equivalent on the
same batch with its agreement with torchvision.

    python scripts/bench_augment.py --size 32 --images 4096            # CPU
    python scripts/bench_augment.py --size 32 --device cuda --images 16384
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from selfsup.augment import CutMix, Mixup, RandAugment, RandomFields, ResizeMix, ViewMaker
from selfsup.augment.torchvision_views import TorchvisionViews
from selfsup.data.base import TensorImageDataset
from selfsup.data.module import Transformed

# augment=simclr with the px32 preset (configs/augment/preset/px32.yaml).
RECIPE: dict[str, Any] = dict(
    views=2, crop_scale=(0.08, 1.0), flip_p=0.5, jitter=(0.4, 0.4, 0.2, 0.1), jitter_p=0.8, grayscale_p=0.2,
    blur_p=0.0, mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26),
)  # fmt: skip


def _strengths() -> tuple[float, float, float, float]:
    b, c, s, h = RECIPE["jitter"]
    return b, c, s, h


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_loop(run_epoch: Callable[[], int], epochs: int, device: torch.device) -> float:
    """Views per second over ``epochs`` epochs after one warm-up epoch."""
    run_epoch()
    _sync(device)
    start = time.perf_counter()
    views = sum(run_epoch() for _ in range(epochs))
    _sync(device)
    return views / (time.perf_counter() - start)


def _groups(vm: ViewMaker, x: torch.Tensor) -> list[torch.Tensor]:
    return vm(x).groups


def batched(
    ds: TensorImageDataset,
    make: Callable[[torch.Tensor], list[torch.Tensor]],
    batch: int,
    device: torch.device,
    epochs: int,
) -> float:
    """``make``: uint8 batch on the device -> view tensors."""
    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=0, pin_memory=device.type == "cuda")

    def epoch() -> int:
        return sum(sum(v.shape[0] for v in make(x.to(device, non_blocking=True))) for x, _, _ in loader)

    return time_loop(epoch, epochs, device)


def per_sample(ds: TensorImageDataset, tv: TorchvisionViews, batch: int, workers: int, epochs: int) -> float:
    loader = DataLoader(
        Transformed(ds, tv.sample_transform),  # type: ignore[arg-type]
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
    )

    def epoch() -> int:
        return sum(len(views) * views[0].shape[0] for views, _, _ in loader)

    return time_loop(epoch, epochs, torch.device("cpu"))


def kornia_recipe(size: int, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The same recipe from kornia's augmentation module (colour-jitter order drawn per batch)."""
    try:
        import kornia.augmentation as K
    except ImportError:
        return None
    seq = K.AugmentationSequential(
        K.RandomResizedCrop((size, size), scale=RECIPE["crop_scale"]),
        K.RandomHorizontalFlip(p=RECIPE["flip_p"]),
        K.ColorJitter(*_strengths(), p=RECIPE["jitter_p"]),
        K.RandomGrayscale(p=RECIPE["grayscale_p"]),
        K.Normalize(torch.tensor(RECIPE["mean"]), torch.tensor(RECIPE["std"])),
    )
    seq = seq.to(device)
    return lambda x: torch.cat([seq(x.float() / 255) for _ in range(RECIPE["views"])])


def kornia_ops(x: torch.Tensor, device: torch.device, epochs: int) -> dict[str, Any] | None:
    """Each op written here vs kornia's on one float batch (images/s), and kornia's colour fidelity."""
    try:
        import kornia.augmentation as K
    except ImportError:
        return None
    import torchvision.transforms.v2.functional as TF

    from selfsup.augment import color
    from selfsup.augment.geometry import resized_crop, sample_crop_boxes
    from selfsup.augment.views import _jitter

    xf = (x.float() / 255).to(device)
    b, size = xf.shape[0], xf.shape[-1]

    def crop_flip(t: torch.Tensor) -> torch.Tensor:
        boxes = sample_crop_boxes(b, size, size, RECIPE["crop_scale"], (3 / 4, 4 / 3), device)
        return resized_crop(t, boxes, size, flip=torch.rand(b, device=device) < 0.5)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return color.gaussian_blur(t, torch.empty(b, device=device).uniform_(0.1, 2.0), 3)

    ours: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "crop+flip": crop_flip,
        "colour jitter": lambda t: _jitter(t, RECIPE["jitter"], 0.8),
        "grayscale": color.grayscale,
        "gaussian blur": blur,
        "solarize": color.solarize,
    }
    theirs: dict[str, torch.nn.Module] = {
        "crop+flip": K.AugmentationSequential(K.RandomResizedCrop((size, size), scale=RECIPE["crop_scale"]),
                                              K.RandomHorizontalFlip()),
        "colour jitter": K.ColorJitter(*_strengths(), p=0.8),
        "grayscale": K.RandomGrayscale(p=1.0),
        "gaussian blur": K.RandomGaussianBlur((3, 3), (0.1, 2.0), p=1.0),
        "solarize": K.RandomSolarize(thresholds=0.0, additions=0.0, p=1.0),
    }  # fmt: skip

    def rate(fn: Callable[[torch.Tensor], torch.Tensor]) -> float:
        def epoch() -> int:
            for _ in range(20):
                fn(xf.clone())
            return 20 * b

        return time_loop(epoch, epochs, device)

    speed = {name: {"ours": rate(ours[name]), "kornia": rate(theirs[name].to(device))} for name in ours}
    probe = torch.rand(8, 3, 32, 32, device=device)
    cases: tuple[tuple[str, dict[str, Any], Callable[[torch.Tensor], torch.Tensor]], ...] = (
        ("brightness", {"brightness": (1.3, 1.3)}, lambda t: TF.adjust_brightness(t, 1.3)),
        ("contrast", {"contrast": (1.3, 1.3)}, lambda t: TF.adjust_contrast(t, 1.3)),
        ("saturation", {"saturation": (1.3, 1.3)}, lambda t: TF.adjust_saturation(t, 1.3)),
        ("hue", {"hue": (0.1, 0.1)}, lambda t: TF.adjust_hue(t, 0.1)),
    )
    fidelity = {name: float((K.ColorJitter(**kw, p=1.0)(probe) - ref(probe)).abs().max()) for name, kw, ref in cases}
    return {"images_per_s": speed, "kornia_jitter_max_error_vs_torchvision": fidelity}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=32, help="image and view side in pixels")
    p.add_argument("--images", type=int, default=4096, help="images per epoch")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--epochs", type=int, default=2, help="timed epochs (after one warm-up)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="per-sample DataLoader workers")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=None, help="also write the figures as JSON here")
    args = p.parse_args()
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.images, 3, args.size, args.size), generator=g, dtype=torch.uint8)
    ds = TensorImageDataset(images, torch.zeros(args.images, dtype=torch.long))
    recipe = {**RECIPE, "size": args.size}
    local = {"local_views": 4, "local_size": args.size // 2}
    fields: dict[str, Any] = dict(translate=(1.0, 4.0), rotate=(5.0, 4.0), scale=(0.05, 4.0), shear=(0.05, 4.0),
                  brightness=(0.1, 4.0), contrast=(0.1, 4.0), saturation=(0.1, 4.0), hue=(0.02, 4.0))  # fmt: skip
    variants: dict[str, dict[str, Any]] = {
        "simclr": {},
        "randaugment": {"randaugment": RandAugment()},
        "multicrop": local,
        "cutmix": {"mix": CutMix()},
        "mixup": {"mix": Mixup()},
        "resizemix": {"mix": ResizeMix()},
        "random_fields": {"random_fields": RandomFields(**fields)},
    }
    torch.manual_seed(0)
    res: dict[str, Any] = {"device": str(device), "threads": torch.get_num_threads(), "workers": args.workers}
    print(f"{args.images} images of {args.size} px, batch {args.batch}, {device}, "
          f"{torch.get_num_threads()} threads, {args.workers} per-sample workers")  # fmt: skip
    # An untimed pass first: a process's first timed loop can run slow for a while (allocator and
    # page warm-up); in two of three runs without it the first row came out at half speed.
    batched(ds, partial(_groups, ViewMaker(**recipe)), args.batch, device, 1)
    print("| augment | batched views/s | torchvision per-sample views/s | ratio |\n|---|---:|---:|---:|")
    for name, extra in variants.items():
        vm = ViewMaker(**recipe, **extra).to(device)
        b = batched(ds, partial(_groups, vm), args.batch, device, args.epochs)
        t = None
        if name in ("simclr", "randaugment", "multicrop"):
            t = per_sample(ds, TorchvisionViews(**recipe, **extra), args.batch, args.workers, args.epochs)
        res[name] = {"batched_views_per_s": b, "per_sample_views_per_s": t, "ratio": b / t if t else None}
        ts = f"{t:,.0f}" if t else "n/a"
        rs = f"{b / t:.2f}x" if t else "n/a"
        print(f"| {name} | {b:,.0f} | {ts} | {rs} |", flush=True)
    kr = kornia_recipe(args.size, device)
    if kr is not None:
        b = batched(ds, lambda x: [kr(x)], args.batch, device, args.epochs)
        t = res["simclr"]["per_sample_views_per_s"]
        res["simclr_kornia"] = {"batched_views_per_s": b, "per_sample_views_per_s": t, "ratio": b / t}
        print(f"| simclr, kornia.augmentation | {b:,.0f} | {t:,.0f} | {b / t:.2f}x |", flush=True)
    k = kornia_ops(images[: args.batch], device, args.epochs)
    if k is not None:
        res["kornia"] = k
        print(f"\nOne op on {args.batch} images of {args.size} px, images/s:\n")
        print("| op | ours | kornia | ours / kornia |\n|---|---:|---:|---:|")
        for name, r in k["images_per_s"].items():
            print(f"| {name} | {r['ours']:,.0f} | {r['kornia']:,.0f} | {r['ours'] / r['kornia']:.2f}x |")
        errs = k["kornia_jitter_max_error_vs_torchvision"]
        print(
            "\nkornia ColorJitter vs torchvision, max abs error: " + ", ".join(f"{n} {v:.1e}" for n, v in errs.items())
        )
    if args.out:
        args.out.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
