"""Method.planned_steps counts what trainer.estimated_stepping_batches counts, without building
Lightning's training loader early (which would drop a checkpoint's loader state: Lightning #20550)."""

from __future__ import annotations

from typing import Any

import lightning as L
import pytest

from selfsup.build import build_datamodule, build_module, build_view_maker


class _Compare(L.Callback):
    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.seen = {"ours": pl_module.planned_steps(), "lightning": int(trainer.estimated_stepping_batches)}


@pytest.mark.parametrize(
    "settings",
    [
        ["trainer.max_epochs=1", "trainer.limit_train_batches=1.0"],
        ["trainer.max_epochs=2", "trainer.limit_train_batches=0.5", "trainer.accumulate_grad_batches=2"],
        ["trainer.max_epochs=1", "trainer.limit_train_batches=3"],
    ],
    ids=["whole-epochs", "fraction-and-accumulation", "batch-count"],
)
def test_planned_steps_equal_lightnings_estimate(composed, settings: list[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = composed("data.batch_size=256", *settings, tiny=False)  # adamw: a warm-up + cosine schedule
    L.seed_everything(0, verbose=False)
    vm = build_view_maker(cfg)
    dm = build_datamodule(cfg, vm)
    module = build_module(cfg, vm)
    compare = _Compare()
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=int(cfg.trainer.max_epochs),
        limit_train_batches=cfg.trainer.limit_train_batches,
        accumulate_grad_batches=int(cfg.trainer.accumulate_grad_batches),
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[compare],
        default_root_dir=str(tmp_path),
    )
    trainer.fit(module, datamodule=dm)
    assert compare.seen["ours"] == compare.seen["lightning"] > 0
    assert trainer.global_step == compare.seen["ours"]
