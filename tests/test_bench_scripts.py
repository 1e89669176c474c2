"""scripts/bench_train.py p1 (default run) and scripts/bench_peers.py (marked bench: needs the
benchmark environment of `make bench-env`), and scripts/bench_data.py, run for real with a few images or one step."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT, load_script


@pytest.mark.readme  # a documented command, run for real: make test-readme (CI runs it)
def test_bench_train_methods_times_every_registered_method(capsys: pytest.CaptureFixture[str]) -> None:
    """BENCHMARKS.md's method table, as a dry run (--tiny: the small CNN; a method that reads patch
    tokens on its own config's ViT): a row for every configs/method option."""
    from selfsup import registry

    bench_train = load_script("scripts/bench_train.py")
    threads = torch.get_num_threads()
    try:
        assert bench_train.main(["methods", "--tiny", "--steps", "1", "--warmup", "0", "--batch", "8"]) == 0
    finally:
        torch.set_num_threads(threads)
    rows = [line.split("|")[1].strip() for line in capsys.readouterr().out.splitlines()[2:]]
    assert [r.split()[0] for r in rows] == ["simclr", *[m for m in registry.methods() if m != "simclr"]]
    for row in rows:  # a method that reads patch tokens is timed on its config's ViT, named in its row
        assert ("(vit_" in row) is bool(getattr(registry.method_class(row.split()[0]), "needs_tokens", False)), row


@pytest.mark.readme  # a documented command, run for real: make test-readme (CI runs it)
def test_bench_train_p1_prints_the_side_by_side_table(capsys: pytest.CaptureFixture[str]) -> None:
    bench_train = load_script("scripts/bench_train.py")
    threads = torch.get_num_threads()
    try:
        assert bench_train.main(["p1", "--steps", "1", "--warmup", "1", "--batch", "8"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "| framework (Trainer.fit) |" in out and "| hand-written loop |" in out
    assert "framework / hand-written" in out and "batch 8, 2 rounds x 1 steps" in out


def test_hand_loop_trains_the_frameworks_components() -> None:
    """The hand-written loop's backbone, head and loss are the module's (same config, build order
    and seed: the same initial weights), as are the optimiser's groups and learning rates."""
    import lightning as L

    from selfsup.build import build_datamodule, build_module, build_view_maker
    from selfsup.methods.base import param_groups

    bench_train = load_script("scripts/bench_train.py")
    overrides = [*bench_train.P1_DATA, "method=simclr", "loss=ntxent", "data.batch_size=8"]
    cfg = bench_train._compose(overrides)
    assert cfg.backbone.name == "resnet18" and cfg.backbone.cifar_stem and cfg.data.channels == 3
    L.seed_everything(0, verbose=False)
    vm = build_view_maker(cfg)
    build_datamodule(cfg, vm)
    module = build_module(cfg, vm)
    _, dm, backbone, head, loss_fn, opt, _, fmt = bench_train._hand_components(overrides, torch.device("cpu"), 4)
    assert dm.batch_size == 8 and fmt == torch.channels_last and type(loss_fn) is type(module.loss_fn)
    for mine, theirs in ((backbone, module.backbone), (head, module.head)):
        a, b = mine.state_dict(), theirs.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    groups = param_groups([module.backbone, module.head], cfg.optim.exclude_bias_and_norm)
    assert [len(g["params"]) for g in opt.param_groups] == [len(g["params"]) for g in groups]
    assert [g["weight_decay"] for g in opt.param_groups] == [cfg.optim.optimizer.weight_decay, 0.0]


@pytest.mark.bench
def test_bench_peers_runs_one_step_of_each() -> None:
    for name in ("lightly", "stable_pretraining"):
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"{name} is not installed here: run in the benchmark environment (`make bench-env`)")
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_peers.py"), "--steps", "1", "--warmup", "1",
           "--batch", "8", "--images", "32"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for row in ("| lightly", "| stable-pretraining", "| selfsup"):
        assert row in proc.stdout


def test_bench_data_throughput_prints_the_three_data_paths(capsys: pytest.CaptureFixture[str]) -> None:
    bench_data = load_script("scripts/bench_data.py")
    assert bench_data.main(["throughput", "--images", "12", "--workers", "0"]) == 0
    out = capsys.readouterr().out
    for row in ("| torchvision ImageFolder", "| data=shards (litdata) |", "| data=imagefolder (256 centre square)"):
        assert row in out, out


@pytest.mark.bench
def test_bench_data_libraries_reads_every_library() -> None:
    for name in ("webdataset", "streaming"):
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"{name} is not installed here: run in the benchmark environment (`make bench-env`)")
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_data.py"), "libraries", "--images", "40", "--workers", "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for row in ("| webdataset |", "| litdata |", "| mosaicml-streaming |"):
        assert row in proc.stdout
