"""One ``python finetune.py`` run from its composed config: check, load the pretrained run, run the
protocols of :mod:`selfsup.finetune` on the target data, write ``finetune.json``.

The source run is only read. What is written goes to the output directory (Hydra's): the
classifier of each trained protocol (``PROTOCOL.pt``, its ``state_dict``: ``backbone.*``,
``head.*``), then ``finetune.json``, last and atomically, so its presence means finished.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, open_dict

from selfsup.build import build_backbone, build_datamodule, load_trained, resolve_device
from selfsup.data import ImageDataModule
from selfsup.errors import ConfigError
from selfsup.eval.final import eval_settings
from selfsup.eval.report import evaluate
from selfsup.finetune import (
    TRAINED,
    Schedule,
    input_pipeline,
    start_classifier,
    subset,
    table,
    top1,
    train_classifier,
)
from selfsup.methods import Method
from selfsup.run_dir import atomic_path, atomic_write_json, git_revision, remove_if_only_hydra, trained_run
from selfsup.schema_check import check_finetune_schema, missing_keys

log = logging.getLogger(__name__)

RESULTS = "finetune.json"


@dataclasses.dataclass
class Source:
    """The pretrained run: its directory, checkpoint, resolved config and loaded method."""

    run_dir: Path
    ckpt: Path
    cfg: DictConfig
    module: Method


def run(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Check everything (config, source run, target data) before writing; then run and write.

    A refused run removes the directory Hydra made for it (if it holds nothing else).
    """
    try:
        source = load_source(cfg)
        dm = build_datamodule(cfg)
        dm.setup()  # reads the target data now: a missing data set fails before anything is written
    except BaseException:
        remove_if_only_hydra(out_dir)
        raise
    out_dir.mkdir(parents=True, exist_ok=True)
    return _run(cfg, source, dm, out_dir)


def load_source(cfg: DictConfig) -> Source:
    """The checked config's source run, refused in one line if the target data cannot go through
    its encoder.

    Raises:
        ConfigError: a missing or invalid value, or target data of another channel count.
        MissingFileError: ``run`` is not a run directory or a checkpoint in one.
        CheckpointError: the checkpoint cannot be read or holds another model than its run's config.
    """
    missing = missing_keys(cfg)
    if "run" in missing:
        raise ConfigError(
            "run must be given: `python finetune.py run=RUN_DIR` (a train.py run directory, "
            "or a .ckpt in RUN_DIR/checkpoints/)"
        )
    if missing:
        raise ConfigError(f"{', '.join(missing)} must be given (??? in the config), e.g. `{missing[0]}=...`")
    check_finetune_schema(cfg)
    run_dir, ckpt, src = trained_run(str(cfg.run))
    channels, target = int(src.data.channels), int(cfg.data.channels)
    if channels != target:
        raise ConfigError(
            f"data={cfg.data.name} has {target}-channel images but the encoder of {run_dir} takes {channels} "
            f"(pretrained on data={src.data.name}); choose a data option with {channels}-channel images"
        )
    with open_dict(src):  # our own loop: no compiled or channels_last backbone to copy
        src.trainer.compile = False
        src.trainer.channels_last = False
    return Source(run_dir, ckpt, src, load_trained(src, ckpt))


def _run(cfg: DictConfig, source: Source, dm: ImageDataModule, out_dir: Path) -> dict[str, Any]:
    src = source.cfg
    device = resolve_device(str(cfg.device))
    size = int(cfg.input_size) if cfg.input_size is not None else int(src.augment.size)
    norm = src.augment if cfg.normalize == "source" else cfg.data
    mean, std = [float(v) for v in norm.mean], [float(v) for v in norm.std]
    schedule = Schedule(
        epochs=int(cfg.epochs),
        batch_size=int(cfg.batch_size),
        lr=float(cfg.lr),
        backbone_lr_scale=float(cfg.backbone_lr_scale),
        weight_decay=float(cfg.weight_decay),
        warmup_epochs=float(cfg.warmup_epochs),
        label_smoothing=float(cfg.label_smoothing),
        crop_scale=(float(cfg.crop_scale[0]), float(cfg.crop_scale[1])),
        flip_p=float(cfg.flip_p),
        num_workers=int(cfg.data.num_workers),
    )
    inputs = input_pipeline(size, mean, std, schedule).to(device)
    assert dm.splits is not None
    train = subset(dm.probe_train_dataset(), cfg.max_train_samples, int(cfg.seed))
    test = subset(dm.splits.test, cfg.max_test_samples, int(cfg.seed))
    test_loader = dm.feature_loader(test)
    n_train, n_test = len(train), len(test)  # type: ignore[arg-type]
    print(
        f"{src.data.name} -> {cfg.data.name}: encoder of {source.ckpt}, {n_train} train / {n_test} test images "
        f"at {size} px, normalised with the {cfg.normalize}'s statistics"
    )
    encoder = source.module.eval_encoder.to(device)
    top: dict[str, float] = {}
    details: dict[str, dict[str, Any]] = {}
    if "probe" in cfg.protocols:
        start = time.perf_counter()
        m = evaluate(
            encoder,
            inputs.prepare,
            dm.feature_loader(train),
            test_loader,
            dm.num_classes,
            eval_settings(src),
            device=device,
        )
        top["probe"] = m["linear_top1"]
        details["probe"] = {**m, "seconds": time.perf_counter() - start}
    for protocol in TRAINED:
        if protocol not in cfg.protocols:
            continue
        start = time.perf_counter()
        model = start_classifier(protocol, encoder, lambda: build_backbone(src), dm.num_classes, int(cfg.seed))
        losses = train_classifier(model, protocol, train, inputs, schedule, int(cfg.seed), device)
        top[protocol] = top1(model, test_loader, inputs.prepare, device)
        details[protocol] = {"top1": top[protocol], "train_loss": losses, "seconds": time.perf_counter() - start}
        with atomic_path(out_dir / f"{protocol}.pt") as tmp:
            torch.save(model.state_dict(), tmp)
        log.info("%s: top-1 %.2f %%", protocol, top[protocol])
    results = {
        "source": {"run": str(source.run_dir), "checkpoint": str(source.ckpt), "data": str(src.data.name)},
        "target": {"data": str(cfg.data.name), "train_images": n_train, "test_images": n_test},
        "input": {"size": size, "normalize": str(cfg.normalize), "mean": mean, "std": std},
        "schedule": dataclasses.asdict(schedule),
        "seed": int(cfg.seed),
        "device": str(device),
        "top1": top,
        "protocols": details,
        "git": git_revision(),
    }
    atomic_write_json(out_dir / RESULTS, results)
    print(table(top))
    print(f"\noutput directory: {out_dir}")
    return results
