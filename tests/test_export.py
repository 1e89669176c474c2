"""RUN_DIR/export/: the trained encoder loads in plain timm, in a process that never imports
selfsup, with no missing or unexpected key, and gives the framework's features."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from selfsup.backbones import TimmBackbone
from selfsup.build import load_trained
from selfsup.cli import export as export_cli
from selfsup.cli import train as train_cli
from selfsup.export import CARD, CONFIG, WEIGHTS, export_encoder, load_exported
from selfsup.owned_dir import MARKER
from selfsup.pipeline import run
from tests.conftest import ROOT, TINY, launch

# Runs in a fresh interpreter: timm and safetensors only.
PLAIN_TIMM = r"""
import json, sys
import timm, torch
from safetensors.torch import load_file
export, images, out = sys.argv[1:4]
config = json.load(open(f"{export}/config.json"))
model = timm.create_model(config["architecture"], pretrained=True, num_classes=0, **config["model_args"],
                          pretrained_cfg_overlay=dict(config["pretrained_cfg"], file=f"{export}/model.safetensors"))
missing, unexpected = model.load_state_dict(load_file(f"{export}/model.safetensors"), strict=False)
assert not missing and not unexpected, (missing, unexpected)
assert list(model.pretrained_cfg["input_size"]) == config["pretrained_cfg"]["input_size"], model.pretrained_cfg
with torch.no_grad():
    torch.save(model.eval()(torch.load(images)), out)
assert not any(m == "selfsup" or m.startswith("selfsup.") for m in sys.modules), "selfsup was imported"
"""


def _features(module, x: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def]
    encoder = module.eval_encoder.eval()
    with torch.no_grad():
        return encoder(x)


def test_a_trained_timm_run_loads_in_plain_timm(composed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = composed("backbone=timm", "backbone.name=resnet18", "eval.baselines=[]", "eval.metrics.enabled=false")
    run_dir = tmp_path / "run"
    run(cfg, run_dir, loss_choice="ntxent")
    export = run_dir / "export"
    assert sorted(p.name for p in export.iterdir()) == sorted([WEIGHTS, CONFIG, CARD, MARKER])
    config = json.loads((export / CONFIG).read_text())
    assert config["architecture"] == "resnet18" and config["model_args"] == {"in_chans": 1}
    assert config["pretrained_cfg"]["mean"] == list(cfg.data.mean) and config["num_features"] == 512
    assert not any(k.startswith(("fc.", "head")) for k in load_file(str(export / WEIGHTS)))  # the encoder only

    x = torch.randn(6, 1, 8, 8)
    torch.save(x, tmp_path / "x.pt")
    p = subprocess.run(  # a fresh process (not tests/command_server.py's fork): it must not import selfsup
        [sys.executable, "-c", PLAIN_TIMM, str(export), str(tmp_path / "x.pt"), str(tmp_path / "f.pt")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert "source channels" not in p.stderr, p.stderr[-3000:]  # timm's warning (a WARNING log: on stderr)
    assert config["pretrained_cfg"]["input_size"] == [1, cfg.augment.size, cfg.augment.size]  # digits: grey
    ours = _features(load_trained(cfg, run_dir / "checkpoints" / "last.ckpt"), x)
    torch.testing.assert_close(torch.load(tmp_path / "f.pt"), ours, rtol=0, atol=1e-6)

    card = (export / CARD).read_text()
    assert "simclr / ntxent" in card and "timm.create_model('resnet18'" in card and "linear_top1" in card
    assert 'pretrained_cfg_overlay=dict(config["pretrained_cfg"]' in card


def _docs_recipe() -> str:
    """The python block of the docs' "Using the trained encoder" (docs/using-the-encoder.md, Export)."""
    text = (ROOT / "docs" / "using-the-encoder.md").read_text()
    section = text[text.index("## Export") : text.index("## Fine-tuning and transfer")]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.parametrize("channels", [1, 3])
def test_the_docs_recipe_loads_the_export_with_its_channels_and_no_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, channels: int
) -> None:
    """The docs' recipe gives the model the export's pretrained_cfg: input size (C, H, W) with the
    model's channels and the training normalisation; timm warns about nothing (it warns through
    logging: "input_size declares 3 source channels and the model has 1" for a grey model loaded
    with timm's ImageNet config)."""
    backbone = TimmBackbone("resnet18", in_chans=channels).eval()
    mean, std = [0.5] * channels, [0.25] * channels
    export = export_encoder(backbone, tmp_path / "export", mean=mean, std=std, image_size=16, card={})
    assert json.loads((export / CONFIG).read_text())["pretrained_cfg"]["input_size"] == [channels, 16, 16]
    namespace: dict[str, object] = {}
    caplog.set_level(logging.WARNING)
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        exec(_docs_recipe().replace("RUN_DIR/export", str(export)), namespace)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert not [w for w in warned if "channels" in str(w.message)], [str(w.message) for w in warned]
    model = namespace["model"]
    assert isinstance(model, torch.nn.Module)
    cfg = model.pretrained_cfg
    assert tuple(cfg["input_size"]) == (channels, 16, 16)
    assert list(cfg["mean"]) == mean and list(cfg["std"]) == std
    x = torch.randn(2, channels, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), backbone(x), rtol=0, atol=1e-6)


def test_a_cifar_stem_encoder_round_trips_through_its_own_loader(tmp_path: Path) -> None:
    backbone = TimmBackbone("resnet18", in_chans=3, cifar_stem=True).eval()
    out = export_encoder(backbone, tmp_path / "export", mean=[0.5] * 3, std=[0.25] * 3, image_size=32, card={})
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(load_exported(out)(x), backbone(x), rtol=0, atol=1e-6)
    assert json.loads((out / CONFIG).read_text())["cifar_stem"] is True
    assert "cifar_stem=True" in (out / CARD).read_text()


def test_the_script_exports_any_checkpoint_and_refuses_another_model(composed, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    cnn = tmp_path / "cnn"
    run(composed("eval.baselines=[]", "eval.metrics.enabled=false"), cnn, loss_choice="ntxent")
    assert json.loads((cnn / "results.json").read_text())["export"] == "export"
    main = export_cli.main
    assert main([str(cnn / "checkpoints" / "last.ckpt"), "--out", str(tmp_path / "again")]) == 0
    for name in (WEIGHTS, CONFIG):
        assert (tmp_path / "again" / name).read_bytes() == (cnn / "export" / name).read_bytes(), name

    # A checkpoint of another architecture (widths 16, 32) in this run's place: one line, exit 2.
    other = tmp_path / "other"
    run(composed("eval.baselines=[]", "eval.metrics.enabled=false", "backbone.widths=[16,32]"), other, "ntxent")
    (cnn / "checkpoints" / "last.ckpt").write_bytes((other / "checkpoints" / "last.ckpt").read_bytes())
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main([str(cnn), "--force"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {cnn / 'checkpoints' / 'last.ckpt'} holds another model")

    # The run's export exists: replaced only with --force. A folder of the user's: never, and untouched.
    with pytest.raises(SystemExit) as e:
        main([str(other)])
    assert e.value.code == 2 and "exists (written by selfsup); pass --force" in capsys.readouterr().err
    mine = tmp_path / "mine"
    (mine / "sub").mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    (mine / "sub" / "table.csv").write_text("1,2\n")
    with pytest.raises(SystemExit) as e:
        main([str(other), "--out", str(mine), "--force"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and f"{mine} exists and was not written by selfsup" in err[0]
    assert sorted(str(p.relative_to(mine)) for p in mine.rglob("*")) == ["notes.txt", "sub", "sub/table.csv"]

    # A FAILED or unfinished run: refused unless --unfinished asks for it.
    (other / "results.json").rename(other / "results.moved")
    with pytest.raises(SystemExit) as e:
        main([str(other), "--out", str(tmp_path / "unfinished")])
    assert e.value.code == 2 and "has not finished (no results.json); --unfinished" in capsys.readouterr().err
    assert not (tmp_path / "unfinished").exists()
    (other / "FAILED").write_text("Traceback ...\nValueError: boom\n")
    with pytest.raises(SystemExit) as e:
        main([str(other), "--out", str(tmp_path / "unfinished")])
    assert e.value.code == 2 and "is a FAILED run (ValueError: boom); --unfinished" in capsys.readouterr().err
    assert main([str(other), "--out", str(tmp_path / "unfinished"), "--unfinished"]) == 0

    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "nope")])
    assert e.value.code == 2 and "nope" in capsys.readouterr().err


def test_a_backbone_without_export_config_trains_and_skips_the_export(tmp_path: Path, monkeypatch, capfd) -> None:  # type: ignore[no-untyped-def]
    """A backbone of the user's own with only num_features and forward: train.py trains,
    evaluates and writes results.json ("export": null), saying before training and at the end that
    export/ is skipped; scripts/export.py refuses it in one line."""
    run_dir = tmp_path / "run"
    overrides = ["backbone._target_=tests.backbones.tiny_net.TinyNet", "~backbone.widths", "eval.baselines=[]"]
    code, output = launch(train_cli.main, [*TINY, *overrides, f"hydra.run.dir={run_dir}"], monkeypatch, capfd)
    assert code == 0, output[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["export"] is None and results["metrics"]["linear_top1"] > 0
    assert not (run_dir / "export").exists() and not (run_dir / "FAILED").exists()
    said = [line for line in output.splitlines() if "TinyNet has no export_config()" in line]
    assert len(said) == 2, said
    assert (
        "writes no export/" in said[0] and "export skipped: " in said[1] and "selfsup/backbones/__init__.py" in said[1]
    )

    with pytest.raises(SystemExit) as e:
        export_cli.main([str(run_dir)])
    err = capfd.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: {run_dir}: its encoder cannot be exported: TinyNet has no export_config()")
    assert not (run_dir / "export").exists()
