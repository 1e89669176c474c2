#!/usr/bin/env python
"""Training-step throughput of the real Lightning module, measured in one invocation.

    python scripts/bench_train.py ddp [--steps N] [--batch B]   # CPU: 1 process vs 2 gloo processes
    python scripts/bench_train.py gpu [--steps N] [--batch B]   # one GPU: 32, bf16, bf16+channels_last+compile
        # (--device cpu: the same code without the compile row, a dry run)
    python scripts/bench_train.py methods [--steps N] [--batch B]   # CPU: every method's step vs SimCLR's
    python scripts/bench_train.py layout [--steps N] [--batch B]    # CPU: forward_layout joint vs per_view
    python scripts/bench_train.py resident [--steps N] [--batch B] [--device cuda] [--data cifar10]
        # the data path alone: DataLoader vs data.on_device=true
    python scripts/bench_train.py p1 [--steps N] [--batch B]   # the module's step vs a hand-written loop
    python scripts/bench_train.py views [--steps N] [--batch B] [--device cuda]
        # the share of a ResNet-18 SimCLR step spent making the views on the device

Every row trains ResNet-18 (timm, CIFAR stem) on 32 px SimCLR views of the bundled digits
(upsampled crops, so no download), NT-Xent, through ``lightning.Trainer.fit`` with
evaluation off. A step's time is the median interval between consecutive training-batch
starts on rank 0 after ``--warmup`` untimed steps (compilation happens there).

``ddp``: one process with batch B and one thread, then two processes over gloo with batch B
each and one thread each (the same per-process work: the difference is DDP's cost, the
all-reduce of the gradients and the gather of the negatives), then two processes with B/2
each (the same global batch as the single process).

``resident``: no model; a step is taking one training batch to ``--device`` and making its views
with the real ViewMaker, timed over ``--steps`` after ``--warmup`` (epochs wrap around). The
DataLoader with ``num_workers=0`` and with the data option's own ``num_workers``, against
``data.on_device=true`` (the set held on the device, batches gathered there: airbench's approach).

``p1``: the framework's step (this module through ``Trainer.fit``, as above) against a
hand-written PyTorch loop over the same components built from the same config (backbone, head,
loss, view maker, optimiser and lr schedule, the same seed, so the same initial weights), the
same uint8 batches (4,096 seeded random 32 px RGB images with CIFAR-10's normalisation and view
preset, ``data=cifar10``; a DataLoader of the same data module), batch and threads, in one
process, on a CUDA GPU if there is one, else the CPU. The two paths alternate (A B A B) so that
drift hits both; each round has its own warm-up. The goal: the framework at >= 0.97x the
hand-written loop's images/s.

``views``: the hand-written loop's step split in two, each part timed between device
synchronisations: making the views of the uint8 batch already on ``--device`` (the batched
SimCLR recipe) and the rest (forward, loss, backward, optimiser step). On a CUDA GPU under bf16
autocast with channels_last, as ``experiment=cifar10_speedrun`` trains; on the CPU in float32.
The figure: the views' share of the whole step (medians over ``--steps`` after ``--warmup``).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.multiprocessing as mp

ROOT = Path(__file__).resolve().parent.parent

MODEL = [
    "backbone=timm",
    "backbone.name=resnet18",
    "backbone.cifar_stem=true",
    "data.view.size=32",
    "eval.online_probe=false",
    "eval.metrics.enabled=false",
    "data.num_workers=0",
]
# --tiny (a dry run of a benchmark's code, e.g. scripts/gpu_evidence.py --dry-run): the small CNN
# instead of ResNet-18, so that every row takes seconds on a CPU. Its figures mean nothing.
TINY_MODEL = ["backbone=small_cnn", "data.view.size=32", "eval.online_probe=false", "eval.metrics.enabled=false",
              "data.num_workers=0"]  # fmt: skip


class StepTimes(L.Callback):
    """Wall-clock time at the start of every training batch."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.starts.append(time.perf_counter())

    def intervals(self, warmup: int) -> list[float]:
        """Seconds between consecutive batch starts, the first ``warmup`` batches left out."""
        return [b - a for a, b in zip(self.starts[warmup:], self.starts[warmup + 1 :], strict=False)]

    def median_step(self, warmup: int) -> float:
        return statistics.median(self.intervals(warmup))


def _compose(overrides: list[str]) -> Any:
    from hydra import compose, initialize_config_dir

    keys = {o.split("=", 1)[0] for o in overrides}
    model = [o for o in MODEL if o.split("=", 1)[0] not in keys]  # a key given replaces MODEL's
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose(config_name="train", overrides=[*model, *overrides])


def bench_trainer(max_steps: int, timer: StepTimes, **trainer_kwargs: Any) -> L.Trainer:
    """A Trainer that only trains: ``max_steps`` steps, no validation, logging, checkpoints or bars."""
    return L.Trainer(
        max_steps=max_steps,
        max_epochs=-1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
        default_root_dir=tempfile.mkdtemp(),
        **trainer_kwargs,
    )


def _fit(
    overrides: list[str],
    trainer_kwargs: dict[str, Any],
    steps: int,
    warmup: int,
    splits: Callable[[], Any] | None = None,
    timer: StepTimes | None = None,
) -> float:
    """Median step time of ``Trainer.fit``; ``splits`` replaces the config's data (an
    :class:`~selfsup.data.base.ImageSplits` builder), ``timer`` keeps every batch start."""
    from selfsup.build import build_datamodule, build_module, build_view_maker

    cfg = _compose(overrides)
    L.seed_everything(0, verbose=False)
    vm = build_view_maker(cfg)
    dm = build_datamodule(cfg, vm)
    if splits is not None:
        dm.splits = splits()
    module = build_module(cfg, vm)
    timer = timer or StepTimes()
    trainer = bench_trainer(warmup + steps + 1, timer, **trainer_kwargs)
    trainer.fit(module, datamodule=dm)
    return timer.median_step(warmup)


def _ddp_worker(rank: int, world: int, port: int, batch: int, steps: int, warmup: int, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    kwargs = {"accelerator": "cpu", "devices": world, "strategy": "ddp"}
    seconds = _fit([f"data.batch_size={batch}"], kwargs, steps, warmup)
    if rank == 0:
        Path(out).write_text(str(seconds))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ddp(world: int, batch: int, steps: int, warmup: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        out = str(Path(d) / "seconds")
        mp.spawn(_ddp_worker, args=(world, _free_port(), batch, steps, warmup, out), nprocs=world, join=True)
        return float(Path(out).read_text())


def bench_ddp(batch: int, steps: int, warmup: int) -> list[str]:
    torch.set_num_threads(1)
    one = _fit([f"data.batch_size={batch}"], {"accelerator": "cpu", "devices": 1}, steps, warmup)
    two = _ddp(2, batch, steps, warmup)
    half = _ddp(2, batch // 2, steps, warmup)
    rows = [
        ("1 process", batch, batch, one),
        ("2 processes, gloo", batch, 2 * batch, two),
        ("2 processes, gloo", batch // 2, batch, half),
    ]
    lines = [
        "| run | batch per process | global batch | s/step | images/s | step time vs 1 process |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, b, g, s in rows:
        lines.append(f"| {name} | {b} | {g} | {s:.3f} | {g / s:,.0f} | {s / one:.2f}x |")
    return lines


def bench_gpu(batch: int, steps: int, warmup: int, device: str = "cuda") -> list[str]:
    """32-true vs bf16-mixed vs + channels_last vs + torch.compile on one GPU. ``device="cpu"``
    (a dry run of the same code) leaves out the compile row: inductor's CPU build takes minutes."""
    cuda = device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("bench_train.py gpu: no CUDA GPU here")
    base = {"accelerator": "gpu" if cuda else "cpu", "devices": 1}
    rows = [
        ("32-true", [], "32-true"),
        ("bf16-mixed", [], "bf16-mixed"),
        ("bf16-mixed + channels_last", ["trainer.channels_last=true"], "bf16-mixed"),
        ("bf16-mixed + channels_last + compile", ["trainer.channels_last=true", "trainer.compile=true"], "bf16-mixed"),
    ]
    if not cuda:
        rows = rows[:-1]
    where = torch.cuda.get_device_name() if cuda else f"CPU, {torch.get_num_threads()} threads"
    lines = [
        f"| precision / options | s/step | images/s | vs 32-true |  ({where}, batch {batch})",
        "|---|---:|---:|---:|",
    ]
    first = None
    for name, overrides, precision in rows:
        s = _fit([f"data.batch_size={batch}", *overrides], base | {"precision": precision}, steps, warmup)
        first = first or s
        lines.append(f"| {name} | {s:.4f} | {batch / s:,.0f} | {first / s:.2f}x |")
    return lines


def bench_methods(batch: int, steps: int, warmup: int) -> list[str]:
    """Every configs/method option on the same backbone and batch, one process, relative to SimCLR;
    a method that reads patch tokens (MAE) on its own config's Vision Transformer instead, named in
    its row.

    Each method keeps its own defaults (loss, projector, predictor, views): the step is what a user
    gets from ``method=NAME``. On the CPU with the threads torch picks.
    """
    from hydra import compose, initialize_config_dir

    from selfsup import registry

    methods = registry.methods()
    methods.remove("simclr")
    times, labels = {}, {}
    for m in ["simclr", *methods]:
        own: list[str] = []
        labels[m] = m
        cls: Any = registry.method_class(m)
        with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
            its_own = compose(config_name="train", overrides=[f"method={m}"])  # the method's config as it is
        # a method that reads patch tokens keeps its config's Vision Transformer
        if getattr(cls, "needs_tokens", False):
            name = its_own.backbone.name
            own, labels[m] = ["backbone=timm", f"backbone.name={name}", "backbone.cifar_stem=false"], f"{m} ({name})"
        # a method that needs a file of the user's (distillation's teacher) gets its stand-in
        channels = int(its_own.data.channels)
        stand_in = cls.stand_in_overrides(Path(tempfile.mkdtemp()), channels)
        if stand_in:
            labels[m] = f"{m} (stand-in: {', '.join(o.split('=', 1)[0] for o in stand_in)})"
        times[m] = _fit([f"method={m}", f"data.batch_size={batch}", *own, *stand_in],
                        {"accelerator": "cpu", "devices": 1}, steps, warmup)  # fmt: skip
    lines = [
        f"| method | s/step | images/s | step time vs simclr |  (batch {batch}, {torch.get_num_threads()} threads)",
        "|---|---:|---:|---:|",
    ]
    for m, s in times.items():
        lines.append(f"| {labels[m]} | {s:.3f} | {batch / s:,.0f} | {s / times['simclr']:.2f}x |")
    return lines


#: The methods ``layout`` times: SimCLR (one encoder) and BYOL (with a momentum teacher's forward).
LAYOUT_METHODS = ("simclr", "byol")


def bench_layout(batch: int, steps: int, warmup: int) -> list[str]:
    """``method.module.forward_layout=joint`` (one forward of the 2B views) against ``per_view`` (two
    forwards of B) for each method of :data:`LAYOUT_METHODS`, the same batch, one process on the CPU
    with the threads torch picks. Only the batch-norm statistics differ between the two, not the work.
    """
    base = {"accelerator": "cpu", "devices": 1}
    threads = torch.get_num_threads()
    lines = [
        f"| method | layout | s/step | images/s | per_view vs joint |  (batch {batch}, {threads} threads)",
        "|---|---|---:|---:|---:|",
    ]
    for method in LAYOUT_METHODS:
        times = {
            layout: _fit(
                [f"method={method}", f"data.batch_size={batch}", f"method.module.forward_layout={layout}"],
                base,
                steps,
                warmup,
            )
            for layout in ("joint", "per_view")
        }
        for layout, s in times.items():
            lines.append(f"| {method} | {layout} | {s:.3f} | {batch / s:,.0f} | {s / times['joint']:.2f}x |")
    return lines


def _endless(batches: Iterable[Any]) -> Iterator[Any]:
    while True:
        yield from batches


def _data_path_rate(batches: Iterable[Any], view_maker: torch.nn.Module, device: str, steps: int, warmup: int) -> float:
    """Batches per second of taking a batch to ``device`` (a no-op when it is there) and making its views."""

    def step(batch: Any) -> None:
        view_maker(batch[0].to(device, non_blocking=True))

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    it = _endless(batches)
    for _ in range(warmup):
        step(next(it))
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step(next(it))
    sync()
    return steps / (time.perf_counter() - start)


def bench_resident(
    batch: int, steps: int, warmup: int, device: str = "cpu", data: str = "digits", data_root: str | None = None
) -> list[str]:
    """The data path of a training step, DataLoader against ``data.on_device=true`` (no model)."""
    from hydra import compose, initialize_config_dir

    from selfsup.build import build_datamodule, build_view_maker

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("bench_train.py resident --device cuda: no CUDA GPU here")
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        root = [f"data.root={data_root}"] if data_root else []
        cfg = compose(config_name="train", overrides=[f"data={data}", f"data.batch_size={batch}", *root])
    L.seed_everything(0, verbose=False)
    view_maker = build_view_maker(cfg).to(device)
    workers = sorted({0, int(cfg.data.num_workers)})
    rows: list[tuple[str, float]] = []
    for n in workers:
        cfg.data.num_workers = n
        loader = build_datamodule(cfg).train_dataloader()
        rows.append((f"DataLoader, num_workers={n}", _data_path_rate(loader, view_maker, device, steps, warmup)))
        del loader  # its workers stop
    resident = build_datamodule(cfg).device_batches(device)
    rows.append(("data.on_device=true", _data_path_rate(resident, view_maker, device, steps, warmup)))
    lines = [
        f"| path | batches/s | images/s | vs DataLoader, num_workers=0 |  (data={data}, batch {batch}, {device}, "
        f"{torch.get_num_threads()} threads)",
        "|---|---:|---:|---:|",
    ]
    for name, rate in rows:
        lines.append(f"| {name} | {rate:.1f} | {rate * batch:,.0f} | {rate / rows[0][1]:.2f}x |")
    return lines


def random_splits(n: int = 4096, size: int = 32, seed: int = 0) -> Any:
    """``n`` seeded random uint8 RGB images of ``size`` px as the training split (and 256 more
    held out): CIFAR-shaped data without a download. Labels are random in 0..9."""
    from selfsup.data.base import ImageSplits, TensorImageDataset

    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n + 256, 3, size, size), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n + 256,), generator=g)
    return ImageSplits(TensorImageDataset(x[:n], y[:n]), TensorImageDataset(x[n:], y[n:]), num_classes=10)


# P1's data: CIFAR-10's channels, normalisation and 32 px view preset; the images: random_splits.
P1_DATA = ["data=cifar10"]


def _hand_components(overrides: list[str], device: torch.device, total: int) -> tuple[Any, ...]:
    """What ``_fit`` trains, built from the same config in the same order after the same seed (so
    with the same initial weights): view maker, data module (bench images), backbone (in the
    config's memory format), head, loss, optimiser (the framework's parameter groups: no weight
    decay on biases and norms; its lr scaling) and the per-step lr schedule over ``total`` steps."""
    from hydra.utils import instantiate

    from selfsup.build import build_backbone, build_datamodule, build_view_maker
    from selfsup.methods.base import param_groups
    from selfsup.optim import lr_scaling

    cfg = _compose(overrides)
    L.seed_everything(0, verbose=False)
    view_maker = build_view_maker(cfg).to(device)
    dm = build_datamodule(cfg, view_maker)
    dm.splits = random_splits()
    backbone = build_backbone(cfg)
    head = instantiate(cfg.head, in_dim=backbone.num_features)
    loss_fn = instantiate(cfg.loss)
    fmt = torch.channels_last if cfg.trainer.channels_last else torch.contiguous_format
    backbone.to(device).to(memory_format=fmt).train()  # as the module: moved, then configure_model
    head.to(device).train()
    loss_fn.to(device)
    optimizer = instantiate(cfg.optim.optimizer)(param_groups([backbone, head], cfg.optim.exclude_bias_and_norm))
    scale = lr_scaling(cfg.optim.lr_scaling.rule, cfg.optim.lr_scaling.reference_batch)
    for group in optimizer.param_groups:
        group["lr"] *= scale(dm.batch_size) if scale is not None else 1.0
    scheduler = instantiate(cfg.optim.scheduler)(optimizer, total_steps=total, steps_per_epoch=total)
    return view_maker, dm, backbone, head, loss_fn, optimizer, scheduler, fmt


def _hand_loop(overrides: list[str], device: torch.device, steps: int, warmup: int, timer: StepTimes) -> None:
    """The plain PyTorch loop over ``_hand_components`` and the same data module's DataLoader, for
    as many steps as ``_fit``: ``views = view_maker(x)``; ``loss(head(backbone(views)))`` (one
    forward per view size, as ``Method.encode``); backward; ``optimizer.step()``;
    ``scheduler.step()``; ``zero_grad``."""
    total = warmup + steps + 1  # _fit's max_steps
    view_maker, dm, backbone, head, loss_fn, optimizer, scheduler, fmt = _hand_components(overrides, device, total)
    done = 0
    while done < total:
        for x, y, index in dm.train_dataloader():
            if done == total:
                break
            x, y, index = (t.to(device, non_blocking=True) for t in (x, y, index))
            timer.on_train_batch_start(None)  # type: ignore[arg-type]
            views = view_maker(x)
            h = torch.cat([backbone(g.contiguous(memory_format=fmt)) for g in views.groups])
            loss = loss_fn(head(h), views=views.count)
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            done += 1


def bench_views(batch: int, steps: int, warmup: int, device: str = "cpu") -> list[str]:
    """Seconds per step making the views vs the rest of the step, on ``device`` (see the module doc)."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("bench_train.py views --device cuda: no CUDA GPU here")
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    overrides = [*P1_DATA, "method=simclr", "loss=ntxent", f"data.batch_size={batch}", "trainer.channels_last=true"]
    view_maker, dm, backbone, head, loss_fn, optimizer, scheduler, fmt = _hand_components(
        overrides, dev, warmup + steps
    )
    x = dm.splits.train.images[:batch].to(dev)  # (B, 3, 32, 32) uint8, already on the device

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    parts: dict[str, list[float]] = {"views": [], "rest": []}
    for i in range(warmup + steps):
        sync()
        t0 = time.perf_counter()
        views = view_maker(x)
        sync()
        t1 = time.perf_counter()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
            h = torch.cat([backbone(g.contiguous(memory_format=fmt)) for g in views.groups])
            loss = loss_fn(head(h).float(), views=views.count)
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        sync()
        t2 = time.perf_counter()
        if i >= warmup:
            parts["views"].append(t1 - t0)
            parts["rest"].append(t2 - t1)
    v, r = statistics.median(parts["views"]), statistics.median(parts["rest"])
    where = torch.cuda.get_device_name() if cuda else f"CPU, {torch.get_num_threads()} threads"
    precision = "bf16 autocast" if cuda else "float32"
    return [
        f"| part of the step | s (median) | share |  ({where}, ResNet-18 CIFAR stem, SimCLR, batch {batch}, "
        f"{precision}, channels_last)",
        "|---|---:|---:|",
        f"| making the views (batched, on the device) | {v:.4f} | {100 * v / (v + r):.1f} % |",
        f"| forward, loss, backward, optimiser | {r:.4f} | {100 * r / (v + r):.1f} % |",
        "Goal: making the views <= 5 % of the step.",
    ]


def bench_p1(batch: int, steps: int, warmup: int, rounds: int = 2) -> list[str]:
    """The framework's SimCLR step against the hand-written loop, alternating, ``rounds`` of each."""
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    overrides = [*P1_DATA, "method=simclr", "loss=ntxent", f"data.batch_size={batch}"]
    kwargs = {"accelerator": "gpu" if cuda else "cpu", "devices": 1}
    times: dict[str, list[float]] = {"framework (Trainer.fit)": [], "hand-written loop": []}
    medians: dict[str, list[float]] = {k: [] for k in times}
    for _ in range(rounds):
        for path in times:
            timer = StepTimes()
            if path.startswith("framework"):
                _fit(overrides, kwargs, steps, warmup, splits=random_splits, timer=timer)
            else:
                _hand_loop(overrides, device, steps, warmup, timer)
            gaps = timer.intervals(warmup)
            times[path] += gaps
            medians[path].append(statistics.median(gaps))
    hand = statistics.median(times["hand-written loop"])
    where = torch.cuda.get_device_name() if cuda else f"CPU, {torch.get_num_threads()} threads"
    lines = [
        f"| path | s/step (median) | images/s | framework / hand-written | spread: IQR of steps | "
        f"median per round |  ({where}, batch {batch}, {rounds} rounds x {steps} steps)",
        "|---|---:|---:|---:|---:|---|",
    ]
    for path, gaps in times.items():
        s = statistics.median(gaps)
        q = statistics.quantiles(gaps, n=4) if len(gaps) > 1 else [s, s, s]
        ratio = f"{hand / s:.3f}x" if path.startswith("framework") else "1x"
        rounds_s = ", ".join(f"{m:.4f}" for m in medians[path])
        lines.append(f"| {path} | {s:.4f} | {batch / s:,.0f} | {ratio} | {q[0]:.4f}-{q[2]:.4f} | {rounds_s} |")
    lines.append("Goal: framework / hand-written >= 0.97x (images/s).")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["ddp", "gpu", "methods", "layout", "resident", "p1", "views"])
    ap.add_argument("--steps", type=int, default=20, help="timed steps per row")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation)")
    ap.add_argument("--batch", type=int, default=64, help="images per process per step")
    ap.add_argument(
        "--device", default=None, help="gpu, resident, views: where to run (cuda, cpu); gpu's default cuda, else cpu"
    )
    ap.add_argument("--data", default="digits", help="resident: the data option (configs/data/)")
    ap.add_argument("--data-root", default=None, help="resident: data.root of that option")
    ap.add_argument("--tiny", action="store_true", help="the small CNN instead of ResNet-18: a dry run, no figures")
    args = ap.parse_args(argv)
    if args.tiny:
        MODEL[:] = TINY_MODEL
    device = args.device or "cpu"
    resident: Callable[[int, int, int], list[str]] = partial(
        bench_resident, device=device, data=args.data, data_root=args.data_root
    )
    on_device: dict[str, Callable[[int, int, int], list[str]]] = {
        "resident": resident,
        "views": partial(bench_views, device=device),
        "gpu": partial(bench_gpu, device=args.device or "cuda"),
    }
    benches = {"ddp": bench_ddp, "methods": bench_methods, "layout": bench_layout, "p1": bench_p1}
    bench = {**benches, **on_device}[args.what]
    lines = bench(args.batch, args.steps, args.warmup)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
