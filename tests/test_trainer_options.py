"""Trainer options: precision, channels_last, torch.compile, gradient accumulation, lr scaling."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

from selfsup.build import ConfigError, build_datamodule, build_module, build_view_maker
from selfsup.cli import train as train_cli
from selfsup.optim import lr_scaling
from selfsup.pipeline import run
from tests.conftest import TINY, launch
from tests.test_train_options import assert_complete_run_dir


def _module_and_batch(cfg):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    vm = build_view_maker(cfg)
    dm = build_datamodule(cfg, vm)
    dm.setup()
    return build_module(cfg, vm), next(iter(dm.train_dataloader()))


def test_under_bf16_autocast_the_backbone_runs_in_bf16_and_the_loss_in_float32(composed) -> None:  # type: ignore[no-untyped-def]
    module, batch = _module_and_batch(composed("loss=dcl"))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module.training_step(batch, 0)
    assert out["h"].dtype == torch.bfloat16, "the backbone did not run under autocast"
    assert out["loss"].dtype == torch.float32
    # The loss of the bf16 projections, computed in float32, not in bf16.
    expected = module.loss_fn(out["z"].float(), views=2)
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize(
    "overrides",
    [
        ["trainer.precision=bf16-mixed"],
        ["trainer.channels_last=false"],
        ["trainer.accumulate_grad_batches=2"],
    ],
    ids=["bf16-mixed", "channels_first", "accumulate-2"],
)
def test_trainer_option_trains_end_to_end(composed, tmp_path: Path, overrides: list[str]) -> None:  # type: ignore[no-untyped-def]
    cfg = composed(*overrides)
    results = run(cfg, tmp_path / "run", loss_choice="ntxent")
    assert_complete_run_dir(tmp_path / "run")
    assert results["steps"] == (1 if "trainer.accumulate_grad_batches=2" in overrides else 2)


def test_channels_last_changes_the_layout_not_the_features(composed) -> None:  # type: ignore[no-untyped-def]
    plain, batch = _module_and_batch(composed("trainer.channels_last=false"))
    nhwc, _ = _module_and_batch(composed())  # the CPU default
    nhwc.configure_model()
    conv = next(m for m in nhwc.backbone.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    plain.eval(), nhwc.eval()
    x = plain.view_maker.prepare(batch[0])
    with torch.no_grad():
        torch.testing.assert_close(nhwc.validation_step(batch, 0)["h"], plain.backbone(x), rtol=1e-4, atol=1e-5)


def test_compile_keeps_the_state_dict_keys_and_the_features(composed) -> None:  # type: ignore[no-untyped-def]
    plain, batch = _module_and_batch(composed())
    compiled, _ = _module_and_batch(composed("trainer.compile=true"))
    compiled.configure_model()
    assert compiled.state_dict().keys() == plain.state_dict().keys()  # checkpoints load either way
    plain.eval(), compiled.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            compiled.validation_step(batch, 0)["h"], plain.validation_step(batch, 0)["h"], rtol=1e-4, atol=1e-5
        )


def test_lr_scaling_rules() -> None:
    assert lr_scaling("none") is None
    linear, sqrt = lr_scaling("linear", 256), lr_scaling("sqrt", 256)
    assert linear is not None and sqrt is not None
    assert linear(512) == 2.0 and linear(64) == 0.25
    assert sqrt(1024) == 2.0 and math.isclose(sqrt(128), math.sqrt(0.5))


def test_the_scaled_lr_is_the_one_the_optimizer_uses(composed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # batch 16 x 1 process x accumulate 2 = 32 images per step; linear rule over 8: lr x 4.
    cfg = composed(
        "optim.lr_scaling.rule=linear", "optim.lr_scaling.reference_batch=8", "trainer.accumulate_grad_batches=2"
    )
    run(cfg, tmp_path / "run", loss_choice="ntxent")
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    groups = ckpt["optimizer_states"][0]["param_groups"]
    assert [g["initial_lr"] for g in groups] == pytest.approx([4 * cfg.optim.optimizer.lr] * len(groups))


@pytest.mark.parametrize(
    "override,message",
    [
        ("optim.lr_scaling.rule=cubic", r"optim.lr_scaling.rule='cubic': must be 'none', 'linear' or 'sqrt'"),
        ("trainer.sync_batchnorm=true", r"trainer.sync_batchnorm=true needs GPUs"),
        ("trainer.precision=16-mixed", r"trainer.precision=16-mixed needs a GPU; on the CPU use 32-true or bf16-mixed"),
    ],
)
def test_bad_trainer_settings_fail_before_anything_is_written(composed, tmp_path, override, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=message):
        run(composed(override), tmp_path / "run", loss_choice="ntxent")
    assert not (tmp_path / "run" / "config.yaml").exists()


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_gpu_mixed_precision_with_channels_last_and_compile_trains(composed, tmp_path, precision) -> None:  # type: ignore[no-untyped-def]
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    cfg = composed(
        "trainer=gpu",
        f"trainer.precision={precision}",
        "trainer.compile=true",
        "backbone=timm",
        "backbone.cifar_stem=true",
    )
    run(cfg, tmp_path / "run", loss_choice="dcl")
    assert_complete_run_dir(tmp_path / "run")


@pytest.mark.parametrize("zero", ["0", "0.0"])
def test_no_validation_finishes_with_the_final_evaluation_and_says_what_is_off(
    zero: str, tmp_path: Path, monkeypatch, capfd
) -> None:  # type: ignore[no-untyped-def]
    """``trainer.limit_val_batches=0`` (Lightning's way to skip validation): no validation epoch runs,
    so no callback that reads it does, yet the run ends with the final evaluation and results.json,
    and one warning at the start names the key and what it turns off."""
    run_dir = tmp_path / "run"
    argv = [
        *TINY,
        f"trainer.limit_val_batches={zero}",
        "eval.collapse.after_epochs=1",  # the end-of-run collapse judgement runs, without val/online_top1
        "eval.baselines=[]",
        f"hydra.run.dir={run_dir}",
    ]
    code, output = launch(train_cli.main, argv, monkeypatch, capfd)
    assert code == 0, output[-3000:]
    results = assert_complete_run_dir(run_dir)
    assert results["collapsed"] is not None  # judged, on the final RankMe
    with open(run_dir / "metrics.csv") as f:
        columns = next(csv.reader(f))
    assert not [c for c in columns if c.startswith("val/")], columns  # no validation epoch ran
    warned = [line for line in output.splitlines() if f"trainer.limit_val_batches={zero}: no validation" in line]
    assert len(warned) == 1, output[-3000:]
    for off in ("val/online_top1", "val/rankme_*", "val/lidar_*", "val/knn_top1", "collapse check"):
        assert off in warned[0]
