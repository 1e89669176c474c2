"""Held-out metrics under DDP: two gloo processes give what one process gives, padding or not.

The distributed sampler pads the ranks' shards of the 449 held-out images to 225 each, so one
image is validated twice; RankMe, LiDAR, alignment/uniformity, kNN and the online probe must
still count it once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
import torch.distributed as dist

from selfsup.build import build_datamodule, build_metric_callbacks, build_module, build_view_maker
from selfsup.eval.gather import gather_unique
from selfsup.eval.online_probe import OnlineLinearProbe
from tests.conftest import TINY, compose_cfg, free_port, start_ranks

WORLD = 2
# 449 held-out digits (an odd count: the sampler pads), kNN due at this validation.
OVERRIDES = [*TINY, "data.splits.test_fraction=0.2494", "eval.metrics.knn_every_n_epochs=1"]


class SeenIndices(L.Callback):
    """Records the sample indices this rank validated."""

    def __init__(self) -> None:
        self.index: list[int] = []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:  # type: ignore[no-untyped-def]
        self.index += outputs["index"].tolist()


def _validate(devices: int) -> tuple[dict[str, float], list[int]]:
    torch.manual_seed(0)  # the same weights and probe in every process
    cfg = compose_cfg(OVERRIDES)
    view_maker = build_view_maker(cfg)
    dm = build_datamodule(cfg, view_maker)
    dm.setup()
    dm.eval_batch_size = 64  # several batches per rank
    module = build_module(cfg, view_maker)
    seen = SeenIndices()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        max_epochs=10,  # not the last epoch: every metric, kNN included, is due
        callbacks=[OnlineLinearProbe(dm.num_classes), *build_metric_callbacks(cfg, dm.num_classes), seen],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.validate(module, datamodule=dm, verbose=False)
    return {k: float(v) for k, v in trainer.callback_metrics.items()}, seen.index


def _worker(rank: int, port: int, out: str) -> None:
    # Lightning reads these as an externally launched process group (as under torchrun).
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(WORLD), RANK=str(rank), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    metrics, seen = _validate(WORLD)
    torch.save({"metrics": metrics, "seen": seen}, Path(out) / f"rank{rank}.pt")


@pytest.mark.distributed
def test_held_out_metrics_of_two_ranks_equal_one_process(tmp_path: Path) -> None:
    start_ranks(_worker, (free_port(), str(tmp_path)), WORLD)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    single, seen = _validate(1)

    assert sorted(seen) == list(range(449))
    seen_ddp = ranks[0]["seen"] + ranks[1]["seen"]
    assert len(seen_ddp) == 450 and set(seen_ddp) == set(range(449)), "the sampler should have padded one image"

    expected = {
        "val/online_top1",
        "val/knn_top1",
        "val/rankme_backbone",
        "val/rankme_projector",
        "val/lidar_backbone",
        "val/lidar_projector",
        "val/align_backbone",
        "val/uniform_projector",
    }
    assert expected <= set(single)
    ddp = ranks[0]["metrics"]
    for key in sorted(expected):
        assert ddp[key] == pytest.approx(single[key], rel=1e-5, abs=1e-6), key
    # Rank 1 logs the online probe's accuracy too (the same value); the rest is rank 0's.
    assert ranks[1]["metrics"]["val/online_top1"] == ddp["val/online_top1"]


def _gather_worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        # Rank 0 holds 0, 2, 4; rank 1 holds 1, 3 and 0 again (padding), in another order.
        index = torch.tensor([0, 2, 4]) if rank == 0 else torch.tensor([3, 1, 0])
        rows = {"index": index, "value": index.double()[:, None] * torch.tensor([[1.0, -1.0]], dtype=torch.float64)}
        torch.save(gather_unique(rows), Path(out) / f"rank{rank}.pt")
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_gather_unique_keeps_each_sample_once_in_index_order(tmp_path: Path) -> None:
    start_ranks(_gather_worker, (free_port(), str(tmp_path)), WORLD)
    for r in range(WORLD):
        got: dict[str, Any] = torch.load(tmp_path / f"rank{r}.pt")
        assert got["index"].tolist() == [0, 1, 2, 3, 4]
        assert got["value"].tolist() == [[i, -i] for i in range(5)]
