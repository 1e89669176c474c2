"""scripts/gpu_evidence.sh: every part run for real in its dry-run mode (tiny, CPU), and the GPU plan."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests import fake_data
from tests.conftest import ROOT, load_script

PARTS = ("bench_train.py gpu", "bench_train.py p1", "bench_train.py views", "bench_train.py resident",
         "bench_peers.py", "train.py experiment=cifar10_speedrun_short", "pytest -m gpu")  # fmt: skip


@pytest.mark.readme  # the docs' `bash scripts/gpu_evidence.sh`, run for real (dry): in make test-readme
def test_dry_run_runs_every_part_and_writes_the_report(tmp_path: Path) -> None:
    fake_data.make_cifar_npz(tmp_path / "cifar10.npz", n_train=64, n_test=32)
    out, work = tmp_path / "out", tmp_path / "work"
    cmd = ["bash", str(ROOT / "scripts" / "gpu_evidence.sh"), str(out), "--dry-run"]
    cmd += ["--cifar-root", str(tmp_path), "--work", str(work)]
    env = dict(os.environ, PYTHON=sys.executable)
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    evidence = json.loads((out / "evidence.json").read_text())
    assert evidence["dry_run"] is True and evidence["gpus"] == 0
    parts = {part["name"].split(":")[0]: part for part in evidence["parts"]}
    assert tuple(parts) == PARTS
    for name, part in parts.items():
        if part["rc"] is None:  # only the peers may be missing here (they live in .venv-bench)
            assert name == "bench_peers.py" and "not importable" in part["note"]
            continue
        assert part["rc"] == 0, (name, part["tail"])
        if name.startswith("bench_train.py"):
            assert part["table"][0].startswith("| ") and part["table"][1].startswith("|---"), (name, part["table"])
    speedrun = parts["train.py experiment=cifar10_speedrun_short"]["results"]
    assert speedrun["epochs"] == 1 and speedrun["steps"] == 2
    assert 0 < speedrun["pretrain_seconds"] < speedrun["process_seconds"] and 0 < speedrun["eval_share"] < 1
    assert 0 <= speedrun["knn_top1"] <= 100
    report = (out / "report.md").read_text()
    assert report.startswith("# GPU evidence (dry run, CPU)")
    assert all(f"## {part['name']}" in report for part in evidence["parts"])
    assert "| making the views (batched, on the device) |" in report


def test_the_gpu_plan_runs_the_real_settings(tmp_path: Path) -> None:
    ge = load_script("scripts/gpu_evidence.py")
    parts = {p.name.split(":")[0]: p.command for p in ge.plan(tmp_path / "work", tmp_path / "cifar", dry=False)}
    assert tuple(parts) == PARTS
    for cmd in parts.values():
        assert "--tiny" not in cmd and "--dry-run" not in cmd and "trainer.accelerator=cpu" not in cmd
    assert parts["bench_train.py gpu"][-8:] == ["--device", "cuda", "--batch", "512", "--steps", "30", "--warmup", "10"]
    assert "--device" in parts["bench_peers.py"] and parts["bench_peers.py"][3] == "cuda"
    speedrun = parts["train.py experiment=cifar10_speedrun_short"]
    assert f"data.root={tmp_path / 'cifar'}" in speedrun and len(speedrun) == 6  # the experiment as configured


def test_the_speedruns_differ_only_in_their_length(composed) -> None:  # type: ignore[no-untyped-def]
    from omegaconf import OmegaConf

    full, short = (
        OmegaConf.to_container(composed(f"experiment={name}", tiny=False), resolve=False)
        for name in ("cifar10_speedrun", "cifar10_speedrun_short")
    )
    assert full["trainer"].pop("max_epochs") == 200 and short["trainer"].pop("max_epochs") == 20
    for cfg in (full, short):
        cfg.pop("hydra", None)
    assert full == short
    assert full["data"]["on_device"] and full["trainer"]["compile"] and full["trainer"]["precision"] == "bf16-mixed"
    assert full["eval"]["knn_k"] == 200 and full["eval"]["knn_temperature"] == 0.1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_without_a_gpu_only_the_dry_run_runs(tmp_path: Path) -> None:
    cmd = [sys.executable, str(ROOT / "scripts" / "gpu_evidence.py"), str(tmp_path / "out"), "--cifar-root", "x"]
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert p.returncode != 0 and p.stderr.strip().splitlines()[-1] == (
        "error: no CUDA GPU here: run on a GPU machine, or with --dry-run"
    )
    assert not (tmp_path / "out").exists()  # nothing written
