"""``scripts/export.py RUN_DIR --onnx``: model.onnx, run by onnxruntime, gives the exported
encoder's features to 1e-4 on the run's own held-out images, at any batch size, for a timm CNN,
a timm ViT and the small CNN; a file that disagrees, a missing package and another run's export
are refused in one line, and nothing that existed changes."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import onnxruntime as ort
import pytest
import torch

from selfsup import export as export_mod
from selfsup.build import build_datamodule, load_trained
from selfsup.cli import export as export_cli
from selfsup.export import CARD, ONNX, ONNX_TOLERANCE, WEIGHTS, load_exported
from selfsup.pipeline import run

BACKBONES = {
    "small_cnn": [],
    "resnet18": ["backbone=timm", "backbone.name=resnet18"],
    "vit_tiny": [
        "backbone=timm",
        "backbone.name=vit_tiny_patch16_224",
        "+backbone.model_kwargs.img_size=${augment.size}",
        "+backbone.model_kwargs.patch_size=4",
    ],
}
QUIET = ["eval.baselines=[]", "eval.metrics.enabled=false"]


@pytest.fixture(autouse=True)
def _logging_as_in_a_fresh_process() -> Iterator[None]:
    """The script runs in a fresh process: the root logger at WARNING, no handler. An earlier test in
    this worker (a run's Hydra job logging) may have left it at INFO with handlers on streams pytest
    has closed since, and the exporter's INFO records would then print logging errors to stderr."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers.clear()
    root.setLevel(logging.WARNING)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_the_onnx_file_gives_the_encoders_features_on_the_held_out_images(
    backbone: str,
    composed,
    tmp_path: Path,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    cfg = composed(*BACKBONES[backbone], *QUIET)
    run_dir = tmp_path / "run"
    run(cfg, run_dir, loss_choice="ntxent")
    before = _tree(run_dir / "export")

    # The run's own export holds these weights: rewritten with model.onnx, no --force needed.
    assert export_cli.main([str(run_dir), "--onnx"]) == 0
    assert "checked with onnxruntime on 64 held-out images" in capsys.readouterr().out
    after = _tree(run_dir / "export")
    assert after[WEIGHTS] == before[WEIGHTS] and ONNX in after
    assert "differ from PyTorch's by at most" in (run_dir / "export" / CARD).read_text()

    module = load_trained(cfg, run_dir / "checkpoints" / "last.ckpt").cpu()
    images = module.view_maker.prepare(build_datamodule(cfg).held_out_images(64))
    reference = load_exported(run_dir / "export")  # what a user of the safetensors gets
    session = ort.InferenceSession(str(run_dir / "export" / ONNX), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    assert [o.name for o in session.get_outputs()] == ["features"]
    for batch in (images[:1], images[:5], images):  # the batch axis is dynamic
        with torch.no_grad():
            want = reference(batch)
        got = torch.from_numpy(session.run(["features"], {"images": batch.numpy()})[0])
        assert got.shape == want.shape == (len(batch), reference.num_features)
        assert (got - want).abs().max() <= ONNX_TOLERANCE


def test_a_disagreeing_file_another_runs_export_and_a_missing_package_change_nothing(
    composed,
    tmp_path: Path,
    capsys,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    run_dir, other = tmp_path / "run", tmp_path / "other"
    run(composed(*QUIET), run_dir, loss_choice="ntxent")
    run(composed(*QUIET, "seed=1"), other, loss_choice="ntxent")
    export, before = run_dir / "export", _tree(run_dir / "export")

    def refused(argv: list[str]) -> str:
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            export_cli.main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert e.value.code == 2 and len(err) == 1, err
        assert _tree(export) == before  # not a byte changed
        return err[0]

    # Another run's weights into this export: only with --force, as without --onnx.
    assert "exists (written by selfsup); pass --force" in refused([str(other), "--out", str(export), "--onnx"])

    # onnxruntime disagreeing with PyTorch: the new directory is not swapped in.
    monkeypatch.setattr(export_mod, "ONNX_TOLERANCE", -1.0)
    assert "the ONNX export differs from the PyTorch encoder by" in refused([str(run_dir), "--onnx"])
    monkeypatch.undo()

    # A package missing: one line naming the flag and the package, before anything is read.
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    want = "error: export --onnx needs the package onnxruntime: pip install onnxruntime (or selfsup[onnx])"
    assert refused([str(run_dir), "--onnx"]) == want
    assert not list(tmp_path.glob(".export.new-*")) and not list(run_dir.glob(".export.new-*"))
