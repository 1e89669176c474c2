"""The end-of-run evaluation of a trained method, with the settings of the run's config.

Reads the config's ``eval`` settings and ``seed`` (the evaluation protocol is the run's, so a run
re-evaluated later, ``scripts/linear_probe.py``, gets the same table); builds nothing from it: the
``random_init`` baseline's backbone comes from the caller (:func:`selfsup.build.build_backbone`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from omegaconf import DictConfig
from torch import nn

from selfsup.data import ImageDataModule
from selfsup.eval.layers import layer_row, stage_encoders
from selfsup.eval.report import EvalSettings, evaluate
from selfsup.eval.view_metrics import view_metrics
from selfsup.methods import Method


def eval_settings(cfg: DictConfig) -> EvalSettings:
    e = cfg.eval
    return EvalSettings(
        knn_k=e.knn_k,
        knn_temperature=e.knn_temperature,
        probe_Cs=list(e.probe_Cs),
        probe_val_fraction=e.probe_val_fraction,
        probe_max_iter=e.probe_max_iter,
        seed=cfg.seed,
    )


def final_evaluation(
    cfg: DictConfig,
    module: Method,
    dm: ImageDataModule,
    device: torch.device | str = "cpu",
    *,
    new_backbone: Callable[[], nn.Module],
) -> dict[str, dict[str, float]]:
    """Offline probe, kNN and RankMe of the trained backbone, of its stages ``eval.layers`` (rows
    :func:`~selfsup.eval.layers.layer_row`) and of each configured baseline.

    Args:
        new_backbone: a freshly initialised backbone of the run's config (the ``random_init``
            baseline), called under ``torch.manual_seed(cfg.seed)``.
    """
    settings = eval_settings(cfg)
    train_loader = dm.feature_loader(dm.probe_train_dataset())
    test_loader = dm.val_dataloader()
    vm = module.view_maker
    module.to(device)
    m = cfg.eval.metrics
    images = dm.held_out_images(m.final_lidar_images).to(device)
    rows = {
        "pretrained": evaluate(
            module.eval_encoder,
            vm.prepare,
            train_loader,
            test_loader,
            dm.num_classes,
            settings,
            head=module.eval_head,
            device=device,
        )
        | view_metrics(
            module.eval_encoder, module.eval_head, vm, images, m.final_lidar_views, m.lidar_delta, m.lidar_eps, cfg.seed
        )
    }
    for name, encoder in stage_encoders(module.eval_encoder, list(cfg.eval.layers)).items():
        rows[layer_row(name)] = evaluate(
            encoder, vm.prepare, train_loader, test_loader, dm.num_classes, settings, device=device
        )
    if "random_init" in cfg.eval.baselines:
        with torch.random.fork_rng():
            torch.manual_seed(cfg.seed)
            fresh = new_backbone().to(device)
        rows["random_init"] = evaluate(
            fresh, vm.prepare, train_loader, test_loader, dm.num_classes, settings, device=device
        )
    if "raw_pixels" in cfg.eval.baselines:
        rows["raw_pixels"] = evaluate(
            nn.Flatten(),
            lambda x: x.float() / 255.0,
            train_loader,
            test_loader,
            dm.num_classes,
            settings,
            device=device,
        )
    return rows
