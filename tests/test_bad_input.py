"""Bad input as a new user gives it, through ``train.py`` itself: each case exits non-zero with one
line naming the key or file at the end of the output, prints no traceback (unless
HYDRA_FULL_ERROR=1), and leaves the disk as it was: no run directory where there was none, not a
byte changed in one that existed. docs/troubleshooting.md lists the same cases.

The cases run ``train.main`` in this process (Hydra's entry point, argv and all: what the shell
runs, less the 8 s import per case); ``test_the_shell_sees_the_same`` runs a few as real processes.
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from selfsup.build import save_config
from selfsup.cli import make_shards as make_shards_cli
from selfsup.cli import train as train_cli
from tests import fake_data
from tests.conftest import CONFIGS, ROOT, TINY, compose_cfg, launch, run_python
from tests.test_train_options import run_dir_bytes

Setup = Callable[[Path], list[str]]  # makes files in tmp_path; returns extra overrides


def _images(tmp: Path) -> Path:
    return fake_data.make_image_folder(tmp / "images", n=6, size=12)


def _corrupt_folder(tmp: Path) -> list[str]:
    root = _images(tmp)
    (root / "train" / "class0" / "bad.png").write_bytes(b"not a png")
    return [f"data.path={root}", "data.verify=true", "data.image_size=12"]


def _image_folder(tmp: Path) -> list[str]:
    return [f"data.path={_images(tmp)}", "data.image_size=12"]


def _cubes(tmp: Path) -> list[str]:
    """A folder of 5-band 16-bit .npy images, one of which has 4 bands."""
    import numpy as np

    root = tmp / "cubes"
    root.mkdir()
    for i in range(8):
        np.save(root / f"{i}.npy", np.full((12, 12, 4 if i == 0 else 5), 1000 * i, np.uint16))
    return [f"data.path={root}", "data.image_size=12", "data.bit_depth=16", "data.normalize=auto"]


def _empty_folder(tmp: Path) -> list[str]:
    (tmp / "empty" / "train" / "a").mkdir(parents=True)
    (tmp / "empty" / "val" / "a").mkdir(parents=True)
    return [f"data.path={tmp / 'empty'}", "data.image_size=12"]


def _val_class_not_in_train(tmp: Path) -> list[str]:
    root = _images(tmp)
    (root / "val" / "class0").rename(root / "val" / "zebra")
    return [f"data.path={root}", "data.image_size=12"]


def _sixteen_bit(tmp: Path) -> list[str]:
    import numpy as np
    from PIL import Image

    root = _images(tmp)
    for i, f in enumerate(sorted((root / "train" / "class0").iterdir())):  # a class of 16-bit PNGs
        f.unlink()
        deep = np.linspace(0, 65535, 144, dtype=np.uint16).reshape(12, 12)
        Image.fromarray(deep).save(root / "train" / "class0" / f"deep{i}.png")
    return [f"data.path={root}", "data.image_size=12"]


def _garbage_ckpt(tmp: Path) -> list[str]:
    (tmp / "garbage.ckpt").write_bytes(b"\x00" * 100)
    return [f"resume={tmp / 'garbage.ckpt'}"]


def _damaged_last(tmp: Path) -> list[str]:
    """An earlier, unfinished run's directory whose only checkpoint is damaged (half a zip)."""
    run = tmp / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"PK\x03\x04" + b"\x00" * 60)
    (run / "FAILED").write_text("killed")
    return ["resume=auto"]


def _small_shards(tmp: Path) -> list[str]:
    """A shard set of 6 training images (scripts/make_shards.py from a tiny image folder)."""
    assert make_shards_cli.main([str(_images(tmp)), str(tmp / "shards")]) == 0
    return [f"data.path={tmp / 'shards'}", "data.image_size=12"]


def _saved_config(run: Path) -> None:
    """``run/config.yaml`` as a TINY run in ``run`` saves it (composed, not trained)."""
    save_config(compose_cfg(TINY, run_dir=run), run)
    GlobalHydra.instance().clear()


def _finished(tmp: Path) -> list[str]:
    """A finished TINY run's directory: its config and results (no training needed to refuse)."""
    _saved_config(tmp / "run")
    (tmp / "run" / "results.json").write_text('{"metrics": {"linear_top1": 97.0}}')
    return []


def _unfinished(tmp: Path) -> list[str]:
    """An unfinished TINY run's directory: its config and a checkpoint to resume from."""
    _saved_config(tmp / "run")
    (tmp / "run" / "checkpoints").mkdir()
    torch.save({"global_step": 2, "state_dict": {}}, tmp / "run" / "checkpoints" / "last.ckpt")
    return []


_HELD: list[int] = []  # descriptors holding a run directory's lock for the length of one case


def _in_use(tmp: Path) -> list[str]:
    """A run directory whose lock another process holds (here: another open file, locked)."""
    (tmp / "run").mkdir()
    fd = os.open(tmp / "run" / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, b"4242 otherhost\n")
    _HELD.append(fd)
    return []


@pytest.fixture(autouse=True)
def _let_go() -> Iterator[None]:
    yield
    while _HELD:
        os.close(_HELD.pop())


def _nothing(tmp: Path) -> list[str]:
    return []


# (id, overrides, setup, what the last lines must name).
CASES: list[tuple[str, list[str], Setup, str]] = [
    # Types and ranges (selfsup.schema).
    ("views-not-int", ["augment.views=one"], _nothing, "augment.views='one': must be a valid integer"),
    ("views-zero", ["augment.views=0"], _nothing, "augment.views=0: must be greater than 0"),
    ("views-one", ["augment.views=1"], _nothing, "SimCLR compares views of an image; set augment.views=2 or more"),
    ("lr-negative", ["optim.optimizer.lr=-1"], _nothing, "optim.optimizer.lr=-1: must be greater than 0"),
    ("lr-string", ["optim.optimizer.lr=fast"], _nothing, "optim.optimizer.lr='fast': must be a valid number"),
    ("batch-zero", ["data.batch_size=0"], _nothing, "data.batch_size=0: must be greater than 0"),
    ("workers-negative", ["data.num_workers=-1"], _nothing, "data.num_workers=-1: must be greater than or equal"),
    ("probability", ["augment.flip_p=1.5"], _nothing, "augment.flip_p=1.5: must be less than or equal to 1"),
    ("crop-inverted", ["augment.crop_scale=[0.9,0.2]"], _nothing, "augment.crop_scale=[0.9, 0.2]: must be a range"),
    ("crop-above-one", ["data.view.crop_scale=[0.2,1.5]"], _nothing, "(from ${data.view.crop_scale})"),
    ("temperature-zero", ["loss.temperature=0"], _nothing, "loss.temperature=0: must be greater than 0"),
    ("tau-plus", ["loss=hcl", "loss.tau_plus=1.0"], _nothing, "loss.tau_plus=1.0: must be less than 1"),
    ("queue-negative", ["method=moco", "method.module.queue_size=-5"], _nothing, "method.module.queue_size=-5"),
    ("forward-layout", ["method.module.forward_layout=both"], _nothing, "method.module.forward_layout='both'"),
    ("momentum-above-one", ["method=byol", "method.module.base_momentum=1.5"], _nothing, "base_momentum=1.5"),
    ("epochs-zero", ["trainer.max_epochs=0"], _nothing, "trainer.max_epochs=0: must be greater than 0"),
    ("precision", ["trainer.precision=17"], _nothing, "trainer.precision=17: must be"),
    ("knn-k", ["eval.knn_k=0"], _nothing, "eval.knn_k=0: must be greater than 0"),
    ("baseline", ["eval.baselines=[imagenet]"], _nothing, "eval.baselines[0]='imagenet'"),
    ("seed", ["seed=-1"], _nothing, "seed=-1: must be greater than or equal to 0"),
    ("lr-rule", ["optim.lr_scaling.rule=cubic"], _nothing, "optim.lr_scaling.rule='cubic'"),
    ("collapse-share", ["eval.collapse.rankme_share=2"], _nothing, "eval.collapse.rankme_share=2"),
    ("width-zero", ["head.out_dim=0"], _nothing, "head.out_dim=0: must be greater than 0"),
    ("layers-not-int", ["eval.layers=[last]"], _nothing, "eval.layers[0]='last': must be a valid integer"),
    ("layers-out-of-range", ["eval.layers=[5]"], _nothing, "eval.layers=[5]: 5 is not a stage of the backbone"),
    ("bad-image-option", ["data=imagefolder", "data.path=/x", "data.on_bad_image=ignore"], _nothing, "on_bad_image"),
    # Pretrained weights: the caches are empty here (the fixture below); nothing is downloaded.
    (
        "pretrained-not-cached",
        ["backbone=timm", "backbone.name=test_resnet", "backbone.pretrained=true"],
        _nothing,
        "test_resnet are not on this machine and nothing is downloaded; looked for timm/test_resnet.r160_in1k/",
    ),
    (
        "pretrained-file-missing",
        ["backbone=timm", "backbone.pretrained=true", "backbone.pretrained_file=/no/such.pth"],
        _nothing,
        "backbone.pretrained_file=/no/such.pth: no such file",
    ),
    # Unknown keys and options: Hydra's own messages (exit status 1). They name the key or option
    # first, then list what exists and where Hydra looked: HYDRA_LINES lines in all.
    ("mistyped-key", ["loss.temprature=0.1"], _nothing, "loss.temprature"),
    ("unknown-loss", ["loss=nope"], _nothing, "loss/nope"),
    ("unknown-method", ["method=mocov9"], _nothing, "method/mocov9"),
    ("extra-argument", ["+augment.foo=1"], _nothing, "augment.foo: selfsup.augment.make_view_maker has no argument"),
    # Combinations no single type can refuse.
    ("method-loss", ["method=byol", "loss=ntxent"], _nothing, "method=byol does not accept loss=ntxent"),
    ("syncbn-cpu", ["trainer.sync_batchnorm=true"], _nothing, "trainer.sync_batchnorm=true needs GPUs"),
    ("fp16-cpu", ["trainer.precision=16-mixed"], _nothing, "trainer.precision=16-mixed needs a GPU"),
    (
        "queue-above-data",
        ["method=moco", "method.module.queue_size=100000"],
        _nothing,
        "method.module.queue_size=100000 is not below the training set's 1347 images",
    ),
    ("no-gpu", ["trainer.accelerator=gpu"], _nothing, "trainer.accelerator=gpu: no CUDA GPU is visible here"),
    ("mean-per-channel", ["data.mean=[0.1,0.2]"], _nothing, "data.mean has 2 values but data.channels=1"),
    (
        "momentum-order",
        ["method=byol", "method.module.base_momentum=0.999", "method.module.final_momentum=0.99"],
        _nothing,
        "method.module: need 0 <= base_momentum <= final_momentum <= 1",
    ),
    (
        "tau-order",
        ["loss=amcl", "head=multi", "loss.tau_min=0.5", "loss.tau_max=0.1"],
        _nothing,
        "loss.tau_min=0.5, loss.tau_max=0.1: expected 0 < tau_min < tau_max",
    ),
    ("per-view-count", ["augment.per_view=[{},{},{}]"], _nothing, "augment.per_view has 3 entries but augment.views=2"),
    ("objective-unknown", ["objective=rank_me"], _nothing, "objective='rank_me': must be "),
    (
        "on-device-torchvision",
        ["augment.backend=torchvision", "data.on_device=true"],
        _nothing,
        "data.on_device=true serves whole uint8 batches from the device, but augment.backend=torchvision",
    ),
    # Secrets.
    ("api-key", ["+logger.csv.api_key=0123456789abcdef0123"], _nothing, "logger.csv.api_key: credentials never go"),
    ("token", ["+backbone.hf_token=hf_0123456789abcdefghij"], _nothing, "backbone.hf_token: credentials never go"),
    # Missing and corrupt data.
    ("no-data-path", ["data=imagefolder"], _nothing, "data.path must be given"),
    ("data-path-missing", ["data=imagefolder", "data.path=/no/such/images"], _nothing, "/no/such/images"),
    ("data-folder-empty", ["data=imagefolder"], _empty_folder, "no images"),
    ("cifar-missing", ["data=cifar10", "data.root=/no/such/cifar"], _nothing, "/no/such/cifar"),
    ("stl10-missing", ["data=stl10", "data.root=/no/such/stl10"], _nothing, "/no/such/stl10"),
    ("corrupt-image", ["data=imagefolder"], _corrupt_folder, "bad.png"),
    ("val-class-not-in-train", ["data=imagefolder"], _val_class_not_in_train, "val/zebra: 1 class folder(s) of val/"),
    ("sixteen-bit", ["data=imagefolder"], _sixteen_bit, "deep0.png has more than 8 bits per channel (PIL mode"),
    (
        "channels-disagree",
        ["data=imagefolder", "augment=multispectral", "data.channels=5"],
        _cubes,
        "0.npy has shape (12, 12, 4) and data.channels=5: expected (H, W, 5) or (5, H, W)",
    ),
    (
        "rgb-op-channels",
        ["data=imagefolder", "data.channels=5"],
        _cubes,
        "augment.jitter: saturation 0.4 is an RGB op and data.channels=5; set it to 0",
    ),
    ("bit-depth-built-in", ["data.bit_depth=16"], _nothing, "data.bit_depth=16, but data=digits holds torch.uint8"),
    ("normalize-auto-key", ["data.normalize=mean"], _nothing, "data.normalize='mean': "),
    ("on-device-folder", ["data=imagefolder", "data.on_device=true"], _image_folder, "data.on_device=true needs"),
    # Streamed data and mid-epoch checkpoints.
    (
        "shards-missing",
        ["data=shards", "data.path=/no/such/shards"],
        _nothing,
        "data.path=/no/such/shards: no selfsup_shards.json",
    ),
    (
        "shards-smaller-than-a-batch",
        ["data=shards", "data.batch_size=256"],
        _small_shards,
        "data.batch_size=256: the training set of data=shards has 6 images, fewer than one batch",
    ),
    (
        "mid-epoch-not-resumable",
        ["checkpoint_every_n_steps=5"],
        _nothing,
        "checkpoint_every_n_steps=5: the training loader",
    ),
    ("mid-epoch-zero", ["checkpoint_every_n_steps=0"], _nothing, "checkpoint_every_n_steps=0: must be greater than 0"),
    # Checkpoints.
    ("resume-missing", ["resume=/no/such.ckpt"], _nothing, "resume=/no/such.ckpt: no such checkpoint"),
    ("resume-garbage", [], _garbage_ckpt, "garbage.ckpt"),
    ("last-damaged", [], _damaged_last, "resume=never"),
    # An existing run directory (selfsup/rerun.py, selfsup/run_lock.py).
    ("finished-other-config", ["loss.temperature=0.5"], _finished, "another config: loss.temperature (0.2 -> 0.5)"),
    ("finished-other-model", ["head.out_dim=64"], _finished, "another config: head.out_dim (128 -> 64)"),
    ("finished-more-epochs", ["trainer.max_epochs=3"], _finished, "another config: trainer.max_epochs (1 -> 3)"),
    ("resume-other-model", ["head.out_dim=64"], _unfinished, "unfinished run with another config: head.out_dim"),
    ("resume-more-epochs", ["trainer.max_epochs=3"], _unfinished, "trainer.max_epochs (1 -> 3)"),
    ("run-dir-in-use", [], _in_use, "is in use by pid 4242 on host otherhost"),
]


HYDRAS_OWN = {"loss.temprature", "loss/nope", "method/mocov9"}
# Hydra's own error lists the group's options, then its config search path: as many lines as the
# largest group has options, and a dozen more.
HYDRA_LINES = 12 + max(len(list(group.glob("*.yaml"))) for group in CONFIGS.iterdir() if group.is_dir())


@pytest.fixture(autouse=True)
def _empty_weight_caches(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """timm's pretrained weights are looked for in empty caches, whatever this machine holds."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf_hub"))  # read at import
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf_hub"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


@pytest.fixture(scope="module")
def train_main():  # type: ignore[no-untyped-def]
    return train_cli.main


def test_there_are_at_least_30_cases() -> None:
    assert len(CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("overrides,setup,named", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_fails_in_one_line_and_changes_nothing(
    train_main, overrides: list[str], setup: Setup, named: str, tmp_path: Path, monkeypatch, capfd
) -> None:  # type: ignore[no-untyped-def]
    run_dir = tmp_path / "run"
    extra = setup(tmp_path)
    before = run_dir_bytes(run_dir) if run_dir.exists() else None
    code, output = launch(train_main, [*TINY, *overrides, *extra, f"hydra.run.dir={run_dir}"], monkeypatch, capfd)
    assert code != 0, output[-2000:]
    last = output.strip().splitlines()[-(HYDRA_LINES if named in HYDRAS_OWN else 1) :]
    assert any(named in line for line in last), f"{named!r} not in the last lines:\n" + "\n".join(last)
    assert "Traceback" not in output, output[-3000:]
    if before is None:
        assert not run_dir.exists(), sorted(p.name for p in run_dir.rglob("*"))
    else:
        assert run_dir_bytes(run_dir) == before


# A config error and a refused rerun: the in-process test above checks every case's message, these
# that a real process ends the same way (one handler turns every user error into status 2).
SHELL = ["lr-negative", "finished-other-config"]


@pytest.mark.parametrize("case", SHELL)
def test_the_shell_sees_the_same(case: str, tmp_path: Path) -> None:
    """A few cases as real processes: exit status 2 and `error: ...` as the last line; with
    HYDRA_FULL_ERROR=1 the traceback is there for whoever asks."""
    _, overrides, setup, named = next(c for c in CASES if c[0] == case)
    argv = [*TINY, *overrides, *setup(tmp_path), f"hydra.run.dir={tmp_path / 'run'}"]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    p = run_python([sys.executable, str(ROOT / "train.py"), *argv], capture_output=True, text=True, env=env)
    assert p.returncode == 2, p.stderr[-2000:]
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and named in last, last
    assert "Traceback" not in p.stderr
    if case == "lr-negative":
        full = run_python(
            [sys.executable, str(ROOT / "train.py"), *argv],
            capture_output=True,
            text=True,
            env={**env, "HYDRA_FULL_ERROR": "1"},
        )
        assert full.returncode != 0 and "Traceback" in full.stderr and named in full.stderr


def test_the_troubleshooting_table_has_every_case() -> None:
    """The Troubleshooting page's table shows each case's key (or option) as a user would type it."""
    section = (ROOT / "docs" / "troubleshooting.md").read_text()
    for case, overrides, _, _named in CASES:
        if overrides:
            key = overrides[-1].split("=")[0]
            assert f"`{key}=" in section or f" {key}=" in section, (case, key)
