"""``data=imagefolder`` on a folder as users have it: a flat or nested folder of images with no
classes trains, is evaluated by the label-free metrics on a seeded held-out slice and shows each
held-out image's nearest training images; ``data.eval_path`` brings the probes back; a
``train/<class>/`` without ``val/`` is held out from, stratified."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from selfsup.data.folder import FolderImageDataset, folder_splits
from selfsup.errors import MissingFileError
from selfsup.eval.neighbours import CELL, GAP, QUERIES, K, neighbour_grid
from selfsup.pipeline import run
from tests.fake_data import make_image_folder, make_photos


def test_a_folder_at_any_depth_is_unlabelled_and_split_by_its_seed(tmp_path: Path) -> None:
    root = make_photos(tmp_path / "photos")
    splits = folder_splits(str(root), image_size=16, held_out_fraction=0.25)
    train, test = splits.train, splits.test
    assert isinstance(train, FolderImageDataset) and isinstance(test, FolderImageDataset)
    assert splits.num_classes == 0 and (len(train), len(test)) == (30, 10)
    paths = [p for p, _ in train.samples] + [p for p, _ in test.samples]
    assert sorted(paths) == sorted(str(p) for p in root.rglob("*.*"))  # every image once, at every depth
    assert {label for _, label in train.samples + test.samples} == {-1}
    image, label, index = train[len(train) - 1]
    assert image.shape == (3, 16, 16) and int(label) == -1 and index == len(train) - 1  # indices renumbered
    again = folder_splits(str(root), image_size=16, held_out_fraction=0.25)
    other = folder_splits(str(root), image_size=16, held_out_fraction=0.25, split_seed=1)
    assert again.test.samples == test.samples and other.test.samples != test.samples  # type: ignore[attr-defined]
    with pytest.raises(MissingFileError, match="image folder .*nope does not exist"):
        folder_splits(str(tmp_path / "nope"), image_size=16)


def test_train_classes_without_val_hold_out_a_stratified_slice(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "labelled", splits=("train",), n=30)
    splits = folder_splits(str(root), image_size=16, held_out_fraction=0.2)
    assert splits.num_classes == 3
    held = [label for _, label in splits.test.samples]  # type: ignore[attr-defined]
    kept = [label for _, label in splits.train.samples]  # type: ignore[attr-defined]
    assert len(held) + len(kept) == 30 and all(held.count(c) >= 1 and kept.count(c) >= 1 for c in range(3))
    assert not {p for p, _ in splits.test.samples} & {p for p, _ in splits.train.samples}  # type: ignore[attr-defined]


def test_an_unlabelled_folder_trains_reports_label_free_metrics_and_a_neighbours_preview(
    composed,
    tmp_path: Path,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    photos = make_photos(tmp_path / "photos")
    cfg = composed("data=imagefolder", f"data.path={photos}", "data.image_size=16", "data.num_workers=0")  # no labels
    run_dir = tmp_path / "run"
    results = run(cfg, run_dir, loss_choice="ntxent")
    metrics = results["metrics"]
    assert "linear_top1" not in metrics and "knn_top1" not in metrics  # nothing to probe
    assert {"rankme_backbone", "lidar_backbone", "align_backbone", "uniform_backbone"} <= set(metrics)
    assert json.loads((run_dir / "results.json").read_text())["neighbours"] == "neighbours.png"
    with Image.open(run_dir / "neighbours.png") as grid:  # QUERIES held-out images (4 here), K neighbours each
        rows = min(QUERIES, 4)
        assert grid.size == ((K + 1) * (CELL + GAP), rows * CELL + (rows - 1) * GAP)
    out = capsys.readouterr().out
    assert "| pretrained | – | – |" in out and f"nearest training images: {run_dir / 'neighbours.png'}" in out

    # A labelled folder for the probes: they are back, and nothing else changes.
    labelled = make_image_folder(tmp_path / "labelled", n=12)
    folder = ["data=imagefolder", f"data.path={photos}", "data.image_size=16", "data.num_workers=0"]
    cfg = composed(*folder, f"data.eval_path={labelled}")
    results = run(cfg, tmp_path / "probed", loss_choice="ntxent")
    assert {"linear_top1", "knn_top1", "lidar_backbone"} <= set(results["metrics"]) and "neighbours" not in results


def test_the_neighbours_grid_draws_grey_and_colour_images_in_their_rows() -> None:
    grey = torch.arange(4 * 8 * 8, dtype=torch.int64).remainder(251).to(torch.uint8).view(4, 1, 8, 8)
    grid = np.asarray(neighbour_grid(grey[:2], grey, torch.tensor([[2, 3], [0, 1]])))
    assert grid.shape == (2 * CELL + GAP, 3 * CELL + 3 * GAP, 3)
    row1, first_neighbour = CELL + GAP, CELL + 2 * GAP
    assert (grid[0, 0] == int(grey[0, 0, 0, 0])).all()  # the query, grey in all three channels
    assert (grid[row1, first_neighbour] == int(grey[0, 0, 0, 0])).all()  # the second row's nearest: image 0
    colour = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    colour[:, 2] = 200
    assert np.asarray(neighbour_grid(colour, colour, torch.tensor([[0]])))[0, 0].tolist() == [0, 0, 200]
