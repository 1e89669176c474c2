"""View-based metrics group views by their source image; the callback logs every metric."""

from __future__ import annotations

import csv

import pytest
import torch
from torch import nn

from selfsup.augment import ViewMaker
from selfsup.backbones import SmallCNN
from selfsup.eval.view_metrics import view_metrics
from selfsup.heads import MLPHead
from selfsup.metrics import lidar
from selfsup.pipeline import run


def test_identity_views_are_grouped_by_image() -> None:
    """With augmentation off, the q views of an image are exact copies: alignment is exactly 0."""
    torch.manual_seed(0)
    vm = ViewMaker(views=2, size=8, crop_scale=(1, 1), crop_ratio=(1, 1), flip_p=0, jitter_p=0, grayscale_p=0)
    backbone, head = SmallCNN(1, (8, 16)).eval(), MLPHead(16, (16,), 8).eval()
    images = (torch.rand(20, 1, 8, 8) * 255).to(torch.uint8)
    m = view_metrics(backbone, head, vm, images, views=5, delta=1e-4, eps=1e-8)
    assert m["align_backbone"] == pytest.approx(0.0, abs=1e-10)
    h = backbone(vm.prepare(images))
    copies = h[:, None].expand(20, 5, -1)
    assert m["lidar_backbone"] == pytest.approx(lidar(copies, delta=1e-4, eps=1e-8), rel=1e-6)


def test_view_metrics_do_not_touch_the_training_rng() -> None:
    vm = ViewMaker(views=2, size=8)
    backbone, head = SmallCNN(1, (8,)).eval(), MLPHead(8, (), 4).eval()
    images = (torch.rand(6, 1, 8, 8) * 255).to(torch.uint8)
    torch.manual_seed(5)
    view_metrics(backbone, head, vm, images, views=3, delta=1e-4, eps=1e-8, seed=1)
    after = torch.rand(1)
    torch.manual_seed(5)
    assert torch.equal(after, torch.rand(1))


def test_callback_logs_every_metric_each_epoch(composed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = composed("trainer.max_epochs=3", "eval.metrics.knn_every_n_epochs=1")
    run(cfg, tmp_path / "run", loss_choice="ntxent")
    with open(tmp_path / "run" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    for key in ("rankme", "lidar", "align", "uniform"):
        for tensor in ("backbone", "projector"):
            logged = [r for r in rows if r.get(f"val/{key}_{tensor}")]
            assert len(logged) == 3, f"val/{key}_{tensor} logged {len(logged)} times over 3 epochs"
    assert len([r for r in rows if r.get("val/knn_top1")]) == 2  # not after the last epoch


def test_schedules_every_n_and_the_last_epoch() -> None:
    from types import SimpleNamespace

    from selfsup.eval.knn_callback import KNNCallback
    from selfsup.eval.rankme_callback import RankMeCallback

    def epochs(cb) -> list[int]:  # type: ignore[no-untyped-def]
        return [
            e + 1
            for e in range(5)
            if cb.due(SimpleNamespace(sanity_checking=False, max_epochs=5, current_epoch=e))  # type: ignore[arg-type]
        ]

    assert epochs(RankMeCallback(every_n_epochs=2)) == [2, 4, 5]
    assert epochs(KNNCallback(10, every_n_epochs=2)) == [2, 4]  # the final evaluation has epoch 5
    assert epochs(RankMeCallback(every_n_epochs=0)) == []


def test_view_metrics_run_in_eval_mode_and_leave_batch_norm_untouched() -> None:
    """The end-of-run LiDAR/alignment use running statistics, and change none of them."""
    from selfsup.augment import ViewMaker
    from selfsup.eval.view_metrics import view_metrics

    backbone = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten()).train()
    head = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)).train()
    before = {k: v.clone() for k, v in [*backbone.state_dict().items(), *head.state_dict().items()]}
    images = torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8)
    view_metrics(backbone, head, ViewMaker(size=8, mean=[0.5], std=[0.25]), images, 4, 1e-4, 1e-8)
    after = {k: v for k, v in [*backbone.state_dict().items(), *head.state_dict().items()]}
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert backbone.training and head.training  # put back
