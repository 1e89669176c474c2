"""finetune.py end to end: a tiny digits run transferred to digits and to Fashion-MNIST through the
real entry point; what each protocol trains (and leaves frozen), determinism, and bad input in one line.

The entry point runs in this process as in tests/test_bad_input.py (Hydra's ``main``, argv and all);
the Fashion-MNIST transfer runs as a real process. Fashion-MNIST is Debian's copy where installed,
else the fake one of tests/fake_data.py.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from selfsup.build import build_backbone, load_trained
from selfsup.cli import finetune as finetune_cli
from selfsup.data.fashion_mnist import DEBIAN_DIR
from selfsup.finetune import PROTOCOLS, start_classifier
from selfsup.finetune_pipeline import RESULTS
from selfsup.pipeline import run
from tests.conftest import ROOT, TINY, compose_cfg, launch, run_python
from tests.test_train_options import run_dir_bytes

# A source run of seconds: TINY, two epochs, a narrow CNN.
SOURCE = [*TINY, "trainer.max_epochs=2", "backbone.widths=[8,16]", "eval.baselines=[]", "eval.metrics.enabled=false"]
# A transfer of seconds: small subsets of both splits, two epochs.
SHORT = ["epochs=2", "warmup_epochs=1", "batch_size=64", "max_train_samples=256", "max_test_samples=200"]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A finished tiny digits run; no test may change a byte of it."""
    run_dir = tmp_path_factory.mktemp("source") / "run"
    try:
        run(compose_cfg(SOURCE, run_dir=run_dir), run_dir, loss_choice="ntxent")
    finally:
        GlobalHydra.instance().clear()
    before = run_dir_bytes(run_dir)
    yield run_dir
    assert run_dir_bytes(run_dir) == before, "finetune.py changed the source run"


@pytest.fixture(scope="module")
def finetune_main():  # type: ignore[no-untyped-def]
    return finetune_cli.main


def _encoder_state(run_dir: Path) -> dict[str, torch.Tensor]:
    cfg = OmegaConf.load(run_dir / "config.yaml")
    return load_trained(cfg, run_dir / "checkpoints" / "last.ckpt").eval_encoder.state_dict()  # type: ignore[arg-type]


def _backbone(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu")
    return {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_digits_to_digits(source: Path, finetune_main, tmp_path: Path, monkeypatch, capfd) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "a"
    code, output = launch(finetune_main, [f"run={source}", *SHORT, f"hydra.run.dir={out}"], monkeypatch, capfd)
    assert code == 0, output[-3000:]
    results = json.loads((out / RESULTS).read_text())
    assert set(results["top1"]) == set(PROTOCOLS)
    assert all(0 <= v <= 100 for v in results["top1"].values()), results["top1"]
    assert results["target"] == {"data": "digits", "train_images": 256, "test_images": 200}
    assert results["input"]["size"] == 16  # the source run's view size (digits' 8 px upsampled)
    for protocol, value in results["top1"].items():
        assert f"| {protocol} | {value:.2f} |" in output

    pretrained = _encoder_state(source)
    assert _same(_backbone(out / "linear.pt"), pretrained)  # frozen: weights and BatchNorm statistics
    tuned, scratch = _backbone(out / "finetune.pt"), _backbone(out / "from_scratch.pt")
    assert tuned.keys() == pretrained.keys()
    assert all(not torch.equal(tuned[k], pretrained[k]) for k in tuned if k.endswith("weight"))
    assert not _same(scratch, tuned)

    again = tmp_path / "b"  # the same seed: the same numbers and weights
    code, output = launch(finetune_main, [f"run={source}", *SHORT, f"hydra.run.dir={again}"], monkeypatch, capfd)
    assert code == 0, output[-3000:]
    assert json.loads((again / RESULTS).read_text())["top1"] == results["top1"]
    for protocol in ("linear", "finetune", "from_scratch"):
        assert _same(torch.load(again / f"{protocol}.pt"), torch.load(out / f"{protocol}.pt")), protocol


def test_the_probe_is_the_runs_own(source: Path, finetune_main, tmp_path: Path, monkeypatch, capfd) -> None:  # type: ignore[no-untyped-def]
    """On the run's own data, at its view size and normalisation, the probe row is the run's probe."""
    out = tmp_path / "probe"
    code, output = launch(
        finetune_main, [f"run={source}", "protocols=[probe]", f"hydra.run.dir={out}"], monkeypatch, capfd
    )
    assert code == 0, output[-3000:]
    want = json.loads((source / "results.json").read_text())["metrics"]["linear_top1"]
    assert json.loads((out / RESULTS).read_text())["top1"] == {"probe": want}


def test_start_classifier(source: Path) -> None:
    """finetune and linear start from a copy of the pretrained encoder, from_scratch from a fresh
    network; every head starts the same for a seed."""
    cfg = OmegaConf.load(source / "config.yaml")
    encoder = load_trained(cfg, source / "checkpoints" / "last.ckpt").eval_encoder  # type: ignore[arg-type]
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    models = {
        p: start_classifier(p, encoder, lambda: build_backbone(cfg), 10, seed=0)
        for p in ("finetune", "linear", "from_scratch")
    }  # type: ignore[arg-type]
    assert _same(models["finetune"].backbone.state_dict(), before)
    assert models["finetune"].backbone is not encoder
    scratch = models["from_scratch"].backbone.state_dict()
    assert all(not torch.equal(scratch[k], before[k]) for k in scratch if k.endswith("weight"))
    assert torch.equal(models["finetune"].head.weight, models["from_scratch"].head.weight)  # type: ignore[arg-type]
    assert not any(p.requires_grad for p in models["linear"].backbone.parameters())
    assert not models["linear"].train().backbone.training
    with torch.no_grad():
        next(models["finetune"].backbone.parameters()).add_(1.0)
    assert _same(encoder.state_dict(), before)  # the source module is never changed


def test_digits_to_fashion_mnist_in_a_process(source: Path, data_roots: dict[str, Path], tmp_path: Path) -> None:
    root = [] if Path(DEBIAN_DIR).is_dir() else [f"data.root={data_roots['fashion_mnist']}"]
    out = tmp_path / "fmnist"
    argv = [f"run={source}", "data=fashion_mnist", *root, *SHORT, f"hydra.run.dir={out}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = run_python([sys.executable, "finetune.py", *argv], cwd=ROOT, capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    results = json.loads((out / RESULTS).read_text())
    assert set(results["top1"]) == set(PROTOCOLS) and all(0 <= v <= 100 for v in results["top1"].values())
    assert results["source"]["data"] == "digits" and results["target"]["data"] == "fashion_mnist"
    assert results["input"]["size"] == 16 and results["input"]["mean"] == [0.3053]  # the source's
    assert "| finetune |" in p.stdout


def _not_a_run(tmp: Path, source: Path) -> str:
    (tmp / "empty").mkdir()
    return str(tmp / "empty")


def _other_model(tmp: Path, source: Path) -> str:
    """A run directory whose config is of another architecture than its checkpoint."""
    shutil.copytree(source, tmp / "other")
    cfg = OmegaConf.load(tmp / "other" / "config.yaml")
    cfg.backbone.widths = [4, 8]
    OmegaConf.save(cfg, tmp / "other" / "config.yaml")
    return str(tmp / "other")


def _itself(tmp: Path, source: Path) -> str:
    return str(source)


# (id, where `run` points, other overrides, what the last line names)
CASES = [
    ("run-missing", None, [], "run must be given"),
    ("no-such-path", lambda t, s: str(t / "nope"), [], "nope: expected a run directory or a .ckpt file"),
    ("not-a-run", _not_a_run, [], "empty/checkpoints/last.ckpt not found"),
    ("other-model", _other_model, [], "other/checkpoints/last.ckpt holds another model"),
    (
        "protocol",
        _itself,
        ["protocols=[finetune,tune]"],
        "protocols[1]='tune': must be 'probe', 'linear', 'finetune' or 'from_scratch'",
    ),
    ("channels", _itself, ["data=cifar10"], "data=cifar10 has 3-channel images but the encoder of"),
    ("epochs", _itself, ["epochs=0"], "epochs=0: must be greater than 0"),
    ("normalize", _itself, ["normalize=imagenet"], "normalize='imagenet': must be 'source' or 'target'"),
    ("unknown-key", _itself, ["+num_classes=5"], "num_classes: finetune.py has no such key"),
]


@pytest.mark.parametrize("where,overrides,named", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_fails_in_one_line(
    source, finetune_main, where, overrides, named, tmp_path, monkeypatch, capfd
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    run_arg = [] if where is None else [f"run={where(tmp_path, source)}"]
    code, output = launch(finetune_main, [*run_arg, *overrides, f"hydra.run.dir={out}"], monkeypatch, capfd)
    assert code == 2, output[-3000:]
    last = output.strip().splitlines()[-1]
    assert last.startswith("error: ") and named in last, last
    assert "Traceback" not in output
    assert not out.exists()  # the directory Hydra made for the refused run is gone
