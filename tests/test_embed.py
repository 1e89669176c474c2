"""scripts/embed.py: a folder of images embedded with a trained run's encoder gives exactly the
features the final evaluation's probe saw; bad input is one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from selfsup.build import build_datamodule, load_trained
from selfsup.eval.features import extract_features
from selfsup.pipeline import run
from tests.conftest import load_script

QUIET = ("eval.baselines=[]", "eval.metrics.enabled=false")


def _probe_features(run_dir: Path) -> dict[str, torch.Tensor]:
    """The held-out split's backbone and projector features as the final evaluation extracts them."""
    cfg = OmegaConf.load(run_dir / "config.yaml")
    module = load_trained(cfg, run_dir / "checkpoints" / "last.ckpt")  # type: ignore[arg-type]
    dm = build_datamodule(cfg)  # type: ignore[arg-type]
    dm.setup()
    return extract_features(module.eval_encoder, dm.val_dataloader(), module.view_maker.prepare, head=module.eval_head)


def test_an_image_folder_embeds_to_the_probe_features(composed, data_roots, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = data_roots["imagefolder"]
    run_dir = tmp_path / "run"
    run(composed("data=imagefolder", f"data.path={folder}", "data.image_size=24", *QUIET), run_dir, "ntxent")
    want = _probe_features(run_dir)

    main = load_script("scripts/embed.py").main
    assert (
        main([str(run_dir), "--images", str(folder / "val"), "--out", str(tmp_path / "e.parquet"), "--batch-size", "5"])
        == 0
    )
    table = pq.read_table(tmp_path / "e.parquet").to_pydict()
    # The held-out split lists class folders in order, files sorted: the same order as embed's sorted paths.
    assert table["path"] == sorted(table["path"]) and len(table["path"]) == len(want["h"])
    assert table["path"][0].startswith("class0/")
    got = torch.tensor(np.array(table["embedding"], dtype=np.float32))
    torch.testing.assert_close(got, want["h"], rtol=0, atol=1e-6)

    assert main([str(run_dir), "--images", str(folder / "val"), "--out", str(tmp_path / "z.npy"), "--projector"]) == 0
    torch.testing.assert_close(torch.from_numpy(np.load(tmp_path / "z.npy")), want["z"], rtol=0, atol=1e-6)
    assert (tmp_path / "z.paths.txt").read_text().splitlines() == table["path"]


def test_digits_written_as_png_embed_to_the_probe_features(composed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run_dir = tmp_path / "run"
    run(composed(*QUIET), run_dir, "ntxent")
    want = _probe_features(run_dir)
    cfg = OmegaConf.load(run_dir / "config.yaml")
    dm = build_datamodule(cfg)  # type: ignore[arg-type]
    dm.setup()
    images = tmp_path / "pngs" / "nested"
    images.mkdir(parents=True)
    for x, _, i in dm.val_dataloader().dataset:  # type: ignore[attr-defined]
        Image.fromarray(x[0].numpy(), mode="L").save(images / f"{i:04d}.png")
    assert (
        load_script("scripts/embed.py").main(
            [
                str(run_dir / "checkpoints" / "last.ckpt"),
                "--images",
                str(tmp_path / "pngs"),
                "--out",
                str(tmp_path / "d.npy"),
            ]
        )
        == 0
    )
    torch.testing.assert_close(torch.from_numpy(np.load(tmp_path / "d.npy")), want["h"], rtol=0, atol=1e-6)
    assert (tmp_path / "d.paths.txt").read_text().splitlines()[0] == "nested/0000.png"


def test_bad_input_is_one_line_and_skip_bad_leaves_the_file_out(composed, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    run_dir = tmp_path / "run"
    run(composed(*QUIET), run_dir, "ntxent")
    main = load_script("scripts/embed.py").main
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8), mode="L").save(images / f"{i}.png")
    (images / "1.png").write_bytes(b"not a png")

    def refused(args: list[str]) -> str:
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            main(args)
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: "), err
        return err[0]

    out = str(tmp_path / "e.npy")
    assert "no images" in refused([str(run_dir), "--images", str(tmp_path / "empty"), "--out", out])
    assert str(tmp_path / "empty") in refused([str(run_dir), "--images", str(tmp_path / "empty"), "--out", out])
    assert "--out" in refused([str(run_dir), "--images", str(images), "--out", str(tmp_path / "e.csv")])
    assert "not found" in refused([str(tmp_path / "empty"), "--images", str(images), "--out", out])
    line = refused([str(run_dir), "--images", str(images), "--out", out])
    assert str(images / "1.png") in line and "--skip-bad" in line and "data.on_bad_image" not in line
    assert not (tmp_path / "e.npy").exists()

    assert main([str(run_dir), "--images", str(images), "--out", out, "--skip-bad"]) == 0
    assert (tmp_path / "e.paths.txt").read_text().splitlines() == ["0.png", "2.png"]
    assert np.load(out).shape[0] == 2
