"""Every option of every config group, composed from the real train.yaml and trained a few steps."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from selfsup import registry
from selfsup.build import ConfigError, build_datamodule, check_epoch_has_a_step
from selfsup.dist import planned_world_size
from selfsup.pipeline import run
from selfsup.run_dir import FAILED, RESULTS
from tests.conftest import CONFIGS

# Overrides an option needs to run here on tiny fake data (paths filled in by the test).
NEEDS = {
    ("data", "fashion_mnist"): ["data.root={fashion_mnist}"],
    ("data", "cifar10"): ["data.root={cifar10}"],
    ("data", "cifar100"): ["data.root={cifar100}"],
    ("data", "stl10"): ["data.root={stl10}", "data.view.size=32"],
    ("data", "imagefolder"): ["data.path={imagefolder}", "data.image_size=32", "data.view.size=24"],
    ("data", "shards"): ["data.path={shards}", "data.image_size=32", "data.view.size=24", "data.num_workers=0"],
    ("backbone", "timm"): ["backbone.cifar_stem=true"],
    ("logger", "wandb"): ["logger.wandb.offline=true"],
    # One CPU process here (two processes: tests/test_ddp.py); SyncBatchNorm needs GPUs.
    ("trainer", "ddp"): [
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "trainer.sync_batchnorm=false",
        "trainer.precision=32-true",
    ],
}
# The CIFAR-10 reproductions (ResNet-18) train end to end in tests/test_readme.py, through the
# The docs' `scripts/reproduce.py` commands (CPU, fake data); not a second time here.
ELSEWHERE = {("experiment", "dcl_batch_cifar10"), ("experiment", "dcl_knn_cifar10")}
# The CIFAR-10 speedrun trains end to end (on the CPU, tiny) in tests/test_gpu_evidence.py's dry run;
# its full-length variant differs only in trainer.max_epochs.
# (test_the_speedruns_differ_only_in_their_length there).
DRY_RUN = {("experiment", "cifar10_speedrun"), ("experiment", "cifar10_speedrun_short")}
# Every method with every loss it declares trains in tests/methods/test_contract.py (which also
# checks that every loss option is declared by some method): not a second time here.
CONTRACT = {"method", "loss"}
NEEDS[("experiment", "dcl_batch_reduced")] = ["data.root={fashion_mnist}"]
GPU_ONLY = {("trainer", "gpu")}
# Every run here is composed with it already (tests/conftest.py's TINY): not a second time on its own.
EVERY_RUN = {("debug", "fast")}
# The options train.yaml chooses itself (backbone=small_cnn, data=digits, ...) compose the default
# run, which tests/methods/test_contract.py trains (method=simclr with loss=ntxent): not again here.
DEFAULT_RUN = {
    (group, option)
    for entry in OmegaConf.load(CONFIGS / "train.yaml").defaults
    if isinstance(entry, DictConfig)
    for group, option in entry.items()
}

# The options a method's config chooses (`override /head: dino`, `/augment: byol`) train in that
# method's run of tests/methods/test_contract.py, composed as a user gets them: not again here.
METHOD_CHOSEN = {
    (group.lstrip("/"), option)
    for method in registry.methods()
    for entry in registry.node("method", method).get("defaults", [])
    if isinstance(entry, dict)
    for key, option in entry.items()
    for group in [key.removeprefix("override ")]
    if group.startswith("/") and group.lstrip("/") not in CONTRACT
}


def all_options() -> list[tuple[str, str]]:
    groups = sorted(p for p in CONFIGS.iterdir() if p.is_dir())
    return [(g.name, f.stem) for g in groups for f in sorted(g.glob("*.yaml"))]


def _params() -> list[object]:
    out = []
    for group, option in all_options():
        if (group, option) in ELSEWHERE | DRY_RUN | EVERY_RUN | DEFAULT_RUN | METHOD_CHOSEN or group in CONTRACT:
            continue
        marks = [pytest.mark.gpu] if (group, option) in GPU_ONLY else []
        out.append(pytest.param(group, option, marks=marks, id=f"{group}={option}"))
    return out


def run_dir_bytes(run_dir: Path) -> dict[Path, bytes]:
    """Every file below ``run_dir`` and its contents: compare two to see that nothing changed."""
    return {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}


def assert_complete_run_dir(run_dir: Path) -> dict:
    for name in (RESULTS, "config.yaml", "git.json", "metrics.csv", "checkpoints/last.ckpt"):
        assert (run_dir / name).is_file(), f"{name} missing from {run_dir}"
    assert not (run_dir / FAILED).exists()
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert any(r.get("train/loss_step") for r in rows), "no train/loss in metrics.csv"
    results = json.loads((run_dir / RESULTS).read_text())
    m = results["metrics"]
    assert 0 <= m["linear_top1"] <= 100 and 0 <= m["knn_top1"] <= 100
    for key in ("rankme_backbone", "rankme_projector", "lidar_backbone", "lidar_projector"):
        assert m[key] >= 1.0 - 1e-6, (key, m[key])
    for key in ("align_backbone", "align_projector"):
        assert 0 <= m[key] <= 4.0 + 1e-6  # squared distance between unit vectors
    for key in ("uniform_backbone", "uniform_projector"):
        assert -4.0 - 1e-6 <= m[key] <= 0
    return results


def test_every_option_is_covered_here() -> None:
    groups = {g for g, _ in all_options()}
    assert groups == {
        "method",
        "loss",
        "backbone",
        "head",
        "augment",
        "data",
        "optim",
        "trainer",
        "logger",
        "eval",
        "launcher",
        "sweeper",
        "experiment",
        "debug",
    }


@pytest.mark.parametrize("group,option", _params())
def test_option_trains_a_few_steps(group, option, composed, data_roots, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    if (group, option) in GPU_ONLY and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    extra = [o.format(**{k: str(v) for k, v in data_roots.items()}) for o in NEEDS.get((group, option), [])]
    cfg = composed(f"{group}={option}", *extra)
    run_dir = tmp_path / "run"
    results = run(cfg, run_dir, loss_choice=cfg.hydra.runtime.choices.loss)
    assert_complete_run_dir(run_dir)
    assert results["choices"][group] == option if group in results["choices"] else True
    if option == "tensorboard":
        assert list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    if option == "wandb":
        runs = list((run_dir / "wandb").glob("offline-run-*"))
        assert runs and list(runs[0].glob("run-*.wandb")), "wandb wrote no offline run"


def test_three_views_train(composed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = composed("augment.views=3", "loss=dclw")
    run(cfg, tmp_path / "run", loss_choice="dclw")
    assert_complete_run_dir(tmp_path / "run")


@pytest.mark.parametrize(
    "overrides",
    [
        ["augment=multicrop", "augment.backend=torchvision", "loss=dcl"],
        ["augment=randaugment", "augment.backend=torchvision"],
        ["augment=cutmix", "augment.local_views=2", "loss=dclw"],
        ["augment=mixup", "method=moco", "loss=hcl"],
        ["augment=resizemix", "method=mocov3", "loss=dcl", "augment.mix.view=0"],
        ["augment=randaugment", "augment.per_view=[{blur_p: 1.0},{blur_p: 0.1,solarize_p: 0.2,randaugment: false}]"],
    ],
    ids=[
        "torchvision-multicrop",
        "torchvision-randaugment",
        "cutmix-multicrop",
        "mixup-moco-hcl",
        "resizemix-mocov3-dcl",
        "asymmetric-randaugment-one-view",
    ],
)
def test_augment_combinations_train(composed, tmp_path, overrides) -> None:  # type: ignore[no-untyped-def]
    cfg = composed(*overrides)
    run(cfg, tmp_path / "run", loss_choice=cfg.hydra.runtime.choices.loss)
    assert_complete_run_dir(tmp_path / "run")


def test_bad_augment_settings_fail_before_training_and_name_the_key(composed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = composed("augment.per_view=[{blurp: 1.0}]")
    with pytest.raises(ConfigError, match=r"augment.per_view\[0\] has unknown key\(s\) \['blurp'\]"):
        run(cfg, tmp_path / "run", loss_choice="ntxent")
    assert not (tmp_path / "run" / "checkpoints").exists()
    cfg = composed("augment=random_fields", "augment.backend=torchvision")
    with pytest.raises(ConfigError, match="random_fields needs augment.backend=batched"):
        run(cfg, tmp_path / "run2", loss_choice="ntxent")


def test_every_data_option_has_a_complete_view_preset() -> None:
    presets = sorted((CONFIGS / "augment" / "preset").glob("*.yaml"))
    keys = {p.stem: set(OmegaConf.load(p)) for p in presets}
    assert len(set(map(frozenset, keys.values()))) == 1, keys  # every preset sets the same keys
    used = set()
    for data in sorted((CONFIGS / "data").glob("*.yaml")):
        chosen = [d for d in OmegaConf.load(data).defaults if "/augment/preset@view" in d]
        assert len(chosen) == 1, f"{data.name} picks no view preset"
        used.add(chosen[0]["/augment/preset@view"])
    assert used == set(keys), f"presets no data option uses: {set(keys) - used}"


def test_method_loss_mismatch_fails_before_training(composed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = composed("method.losses=[ntxent]", "loss=dcl")
    with pytest.raises(ConfigError, match=r"method=simclr does not accept loss=dcl"):
        run(cfg, tmp_path / "run", loss_choice="dcl")
    assert not (tmp_path / "run").exists()  # refused before the run directory is written


def test_missing_dataset_says_where_it_looked(composed, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Debian's location is moved aside so the test means the same where the package is installed.
    monkeypatch.setattr("selfsup.data.fashion_mnist.DEBIAN_DIR", str(tmp_path / "debian-fmnist"))
    missing = tmp_path / "no-fmnist"
    cfg = composed("data=fashion_mnist", f"data.root={missing}")
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist") as e:
        run(cfg, tmp_path / "run", loss_choice="ntxent")
    assert str(missing) in str(e.value) and str(tmp_path / "debian-fmnist") in str(e.value)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "overrides,world_size,refused",
    [
        (["data.batch_size=1000"], None, None),  # one complete batch of the 1,347 training digits
        (["data.batch_size=2000"], None, None),  # in memory, smaller than a batch: one smaller batch
        (
            ["data.batch_size=1000"],
            "2",
            "data.batch_size=1000: the training set of data=digits has 1347 images, 674 per process over 2 "
            "processes (trainer.devices x trainer.num_nodes), fewer than one batch, and its training loader keeps "
            "only complete batches (drop_last), so an epoch would have no step; set data.batch_size=674 or less",
        ),
        (["data.batch_size=674"], "2", None),
        (["data.batch_size=2000", "data.on_device=true"], "2", None),  # DeviceBatches serves each share whole
    ],
)
def test_an_epoch_without_a_step_is_refused_before_anything_is_written(  # type: ignore[no-untyped-def]
    composed, tmp_path, monkeypatch, overrides: list[str], world_size: str | None, refused: str | None
) -> None:
    """A process whose share of the training set is smaller than one batch, where the training loader
    drops the last incomplete batch, would train no step (and export an untrained encoder). The
    process count is planned before any process group exists: the launcher's WORLD_SIZE here."""
    if world_size is not None:
        monkeypatch.setenv("WORLD_SIZE", world_size)
    cfg = composed(*overrides)
    if refused is None:
        dm = build_datamodule(cfg)
        dm.setup()
        check_epoch_has_a_step(cfg, dm)
        return
    with pytest.raises(ConfigError) as e:
        run(cfg, tmp_path / "run", loss_choice="ntxent")
    assert str(e.value) == refused
    assert not (tmp_path / "run").exists()


def test_the_planned_process_count_is_lightnings() -> None:
    assert planned_world_size("cpu", 1, 1) == 1
    assert planned_world_size("cpu", 2, 1) == 2 and planned_world_size("cpu", "3", 2) == 6
    assert planned_world_size("cpu", "auto", 1) == 1  # Lightning: one CPU process
    if not torch.cuda.is_available():
        assert planned_world_size("auto", "auto", 1) == 1
        assert planned_world_size("gpu", 2, 1) == 1  # refused by Lightning later, when the Trainer is built


def test_a_refused_attempt_leaves_a_finished_run_as_it_was(composed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run_dir = tmp_path / "run"
    run(composed(), run_dir, loss_choice="ntxent")
    before = run_dir_bytes(run_dir)
    with pytest.raises(ConfigError, match="does not accept loss=dcl"):
        run(composed("method.losses=[ntxent]", "loss=dcl"), run_dir, loss_choice="dcl")
    assert run_dir_bytes(run_dir) == before


def test_an_attempt_that_starts_over_removes_the_last_ones_results(composed, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / RESULTS).write_text('{"stale": true}')  # a finished run: only resume=never starts it again
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"the earlier run's")

    def fails_in_training(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom in training")

    monkeypatch.setattr("lightning.Trainer.fit", fails_in_training)
    with pytest.raises(RuntimeError, match="boom in training"):
        run(composed("resume=never"), run_dir, loss_choice="ntxent")
    assert not (run_dir / RESULTS).exists()  # the directory tells of the last attempt: it failed
    assert not (run_dir / "checkpoints").exists()  # nothing of the earlier run passes for this one's
    assert "boom in training" in (run_dir / FAILED).read_text()


def test_failed_marker_is_cleared_by_a_successful_rerun(composed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / FAILED).write_text("old failure")
    run(composed(), run_dir, loss_choice="ntxent")
    assert_complete_run_dir(run_dir)


def test_options_trained_elsewhere_are_run_by_the_readme_test() -> None:
    from selfsup.tools.reproduce import TABLES
    from tests.test_readme import readme_commands

    local = [c.split() for c in readme_commands() if c.startswith("python scripts/reproduce.py")]
    experiments = {("experiment", TABLES[c[2]].experiment) for c in local if "--launcher" not in c}
    assert experiments >= ELSEWHERE
