"""data=shards: written by scripts/make_shards.py, read back pixel for pixel, streamed by rank and
worker, resumed mid-epoch after SIGKILL in the same order, in flat memory."""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
from litdata import StreamingDataset
from PIL import Image

from selfsup.augment.sample_crops import SampleCrops
from selfsup.augment.views import ViewMaker
from selfsup.cli import make_shards
from selfsup.data.digits import digits_splits
from selfsup.data.folder import FolderImageDataset
from selfsup.data.image_file import ImageFormat
from selfsup.data.shards import META, decode_full, shard_splits
from selfsup.errors import DataError, MissingFileError
from tests.conftest import ROOT, TINY, free_port, run_python, start_ranks
from tests.kill_at_step import kill_at

# The digits' settings, for shards written from data=digits
DIGITS = ["data.channels=1", "data.image_size=8", "data.mean=[0.3053]", "data.std=[0.3759]"]
DIGITS.append("augment/preset@data.view=px8")


@pytest.fixture(scope="module")
def digit_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shards") / "digits"
    assert make_shards.main(["data=digits", str(out), "--chunk-mb", "0.05"]) == 0
    return out


def _jpeg_folder(root: Path, per_class: int = 6) -> Path:
    """JPEGs of varying size and aspect ratio, and a PNG, in class folders."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in ("cat", "dog"):
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                h, w = (int(v) for v in rng.integers(20, 90, 2))
                img = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
                img.save(root / split / c / f"{i}.jpg", quality=85)
        img.save(root / split / "dog" / "extra.png")
    return root


def test_image_folder_shards_keep_every_file_and_read_back_as_the_folder_does(tmp_path: Path) -> None:
    src = _jpeg_folder(tmp_path / "images")
    out = tmp_path / "shards"
    assert make_shards.main([str(src), str(out)]) == 0
    meta = json.loads((out / META).read_text())
    assert meta["classes"] == ["cat", "dog"] and meta["samples"] == {"train": 13, "val": 13}
    for split in ("train", "val"):
        folder = FolderImageDataset(src / split, size=32)
        stored = StreamingDataset(str(out / split))
        assert len(stored) == len(folder)
        for i, (path, label) in enumerate(folder.samples):
            item = stored[i]
            # the original bytes: the same JPEG at its own size and aspect ratio
            assert item["image"] == Path(path).read_bytes() and item["label"] == label and item["index"] == i
            assert item["name"] == os.path.relpath(path, src)
    splits = shard_splits(str(out), image_size=32, channels=3)
    folder_val = FolderImageDataset(src / "val", size=32)
    for i in range(len(folder_val)):  # evaluation images: pixel for pixel data=imagefolder's
        a, b = splits.test[i], folder_val[i]
        assert torch.equal(a[0], b[0]) and a[1] == b[1] and a[2] == b[2]
    # training images are decoded at full resolution: the file's own pixels, its own size
    path = folder_val.samples[0][0]
    full = decode_full(Path(path).read_bytes(), ImageFormat(3), path)
    assert torch.equal(full, torch.from_numpy(np.asarray(Image.open(path).convert("RGB"))).permute(2, 0, 1))


def test_an_unlabelled_folder_shards_as_imagefolder_splits_it_and_trains_without_labels(
    composed,
    tmp_path: Path,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    from selfsup.data.folder import folder_splits
    from selfsup.pipeline import run
    from tests.fake_data import make_photos

    src, out = make_photos(tmp_path / "photos"), tmp_path / "shards"
    assert make_shards.main([str(src), str(out), "--held-out-fraction", "0.25", "--split-seed", "3"]) == 0
    meta = json.loads((out / META).read_text())
    assert meta["classes"] == [] and meta["samples"] == {"train": 30, "val": 10}
    folder = folder_splits(str(src), image_size=16, held_out_fraction=0.25, split_seed=3)  # the same split
    for split, ds in (("train", folder.train), ("val", folder.test)):
        stored = StreamingDataset(str(out / split))
        assert isinstance(ds, FolderImageDataset) and len(stored) == len(ds)
        for i, (path, label) in enumerate(ds.samples):
            item = stored[i]
            assert item["image"] == Path(path).read_bytes() and item["label"] == label == -1
    assert shard_splits(str(out), image_size=16, channels=3).num_classes == 0
    shards = ["data=shards", f"data.path={out}", "data.image_size=16", "data.batch_size=8", "data.num_workers=0"]
    results = run(composed(*shards, "data.view.size=16"), tmp_path / "run", loss_choice="ntxent")
    assert "linear_top1" not in results["metrics"] and "lidar_backbone" in results["metrics"]
    assert "| pretrained | – | – |" in capsys.readouterr().out
    assert results["neighbours"] == "neighbours.png" and (tmp_path / "run" / "neighbours.png").is_file()


def test_in_memory_sets_round_trip_pixel_exact(digit_shards: Path) -> None:
    ref = digits_splits()
    splits = shard_splits(str(digit_shards), image_size=8, channels=1)
    assert splits.num_classes == ref.num_classes and splits.train.num_images == len(ref.train)
    for mine, theirs in ((splits.probe_train, ref.train), (splits.test, ref.test)):
        assert len(mine) == len(theirs)
        for i in range(len(theirs)):
            a, b = mine[i], theirs[i]
            assert torch.equal(a[0], b[0]) and int(a[1]) == int(b[1]) and a[2] == b[2]


def test_crops_are_drawn_on_the_full_image_and_the_rest_runs_batched() -> None:
    image = torch.arange(3 * 40 * 60, dtype=torch.int64).remainder(251).to(torch.uint8).view(3, 40, 60)
    crops = SampleCrops([([((0.5, 1.0), (0.75, 1.33))] * 2, 16), ([((0.05, 0.2), (1.0, 1.0))] * 3, 8)])(image)
    assert [tuple(c.shape) for c in crops] == [(2, 3, 16, 16), (3, 3, 8, 8)] and crops[0].dtype == torch.uint8
    # the whole image as the crop, at its own size: the crop is the image itself
    whole = SampleCrops([([((1.0, 1.0), (1.0, 1.0))], 40)])
    square = image[:, :, :40].contiguous()
    assert torch.equal(whole(square)[0][0], square)
    # ViewMaker: crops in, the rest of the recipe on the batch (no jitter etc. here: flip only)
    vm = ViewMaker(views=2, size=16, flip_p=0.0, jitter_p=0.0, grayscale_p=0.0, mean=[0.5] * 3, std=[0.5] * 3)
    tf = vm.full_resolution_transform()
    batch = [torch.stack(g) for g in zip(*[tf(image), tf(image.flip(-1))], strict=True)]  # (B=2, V, C, S, S)
    views = vm(batch)
    assert views.count == 2 and [tuple(g.shape) for g in views.groups] == [(4, 3, 16, 16)]
    expected = torch.cat([batch[0][:, v] for v in range(2)]).float() / 255  # view-major
    torch.testing.assert_close(views.groups[0], (expected - 0.5) / 0.5)
    with pytest.raises(TypeError, match="expected crops"):
        vm([batch[0][:, :1]])


def _ddp_worker(rank: int, port: int, root: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        train = shard_splits(root, image_size=8, channels=1, seed=3).train
        loader = train.loader(batch_size=16, num_workers=2, drop_last=False)
        epochs = [[[int(i) for i in batch[2]] for batch in loader] for _ in range(2)]
        Path(out, f"rank{rank}.json").write_text(json.dumps(epochs))
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_ddp_ranks_and_workers_see_disjoint_samples_covering_the_set_each_epoch(
    digit_shards: Path, tmp_path: Path
) -> None:
    start_ranks(_ddp_worker, (free_port(), str(digit_shards), str(tmp_path)), 2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    n = 1347
    for epoch in range(2):
        # Every batch kept: each image on exactly one rank (and one of its two workers) per epoch.
        a, b = ([i for batch in r[epoch] for i in batch] for r in ranks)
        assert len(set(a)) == len(a) and len(set(b)) == len(b) and not set(a) & set(b)
        assert sorted(a + b) == list(range(n))
        # Training (drop_last=True) drops each worker's incomplete last batch, the only batches
        # shorter than 16 here: what is left gives both ranks as many steps (DDP needs that) and
        # loses fewer than ranks x workers x batch images.
        full = [[batch for batch in r[epoch] if len(batch) == 16] for r in ranks]
        assert sum(len(batch) < 16 for batch in ranks[0][epoch]) <= 2  # at most one per worker
        assert len(full[0]) == len(full[1]) and 16 * (len(full[0]) + len(full[1])) > n - 2 * 2 * 16
    assert ranks[0][0] != ranks[0][1]  # reshuffled each epoch


RECORDER = textwrap.dedent(
    """
    import json
    from hydra.experimental.callback import Callback

    class RecordOrder(Callback):
        '''Test instrument: appends (step, indices) of every training batch to `path`.'''

        def __init__(self, path):
            self.path = path

        def on_job_start(self, config, **kwargs):
            from selfsup.methods.base import Method

            step, path = Method.training_step, self.path

            def training_step(module, batch, batch_idx):
                with open(path, "a") as f:
                    f.write(json.dumps([module.global_step, batch[2].tolist()]) + "\\n")
                return step(module, batch, batch_idx)

            Method.training_step = training_step
    """
)


# The two training loaders that save their position: the shard stream, and the device-resident set.
LOADERS = {
    "shards": lambda shards: ["data=shards", f"data.path={shards}", *DIGITS, "data.num_workers=2"],
    "on_device": lambda shards: ["data=digits", "data.on_device=true"],
}


def _train(run_dir: Path, data: list[str], log: Path, *kill: str) -> list[str]:
    return [
        sys.executable, "train.py", *TINY, *data, "data.batch_size=64", "trainer.limit_train_batches=1.0",
        "trainer.max_epochs=2", "checkpoint_every_n_steps=1", "eval.metrics.enabled=false",
        "eval.online_probe=false", f"hydra.run.dir={run_dir}",
        "+hydra.callbacks.record._target_=shard_order_recorder.RecordOrder", f"+hydra.callbacks.record.path={log}",
        *kill,
    ]  # fmt: skip


def _reference_order(kind: str, shards: Path) -> tuple[list[list[int]], int]:
    """The order of the uninterrupted run: the same loader, iterated for two epochs."""
    from selfsup.build import build_datamodule
    from tests.conftest import compose_cfg

    if kind == "shards":
        loader: Any = shard_splits(str(shards), image_size=8, channels=1, seed=0).train.loader(64, 2, True)
    else:
        loader = build_datamodule(compose_cfg([*LOADERS[kind](shards), "data.batch_size=64"])).device_batches("cpu")
    return [[int(i) for i in batch[2]] for _ in range(2) for batch in loader], len(loader)


def _steps(log: Path) -> list[tuple[int, list[int]]]:
    return [tuple(json.loads(line)) for line in log.read_text().splitlines()]  # type: ignore[misc]


@pytest.mark.parametrize("kind", list(LOADERS))
def test_a_run_sigkilled_mid_epoch_resumes_the_same_order(kind: str, digit_shards: Path, tmp_path: Path) -> None:
    (tmp_path / "shard_order_recorder.py").write_text(RECORDER)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "OMP_NUM_THREADS": "1"}
    run_dir, log, data = tmp_path / "run", tmp_path / "order.jsonl", LOADERS[kind](digit_shards)
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    killed_run = run_python(_train(run_dir, data, log, *kill_at(5)), cwd=ROOT, env=env, capture_output=True, text=True)
    assert killed_run.returncode == -signal.SIGKILL, killed_run.stderr[-3000:]
    at_kill = torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"]
    killed = [s for s in _steps(log) if s[0] < at_kill]  # what ran after the checkpoint is lost, and redone
    assert 0 < at_kill < 1347 // 64 - 1, f"killed at step {at_kill}: not mid-way through the first epoch"
    log.unlink()
    done = run_python(_train(run_dir, data, log), cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming from" in done.stdout
    resumed = _steps(log)
    assert resumed[0][0] == at_kill

    reference, per_epoch = _reference_order(kind, digit_shards)
    assert len(reference) == 2 * per_epoch and all(len(ids) == 64 for ids in reference)
    assert [ids for _, ids in killed + resumed] == reference
    assert [s for s, _ in killed + resumed] == list(range(len(reference)))
    for epoch in range(2):
        seen = [i for ids in reference[epoch * per_epoch : (epoch + 1) * per_epoch] for i in ids]
        assert len(seen) == len(set(seen))  # nothing twice within an epoch


STREAM_UNDER_A_CAP = textwrap.dedent(
    """
    import resource, sys
    import torch
    torch.set_num_threads(1)
    from selfsup.augment.views import ViewMaker
    from selfsup.data.shards import shard_splits

    root, headroom = sys.argv[1], int(sys.argv[2])
    train = shard_splits(root, image_size=64, channels=3).train
    train.sample_transform = ViewMaker(size=32).full_resolution_transform()
    next(iter(train.loader(batch_size=8, num_workers=0, drop_last=False)))  # libraries loaded on first use
    loader = train.loader(batch_size=8, num_workers=0, drop_last=False)
    def vm_bytes():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * resource.getpagesize()
    cap = vm_bytes() + headroom
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    seen = sum(len(b[2]) for b in loader)
    try:
        hoard = bytearray(int(sys.argv[3]))  # the whole data set in memory would not fit
        print("fits", seen)
    except MemoryError:
        print("streamed", seen)
    """
)


def test_memory_stays_flat_streaming_a_set_larger_than_the_memory_cap(tmp_path: Path) -> None:
    src = tmp_path / "big"
    rng = np.random.default_rng(0)
    count = 160
    for split in ("train", "val"):
        (src / split / "noise").mkdir(parents=True)
    for i in range(count):  # ~0.75 MB each as uncompressed PNG: 120 MB of image files
        Image.fromarray(rng.integers(0, 255, (512, 512, 3), dtype=np.uint8)).save(
            src / "train" / "noise" / f"{i}.png", compress_level=0
        )
    Image.new("RGB", (8, 8)).save(src / "val" / "noise" / "0.png")
    assert make_shards.main([str(src), str(tmp_path / "shards"), "--chunk-mb", "4"]) == 0
    size = sum(p.stat().st_size for p in (tmp_path / "shards" / "train").glob("*.bin"))
    headroom = 80 * 2**20
    assert size > 1.4 * headroom
    script = tmp_path / "cap.py"
    script.write_text(STREAM_UNDER_A_CAP)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MALLOC_ARENA_MAX": "1", "OMP_NUM_THREADS": "1"}
    p = run_python(
        [sys.executable, str(script), str(tmp_path / "shards"), str(headroom), str(size)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.split() == ["streamed", str(count)]


@pytest.mark.parametrize(
    "batch,world_size,refused",
    [(1347, None, None), (1348, None, "1347 images, fewer than one batch"), (673, "2", None), (674, "2", "673 per")],
)
def test_a_stream_smaller_than_a_batch_is_refused(
    digit_shards: Path, monkeypatch: pytest.MonkeyPatch, batch: int, world_size: str | None, refused: str | None
) -> None:
    """The shard stream drops the last incomplete batch, whatever the set's size: a process whose
    share of the 1,347 training digits is under one batch would have no step."""
    from selfsup.build import build_datamodule, check_epoch_has_a_step
    from selfsup.errors import ConfigError
    from tests.conftest import compose_cfg

    if world_size is not None:
        monkeypatch.setenv("WORLD_SIZE", world_size)
    cfg = compose_cfg(["data=shards", f"data.path={digit_shards}", *DIGITS, f"data.batch_size={batch}"])
    dm = build_datamodule(cfg)
    dm.setup()
    if refused is None:
        check_epoch_has_a_step(cfg, dm)
    else:
        with pytest.raises(
            ConfigError, match=f"^data.batch_size={batch}: the training set of data=shards has .*{refused}"
        ):
            check_epoch_has_a_step(cfg, dm)


def test_bad_shard_roots_are_one_line_errors(tmp_path: Path, digit_shards: Path) -> None:
    with pytest.raises(MissingFileError, match=r"data.path=.*no selfsup_shards.json.*make_shards.py"):
        shard_splits(str(tmp_path), image_size=8, channels=1)
    with pytest.raises(DataError, match=r"data.channels=3.*hold 1-channel images; set data.channels=1"):
        shard_splits(str(digit_shards), image_size=8, channels=3)
    with pytest.raises(DataError, match="cannot be read"):
        decode_full(b"not an image", ImageFormat(3), "x.jpg")
    assert resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY  # the cap stayed in its process


def test_a_damaged_shard_file_is_named_with_the_command_that_rebuilds_it(tmp_path: Path, digit_shards: Path) -> None:
    """A truncated chunk, a chunk with flipped bytes (data.verify=true) and a damaged
    selfsup_shards.json: each one line naming the file, before anything trains."""
    import shutil

    root = tmp_path / "shards"
    shutil.copytree(digit_shards, root)
    meta = json.loads((root / META).read_text())
    chunk = next(root / rel for rel in meta["files"] if rel.endswith(".bin"))
    data = chunk.read_bytes()
    shard_splits(str(root), image_size=8, channels=1, verify=True)  # intact: opens
    chunk.write_bytes(data[:-10])
    with pytest.raises(DataError, match=rf"shard file {chunk} is damaged \(\d+ bytes, \d+ were written\); rebuild"):
        shard_splits(str(root), image_size=8, channels=1)
    chunk.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    shard_splits(str(root), image_size=8, channels=1)  # the size is right: only the checksum sees it
    with pytest.raises(DataError, match=rf"shard file {chunk} is damaged \(its sha256 .*make_shards.py data=digits"):
        shard_splits(str(root), image_size=8, channels=1, verify=True)
    chunk.unlink()
    with pytest.raises(DataError, match=rf"shard file {chunk} is missing"):
        shard_splits(str(root), image_size=8, channels=1)
    (root / META).write_text('{"format": 2, "classes"')
    with pytest.raises(DataError, match=rf"{root / META} is damaged \(.*--force$"):
        shard_splits(str(root), image_size=8, channels=1)
