"""data.on_device=true: DeviceBatches serve what the DataLoader serves, in a seeded order per epoch,
split between ranks, and resume where they stopped; through a whole run too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import ConcatDataset

from selfsup.data import ImageDataModule, ImageSplits, TensorImageDataset
from selfsup.data.device_batches import DeviceBatches, resident_tensors
from selfsup.data.digits import digits_splits
from selfsup.data.folder import folder_splits
from selfsup.errors import ConfigError
from selfsup.pipeline import run
from tests import fake_data
from tests.conftest import TINY, compose_cfg, free_port, start_ranks


def _tiny(n: int, offset: int = 0) -> TensorImageDataset:
    images = torch.arange(n * 3 * 2 * 2).reshape(n, 3, 2, 2).remainder(251).to(torch.uint8)
    images[:, 0, 0, 0] = torch.arange(n).to(torch.uint8)  # each image tells which one it is
    return TensorImageDataset(images, torch.arange(n) % 7, index_offset=offset)


def _batches(ds: TensorImageDataset, **kwargs) -> DeviceBatches:  # type: ignore[no-untyped-def]
    return DeviceBatches(*resident_tensors(ds), **kwargs)


def _epoch(b: DeviceBatches) -> torch.Tensor:
    return torch.cat([i for _, _, i in b])


def test_an_epoch_serves_every_image_once_with_its_label_and_index() -> None:
    ds = digits_splits().train
    b = _batches(ds, batch_size=100, drop_last=False, seed=0)
    seen = []
    for x, y, i in b:
        assert x.dtype == torch.uint8 and x.shape[1:] == (1, 8, 8) and y.dtype == i.dtype == torch.long
        assert torch.equal(x, ds.images[i]) and torch.equal(y, ds.labels[i])
        seen.append(i)
    assert len(seen) == len(b) == 14 and [len(s) for s in seen] == [100] * 13 + [47]
    assert torch.equal(torch.cat(seen).sort().values, torch.arange(len(ds)))


@pytest.mark.parametrize("n,batch,drop", [(100, 32, True), (100, 32, False), (20, 32, True), (64, 32, True)])
def test_shapes_and_count_are_the_dataloaders(n: int, batch: int, drop: bool) -> None:
    """Batch size, batch count and the "fewer images than a batch" rule of train_dataloader."""
    splits = ImageSplits(_tiny(n), _tiny(4), num_classes=7)
    loader = ImageDataModule(lambda: splits, batch_size=batch, drop_last=drop).train_dataloader()
    batches = ImageDataModule(lambda: splits, batch_size=batch, drop_last=drop, on_device=True).train_dataloader()
    assert isinstance(batches, DeviceBatches) and batches.images.device.type == "cpu"
    assert len(batches) == len(loader)
    assert [x.shape for x, _, _ in batches] == [x.shape for x, _, _ in loader]
    ref = next(iter(loader))
    got = next(iter(batches))
    assert [(t.dtype, t.shape) for t in got] == [(t.dtype, t.shape) for t in ref]


def test_stl10s_train_and_unlabelled_concatenation_keeps_its_indices() -> None:
    train, unlabelled = _tiny(10), _tiny(30, offset=10)
    unlabelled.labels[:] = -1
    images, labels, indices = resident_tensors(ConcatDataset([train, unlabelled]))
    assert torch.equal(indices, torch.arange(40)) and (labels[10:] == -1).all()
    assert torch.equal(images[25], unlabelled.images[15])


def test_the_order_is_the_seeds_and_the_epochs() -> None:
    ds = _tiny(50)
    first = [_epoch(_batches(ds, batch_size=8, seed=s)) for s in (0, 0, 1)]
    assert torch.equal(first[0], first[1]) and not torch.equal(first[0], first[2])
    b = _batches(ds, batch_size=8, seed=0)
    epochs = [_epoch(b) for _ in range(3)]  # an epoch iterated to its end moves to the next one
    assert b.epoch == 3 and torch.equal(epochs[0], first[0])
    assert not torch.equal(epochs[0], epochs[1]) and not torch.equal(epochs[1], epochs[2])
    b.set_epoch(1)  # what Lightning does at each epoch start
    assert torch.equal(_epoch(b), epochs[1])


def test_ranks_take_disjoint_equal_shares_of_each_epoch() -> None:
    ds = _tiny(50)
    shares = [_batches(ds, batch_size=5, drop_last=False, seed=5, rank=r, world_size=3) for r in range(3)]
    assert {len(s) for s in shares} == {
        4
    }  # 16 images each: 5, 5, 5, 1 (2 dropped), as DistributedSampler(drop_last=True)
    for epoch in (0, 1):
        for s in shares:
            s.set_epoch(epoch)
        got = [_epoch(s) for s in shares]
        assert [len(g) for g in got] == [16] * 3
        everything = torch.cat(got)
        assert len(everything.unique()) == 48
        # The three shares interleave one permutation: the seed and epoch's, as on one process.
        whole = torch.randperm(50, generator=torch.Generator().manual_seed(5 + epoch))[:48]
        assert torch.equal(torch.stack(got, 1).flatten(), whole)


def test_a_state_saved_mid_epoch_continues_the_order() -> None:
    ds = _tiny(50)
    ref = _batches(ds, batch_size=8, seed=2)
    ref.set_epoch(4)
    want = [i for _, _, i in ref]
    b = _batches(ds, batch_size=8, seed=2)
    b.set_epoch(4)
    it = iter(b)
    got = [next(it)[2] for _ in range(2)]
    state = b.state_dict()
    assert state == {"epoch": 4, "position": 2}
    resumed = _batches(ds, batch_size=8, seed=2)
    resumed.load_state_dict(state)
    resumed.set_epoch(4)  # Lightning sets the epoch it resumes in: the same one, so no restart
    got += [i for _, _, i in resumed]
    assert len(got) == len(want) == 6
    assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))
    # Resuming after the epoch ended (Lightning sets the next one) starts that one from its start.
    after = _batches(ds, batch_size=8, seed=2)
    after.load_state_dict({"epoch": 4, "position": 2})
    after.set_epoch(5)
    ref.set_epoch(5)
    assert torch.equal(_epoch(after), _epoch(ref))


def test_files_and_per_sample_transforms_are_refused(tmp_path: Path) -> None:
    splits = folder_splits(str(fake_data.make_image_folder(tmp_path, n=3, size=8)), image_size=8)
    with pytest.raises(ConfigError, match=r"^data\.on_device=true needs a training set held in memory"):
        ImageDataModule(lambda: splits, on_device=True).setup()
    with pytest.raises(ConfigError, match=r"^data\.on_device=true .* augment\.backend=torchvision"):
        ImageDataModule(digits_splits, on_device=True, train_transform=lambda x: x)


def _rank_epoch(rank: int, world: int, port: int, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        b = ImageDataModule(digits_splits, batch_size=64, on_device=True, seed=0).train_dataloader()
        assert isinstance(b, DeviceBatches)
        torch.save({"len": len(b), "indices": _epoch(b)}, f"{out}/{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.distributed
def test_two_gloo_processes_split_each_epoch(tmp_path: Path) -> None:
    start_ranks(_rank_epoch, (2, free_port(), str(tmp_path)), 2)
    got = [torch.load(tmp_path / f"{r}.pt") for r in range(2)]
    assert got[0]["len"] == got[1]["len"] == 10  # 673 images per rank: 10 whole batches of 64
    a, b = (g["indices"] for g in got)
    assert len(a) == len(b) == 640 and not set(a.tolist()) & set(b.tolist())


def _results(run_dir: Path) -> tuple[dict, dict]:  # type: ignore[type-arg]
    results = json.loads((run_dir / "results.json").read_text())
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return results, ckpt


def _loader_state(ckpt: dict) -> list[dict]:  # type: ignore[type-arg]
    return ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"]


def _run(run_dir: Path) -> None:
    args = [*TINY, "data.on_device=true", "trainer.max_epochs=2", "eval.baselines=[]"]
    run(compose_cfg(args, run_dir=run_dir), run_dir, loss_choice="ntxent")


def test_runs_are_repeatable_and_resume_to_the_uninterrupted_run(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    one, two, cut = tmp_path / "one", tmp_path / "two", tmp_path / "cut"
    for d in (one, two):
        _run(d)
    (want, want_ckpt), (again, again_ckpt) = _results(one), _results(two)
    assert _loader_state(want_ckpt) == [{"epoch": 1, "position": 2}]  # Lightning set each epoch; TINY: 2 batches
    assert again["metrics"] == want["metrics"]
    for key, value in want_ckpt["state_dict"].items():
        assert torch.equal(again_ckpt["state_dict"][key], value), key

    original = DeviceBatches.order

    def killed_in_epoch_1(self: DeviceBatches, epoch: int) -> torch.Tensor:
        if epoch == 1:
            raise RuntimeError("killed")
        return original(self, epoch)

    monkeypatch.setattr(DeviceBatches, "order", killed_in_epoch_1)
    with pytest.raises(RuntimeError, match="killed"):
        _run(cut)
    monkeypatch.undo()
    at_kill = torch.load(cut / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert at_kill["epoch"] == 0 and _loader_state(at_kill) == [{"epoch": 0, "position": 2}]
    _run(cut)  # resume=auto
    got, got_ckpt = _results(cut)
    assert got["steps"] == want["steps"] == 4
    for key, value in want["metrics"].items():
        assert got["metrics"][key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    for key, value in want_ckpt["state_dict"].items():
        torch.testing.assert_close(got_ckpt["state_dict"][key], value, rtol=1e-5, atol=1e-6, msg=key)
