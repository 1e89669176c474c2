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
from selfsup.cli import embed as embed_cli
from selfsup.eval.features import extract_features
from selfsup.pipeline import run

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

    main = embed_cli.main
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

    # Without --out: beside the run, RUN_DIR/embeddings.parquet (nothing lands in the working folder).
    assert main([str(run_dir), "--images", str(folder / "val")]) == 0
    assert pq.read_table(run_dir / "embeddings.parquet").to_pydict() == table


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
        embed_cli.main(
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
    main = embed_cli.main
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


def _photos(folder: Path, mode: str, side: int, n: int = 3) -> Path:
    """``n`` random ``side`` px square images of PIL ``mode`` (RGB or L) in ``folder``."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8), "RGB").convert(mode).save(
            folder / f"{i}.png"
        )
    return folder


def test_colour_photos_for_a_grey_encoder_are_refused_unless_convert(composed, tmp_path: Path, capsys, caplog) -> None:  # type: ignore[no-untyped-def]
    """A digits run (grey, 8 px) and 460 px colour photos: one line naming the run, its channels and
    size and the first image; --convert embeds them as their grey versions, saying so, and the
    size gap is a warning naming both sizes."""
    run_dir = tmp_path / "run"
    run(composed(*QUIET), run_dir, "ntxent")
    main = embed_cli.main
    photos = _photos(tmp_path / "photos", "RGB", 460)
    out = tmp_path / "e.npy"

    capsys.readouterr()  # what the run printed
    with pytest.raises(SystemExit) as e:
        main([str(run_dir), "--images", str(photos), "--out", str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for named in (
        str(run_dir),
        "data.channels=1",
        "data.image_size=8",
        str(photos / "0.png"),
        "RGB, 460x460",
        "--convert",
    ):
        assert named in err[0], (named, err[0])
    assert not out.exists()

    caplog.clear()
    assert main([str(run_dir), "--images", str(photos), "--out", str(out), "--convert"]) == 0
    assert "converted from colour to grey" in capsys.readouterr().out
    scale = [r.getMessage() for r in caplog.records if "460x460" in r.getMessage()]
    assert len(scale) == 1 and "8 px" in scale[0] and "scaled down" in scale[0], scale
    # --convert is PIL's conversion: the same features as the grey versions of the photos.
    grey = tmp_path / "grey"
    grey.mkdir()
    for p in sorted(photos.iterdir()):
        Image.open(p).convert("L").save(grey / p.name)
    assert main([str(run_dir), "--images", str(grey), "--out", str(tmp_path / "g.npy")]) == 0
    np.testing.assert_array_equal(np.load(out), np.load(tmp_path / "g.npy"))


@pytest.mark.parametrize(
    "mode,side,refused,warned",
    [
        ("L", 24, True, False),
        ("RGBA", 24, False, False),
        ("RGB", 4, False, True),
        ("RGB", 200, False, True),
        ("RGB", 90, False, False),
    ],
)
def test_check_images_judges_the_first_image(
    tmp_path: Path, caplog, mode: str, side: int, refused: bool, warned: bool
) -> None:  # type: ignore[no-untyped-def]
    """Against a colour run of 24 px images: grey is refused, RGBA is colour; a side more than 4x
    off data.image_size is a warning; an undecodable first file is passed over."""
    from selfsup.errors import DataError

    check_images = embed_cli.check_images
    cfg = OmegaConf.create({"data": {"channels": 3, "image_size": 24}, "augment": {"size": 32}})
    folder = _photos(tmp_path / "images", mode, side, n=1)
    (folder / "-bad.png").write_bytes(b"not a png")  # sorted first, cannot be opened
    paths = sorted(str(p) for p in folder.iterdir())
    if refused:
        with pytest.raises(DataError, match=r"is grey \(L, 24x24 px\).*takes colour images \(data.channels=3"):
            check_images(paths, tmp_path / "run", cfg, convert=False)
        assert check_images(paths, tmp_path / "run", cfg, convert=True) == ", converted from grey to colour"
    else:
        assert check_images(paths, tmp_path / "run", cfg, convert=False) == ""
    warnings = [r.getMessage() for r in caplog.records if "trained on 24 px" in r.getMessage()]
    assert len(warnings) == warned, warnings
