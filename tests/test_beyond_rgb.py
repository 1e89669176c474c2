"""Beyond 8-bit RGB, end to end: a 13-band 16-bit TIFF folder pretrains (data.normalize=auto,
augment=multispectral), exports (bit depth, channels and the measured statistics), embeds, is
probed again and exports to ONNX matching onnxruntime; a DICOM folder and a 16-bit PNG folder
train; an RGB-only op with 13 channels fails before the run directory exists."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from selfsup.build import build_datamodule, load_trained
from selfsup.cli import embed, make_spectral
from selfsup.cli import export as export_cli
from selfsup.data import stats
from selfsup.data.folder import folder_splits
from selfsup.export import ONNX, ONNX_TOLERANCE, load_exported
from selfsup.pipeline import run
from selfsup.run_dir import trained_run
from tests.conftest import TINY
from tests.test_cli import train

QUIET = ["eval.baselines=[]", "eval.metrics.enabled=false"]
SPECTRAL = [
    "data=imagefolder",
    "data.channels=13",
    "data.bit_depth=16",
    "data.normalize=auto",
    "data.image_size=16",
    "data.num_workers=0",
    "augment=multispectral",
    "augment.size=16",
    "augment.local_size=8",
]


@pytest.fixture(scope="module")
def spectral(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("spectral") / "set"
    assert make_spectral.main([str(out), "--train", "8", "--val", "4", "--size", "16"]) == 0
    return out


def test_a_13_band_16_bit_tiff_folder_pretrains_exports_embeds_and_probes(
    spectral: Path,
    composed,
    tmp_path: Path,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    cfg = composed(*SPECTRAL, f"data.path={spectral}", *QUIET)
    run_dir = tmp_path / "run"
    results = run(cfg, run_dir, loss_choice="ntxent")
    assert 0 <= results["metrics"]["linear_top1"] <= 100

    measured = json.loads((run_dir / stats.STATS_FILE).read_text())
    dm = build_datamodule(composed(*SPECTRAL, f"data.path={spectral}"))
    dm.setup()
    assert measured == stats.measure(dm.splits.indexed_train, 16)  # type: ignore[union-attr]
    assert len(measured["mean"]) == 13 and measured["images"] == 32

    config = json.loads((run_dir / "export" / "config.json").read_text())
    assert config["bit_depth"] == 16 and config["pretrained_cfg"]["input_size"] == [13, 16, 16]
    assert config["pretrained_cfg"]["mean"] == pytest.approx(measured["mean"])
    assert config["pretrained_cfg"]["std"] == pytest.approx(measured["std"])
    assert "16-bit values divided by 65535" in (run_dir / "export" / "README.md").read_text()

    # Every script that reuses the run normalises with the measured statistics.
    reused = trained_run(run_dir).cfg
    assert list(reused.augment.mean) == pytest.approx(measured["mean"]) and reused.data.normalize == "fixed"
    module = load_trained(reused, run_dir / "checkpoints" / "last.ckpt")
    assert module.view_maker.mean.flatten().tolist() == pytest.approx(measured["mean"])

    out = tmp_path / "emb.npy"
    assert embed.main([str(run_dir), "--images", str(spectral / "val"), "--out", str(out), "--device", "cpu"]) == 0
    emb = np.load(out)
    assert emb.shape == (16, module.eval_encoder.num_features)
    images = dm.splits.test  # type: ignore[union-attr]
    x = module.view_maker.prepare(torch.stack([images[i][0] for i in range(len(images))]))
    with torch.no_grad():
        want = module.eval_encoder.eval()(x)
    assert np.allclose(emb, want.numpy(), atol=1e-5)  # the run's own held-out images: the features it saw

    from selfsup.cli import probe

    assert probe.main([str(run_dir)]) == 0  # the linear probe again, from the run's checkpoint
    again = json.loads((run_dir / "probe.json").read_text())
    assert again["pretrained"]["linear_top1"] == pytest.approx(results["metrics"]["linear_top1"])

    capsys.readouterr()
    assert export_cli.main([str(run_dir), "--onnx"]) == 0
    import onnxruntime as ort

    reference = load_exported(run_dir / "export")
    session = ort.InferenceSession(str(run_dir / "export" / ONNX), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(["features"], {"images": x.numpy()})[0])
    with torch.no_grad():
        assert (got - reference(x)).abs().max() <= ONNX_TOLERANCE


def test_an_rgb_op_with_13_channels_fails_before_the_run_directory_exists(spectral: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    argv = [a for a in SPECTRAL if a != "augment=multispectral"]
    p = train(*argv, f"data.path={spectral}", *TINY, run_dir=run_dir)
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert lines[-1].startswith("error: augment.jitter: saturation 0.4 is an RGB op and data.channels=13; set it to 0")
    assert not run_dir.exists()


def test_a_dicom_folder_trains(composed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("pydicom", reason="pydicom (selfsup[dicom]) reads DICOM")
    from pydicom.data import get_testdata_file

    folder = tmp_path / "dicom"
    (folder / "ct").mkdir(parents=True)
    (folder / "mr").mkdir()
    for i in range(12):  # pydicom's own CT and MR images, copied: a folder of unlabelled DICOM files
        shutil.copy(get_testdata_file("CT_small.dcm", download=False), folder / "ct" / f"{i:02d}.dcm")
        shutil.copy(get_testdata_file("MR_small.dcm", download=False), folder / "mr" / f"{i:02d}.dcm")
    common = [f"data.path={folder}", "data.channels=1", "data.bit_depth=16", "data.normalize=auto"]
    common += ["data.image_size=16", "data.num_workers=0", "augment/preset@data.view=px8", "data.view.size=16"]
    cfg = composed("data=imagefolder", *common, "data.dicom_window=[40,400]", *QUIET)
    results = run(cfg, tmp_path / "run", loss_choice="ntxent")
    assert results["steps"] > 0 and (tmp_path / "run" / "export" / "model.safetensors").is_file()
    assert Image.open(tmp_path / "run" / "neighbours.png").mode == "RGB"  # 16-bit grey, shown
    p = train("data=imagefolder", *common, *TINY, run_dir=tmp_path / "nowindow")  # CT in HU needs a window
    assert "has modality values -896..1167 (after its rescale slope and intercept)" in p.stderr.splitlines()[-1]
    assert "set data.dicom_window=[center,width]" in p.stderr.splitlines()[-1]


def test_a_16_bit_grey_png_folder_trains_at_16_bits(composed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Two classes 8 bits could not tell apart (their values share the top 8 bits), probed after a run."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 24), ("val", 8)):
        for k in range(2):
            (tmp_path / "png" / split / f"c{k}").mkdir(parents=True)
            for i in range(n):
                img = (4096 + 40 * k + rng.integers(0, 8, (12, 12))).astype(np.uint16)  # 4096..4143: all 16 >> 8
                Image.fromarray(img).save(tmp_path / "png" / split / f"c{k}" / f"{i}.png")
    cfg = composed(
        "data=imagefolder",
        f"data.path={tmp_path / 'png'}",
        "data.channels=1",
        "data.bit_depth=16",
        "data.normalize=auto",
        "data.image_size=12",
        "data.num_workers=0",
        "augment/preset@data.view=px8",
        "eval.baselines=[raw_pixels]",
        "eval.metrics.enabled=false",
    )
    results = run(cfg, tmp_path / "run", loss_choice="ntxent")
    assert results["baselines"]["raw_pixels"]["linear_top1"] == 100.0  # the 16 bits reached the probe


def test_show_augment_draws_13_band_views_in_false_colour(spectral: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from selfsup.cli import show_augment

    argv = [*SPECTRAL, f"data.path={spectral}", "--images", "3"]
    assert show_augment.main([*argv, "--out", str(tmp_path / "default.png")]) == 0
    assert show_augment.main([*argv, "--bands", "12,6,0", "--out", str(tmp_path / "chosen.png")]) == 0
    default, chosen = Image.open(tmp_path / "default.png"), Image.open(tmp_path / "chosen.png")
    assert default.mode == chosen.mode == "RGB" and default.size == chosen.size
    assert list(default.getdata()) != list(chosen.getdata())  # other bands, other colours
    capsys.readouterr()
    with pytest.raises(SystemExit):
        show_augment.main([*argv, "--bands", "0,1,13", "--out", str(tmp_path / "bad.png")])
    assert "--bands 0,1,13: bands [0, 1, 13]: expected three channel indices in 0..12" in capsys.readouterr().err
    assert not (tmp_path / "bad.png").exists()


def test_a_resumed_run_normalises_with_the_statistics_it_wrote(tmp_path: Path) -> None:
    """data.normalize=auto measures once: a run resumed from a checkpoint reads normalization.json and
    measures nothing (the data module is not even read), so it normalises exactly as it started."""
    from omegaconf import OmegaConf

    from selfsup.pipeline import auto_normalization
    from selfsup.run_dir import atomic_write_json

    cfg = OmegaConf.create({"data": {"normalize": "auto", "bit_depth": 16}})
    saved = {"mean": [0.1] * 13, "std": [0.2] * 13, "images": 32, "seed": 0}
    atomic_write_json(tmp_path / stats.STATS_FILE, saved)
    assert auto_normalization(cfg, None, tmp_path, ckpt=tmp_path / "last.ckpt") == saved  # type: ignore[arg-type]
    assert auto_normalization(OmegaConf.create({"data": {"normalize": "fixed"}}), None, tmp_path, None) is None  # type: ignore[arg-type]


def test_a_13_channel_timm_export_loads_with_the_plain_timm_recipe(spectral: Path, composed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """docs/using-the-encoder.md's recipe (timm.create_model with the export's pretrained_cfg and
    model_args) builds the 13-channel model and gives the run's features."""
    import timm

    cfg = composed(*SPECTRAL, f"data.path={spectral}", "backbone=timm", "backbone.name=test_resnet", *QUIET)
    run_dir = tmp_path / "run"
    run(cfg, run_dir, loss_choice="ntxent")
    config = json.loads((run_dir / "export" / "config.json").read_text())
    model = timm.create_model(
        config["architecture"],
        pretrained=True,
        num_classes=0,
        pretrained_cfg_overlay=dict(config["pretrained_cfg"], file=str(run_dir / "export" / "model.safetensors")),
        **config["model_args"],
    ).eval()
    assert config["model_args"]["in_chans"] == 13 and list(model.pretrained_cfg["input_size"]) == [13, 16, 16]
    module = load_trained(trained_run(run_dir).cfg, run_dir / "checkpoints" / "last.ckpt")
    held_out = folder_splits(str(spectral), image_size=16, channels=13, bit_depth=16).test
    x = module.view_maker.prepare(torch.stack([held_out[i][0] for i in range(4)]))
    with torch.no_grad():
        assert torch.allclose(model(x), module.eval_encoder.eval()(x), atol=1e-5)
