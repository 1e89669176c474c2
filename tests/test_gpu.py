"""The GPU paths, on a real CUDA GPU (``pytest -m gpu``; scripts/gpu_evidence.sh runs them): the
training images held on the GPU, the batched views made there, and DDP over NCCL with SyncBatchNorm
when the machine has two GPUs. bf16 and 16-mixed autocast with channels_last and torch.compile:
tests/test_trainer_options.py; trainer=gpu: tests/test_train_options.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from selfsup.build import build_datamodule, build_view_maker
from selfsup.pipeline import run
from tests.conftest import ROOT, TINY
from tests.test_train_options import assert_complete_run_dir

pytestmark = pytest.mark.gpu


def _need_gpus(n: int) -> None:
    if torch.cuda.device_count() < n:
        pytest.skip(f"needs {n} CUDA GPU(s); this machine has {torch.cuda.device_count()}")


def test_resident_training_set_and_views_on_the_gpu(composed, data_roots, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """data.on_device=true on a GPU: the uint8 set lives there, batches and their views are made
    there (no host round trip), and a bf16 channels_last run finishes."""
    _need_gpus(1)
    overrides = ["trainer=gpu", "data=cifar10", f"data.root={data_roots['cifar10']}", "data.on_device=true"]
    cfg = composed(*overrides)
    vm = build_view_maker(cfg).to("cuda")
    batches = build_datamodule(cfg, vm).device_batches(torch.device("cuda"))
    x, y, index = next(iter(batches))
    assert x.device.type == "cuda" and x.dtype == torch.uint8 and y.device.type == "cuda"
    views = vm(x)
    assert all(g.device.type == "cuda" and torch.isfinite(g).all() for g in views.groups)
    run(cfg, tmp_path / "run", loss_choice="ntxent")
    assert_complete_run_dir(tmp_path / "run")


def test_batched_views_on_the_gpu_match_the_cpu_recipe(composed) -> None:  # type: ignore[no-untyped-def]
    """The same recipe on both devices: the views' shapes, value ranges and per-channel statistics
    agree (the random draws differ between devices, so statistics over a large batch)."""
    _need_gpus(1)
    cfg = composed("data=cifar10", tiny=False)
    x = torch.randint(0, 256, (2048, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = {}
    for dev in ("cpu", "cuda"):
        torch.manual_seed(0)
        out[dev] = torch.cat(build_view_maker(cfg).to(dev)(x.to(dev)).groups).float().cpu()
    assert out["cpu"].shape == out["cuda"].shape
    for reduce in (torch.mean, torch.std):
        a, b = (reduce(out[d], dim=(0, 2, 3)) for d in ("cpu", "cuda"))
        assert torch.allclose(a, b, atol=0.05), (reduce.__name__, a, b)


def test_ddp_over_nccl_with_sync_batchnorm(tmp_path: Path) -> None:
    """trainer=ddp as shipped (NCCL, SyncBatchNorm, bf16) on two GPUs: one run directory, world size 2."""
    _need_gpus(2)
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "train.py", "trainer=ddp", "trainer.devices=2", "backbone=timm", "backbone.cifar_stem=true",
           *TINY, f"hydra.run.dir={run_dir}"]  # fmt: skip
    p = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=600, check=False)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    results = assert_complete_run_dir(run_dir)
    assert results["world_size"] == 2
