"""Kill-safe checkpoints: a SIGKILLed run resumes to the uninterrupted result; NaN stops cleanly."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import sys
from pathlib import Path

import pytest
import torch

import selfsup.resume as resume_mod
from selfsup import registry
from selfsup.losses import NTXent
from selfsup.pipeline import run
from selfsup.resume import AtomicCheckpointIO, CheckpointError, previous_checkpoint, resume_checkpoint
from selfsup.run_dir import FAILED
from tests.conftest import ROOT, THREADS, TINY, run_python, stand_ins
from tests.kill_at_step import kill_at
from tests.test_train_options import run_dir_bytes

ARGS = [*TINY, "data.batch_size=16", "trainer.max_epochs=2", "trainer.limit_train_batches=3"]
EPOCHS, KILL_AT = 2, 4  # killed at the start of epoch 1's second step (3 an epoch), after epoch 0's checkpoint
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(THREADS)}
# Every method (selfsup.registry) with its default loss, and every loss that keeps per-image state
# with the first method that takes it: what each adds to a checkpoint (a momentum teacher, a queue,
# a memory bank, per-image temperatures) must come back exactly, with the weights, optimiser,
# schedule, RNG and data order every run has.
RUNS = {m: [f"method={m}", *stand_ins(m)] for m in registry.methods()} | {
    f"{registry.methods_accepting(loss)[0]}-{loss}": [f"method={registry.methods_accepting(loss)[0]}", f"loss={loss}"]
    for loss in registry.losses()
    if registry.forward_takes(registry.loss_class(loss), "index")
}


def _cmd(run_dir: Path, overrides: list[str]) -> list[str]:
    return [sys.executable, "train.py", *ARGS, *overrides, f"hydra.run.dir={run_dir}"]


def assert_resumes_to_the_uninterrupted_result(tmp_path: Path, overrides: list[str]) -> None:
    """``python train.py OVERRIDES`` (2 epochs of 3 steps) SIGKILLed in epoch 1 and started again
    ends as the uninterrupted run: the same metrics, steps and the whole final state. A method's
    test calls it for state its default config leaves off (SwAV's queue)."""
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    p = run_python(_cmd(ref, overrides), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]

    p = run_python([*_cmd(killed, overrides), *kill_at(KILL_AT)], cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert p.returncode == -signal.SIGKILL, p.stderr[-3000:]
    ckpt = killed / "checkpoints" / "last.ckpt"
    assert not (killed / "results.json").exists(), "the run finished before the kill; the test proves nothing"
    at_kill = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert at_kill["epoch"] < EPOCHS - 1
    seconds_before = at_kill["callbacks"]["Timer"]["time_elapsed"]["train"]

    p = run_python(_cmd(killed, overrides), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"resuming from {ckpt}" in p.stdout
    want = json.loads((ref / "results.json").read_text())
    got = json.loads((killed / "results.json").read_text())
    assert got["steps"] == want["steps"] and got["epochs"] == want["epochs"]
    # The time of the epochs before the kill counts too, not only the resumed part.
    assert got["pretrain_seconds"] > seconds_before > 0
    for key, value in want["metrics"].items():
        assert got["metrics"][key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    # The whole final state, a method's own (queue and pointer, EMA teacher) included.
    final = [
        torch.load(d / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
        for d in (ref, killed)
    ]
    assert final[0].keys() == final[1].keys()
    for key, value in final[0].items():
        torch.testing.assert_close(final[1][key], value, rtol=1e-5, atol=1e-6, msg=key)

    # metrics.csv holds every epoch once: the rows before the checkpoint kept, the rest logged anew.
    with open(killed / "metrics.csv") as f:
        logged = [r["epoch"] for r in csv.DictReader(f) if r.get("train/loss_epoch")]
    assert logged == [str(e) for e in range(EPOCHS)], logged


@pytest.mark.parametrize("method", list(RUNS))
def test_sigkilled_run_resumes_to_the_uninterrupted_result(tmp_path: Path, method: str) -> None:
    assert_resumes_to_the_uninterrupted_result(tmp_path, RUNS[method])


def test_a_kill_during_the_write_leaves_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"global_step": 1, "w": torch.ones(3)}, path)

    def dies_half_way(obj, f):  # type: ignore[no-untyped-def]
        f.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # what a kill looks like from inside the write

    monkeypatch.setattr(resume_mod.torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"global_step": 2, "w": torch.zeros(3)}, path)
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 1 and torch.equal(ckpt["w"], torch.ones(3))
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]


def test_a_save_keeps_the_checkpoint_it_replaces(tmp_path: Path) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    for step in (1, 2, 3):
        io.save_checkpoint({"global_step": step, "w": torch.full((3,), float(step))}, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt", "last.previous.ckpt"]
    assert torch.load(path, weights_only=False)["global_step"] == 3
    prev = torch.load(previous_checkpoint(path), weights_only=False)
    assert prev["global_step"] == 2 and torch.equal(prev["w"], torch.full((3,), 2.0))


def test_a_write_that_does_not_read_back_replaces_nothing(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"global_step": 1}, path)
    io.save_checkpoint({"global_step": 2}, path)

    def writes_garbage(obj, f):  # type: ignore[no-untyped-def]
        f.write(b"not a checkpoint")  # a write that "succeeds" but is damaged (a full disk, say)

    monkeypatch.setattr(resume_mod.torch, "save", writes_garbage)
    with pytest.raises(Exception):  # noqa: B017 - whatever torch.load raises on it
        io.save_checkpoint({"global_step": 3}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=False)["global_step"] == 2
    assert torch.load(previous_checkpoint(path), weights_only=False)["global_step"] == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt", "last.previous.ckpt"]


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_truncated_last_checkpoint_resumes_from_the_one_before(composed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run_dir = tmp_path / "run"
    ckpts = run_dir / "checkpoints"
    run(composed("trainer.max_epochs=2"), run_dir, loss_choice="ntxent")
    assert torch.load(previous_checkpoint(ckpts / "last.ckpt"), weights_only=False)["epoch"] == 0
    (run_dir / "results.json").unlink()  # killed after its last checkpoint, before the end
    _truncate(ckpts / "last.ckpt")
    fallback = r"last\.ckpt is unreadable .*resuming from the checkpoint before it, .*last\.previous\.ckpt"
    with pytest.warns(UserWarning, match=fallback):
        results = run(composed("trainer.max_epochs=2"), run_dir, loss_choice="ntxent")
    assert results["epochs"] == 2 and results["steps"] == 4  # epoch 1 trained again from epoch 0's end
    assert torch.load(ckpts / "last.ckpt", weights_only=False)["epoch"] == 1  # whole again
    # The damaged file did not become the fallback: the previous one is still epoch 0's.
    assert torch.load(previous_checkpoint(ckpts / "last.ckpt"), weights_only=False)["epoch"] == 0


def test_no_readable_checkpoint_fails_naming_the_file_and_changes_nothing(composed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run_dir = tmp_path / "run"
    run(composed("trainer.max_epochs=2"), run_dir, loss_choice="ntxent")
    (run_dir / "results.json").rename(run_dir / FAILED)  # an unfinished run (a finished one is not resumed)
    for name in ("last.ckpt", "last.previous.ckpt"):
        _truncate(run_dir / "checkpoints" / name)
    before = run_dir_bytes(run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    message = rf"^{re.escape(str(last))} is unreadable \(.*\) and there is no readable checkpoint before it: "
    with pytest.raises(CheckpointError, match=message + "resume=never starts the run over$"):
        run(composed("trainer.max_epochs=2"), run_dir, loss_choice="ntxent")
    assert run_dir_bytes(run_dir) == before
    with pytest.raises(CheckpointError, match=r"^resume=.*last\.ckpt: unreadable checkpoint \("):
        resume_checkpoint(run_dir, str(last))


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(composed, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls = {"n": 0}
    original = NTXent.forward

    def nan_after_first_epoch(self, z, views=2, mix=None):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        loss = original(self, z, views, mix)
        return loss * float("nan") if calls["n"] > 2 else loss  # TINY: 2 steps per epoch

    monkeypatch.setattr(NTXent, "forward", nan_after_first_epoch)
    cfg = composed("trainer.max_epochs=3")
    run_dir = tmp_path / "run"
    with pytest.raises(FloatingPointError, match=r"train/loss is nan at epoch 1, step 3: stopped"):
        run(cfg, run_dir, loss_choice="ntxent")
    assert (run_dir / FAILED).is_file() and not (run_dir / "results.json").exists()
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 2 and ckpt["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


def test_resume_options(tmp_path: Path) -> None:
    assert resume_checkpoint(tmp_path, "auto") is None
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="last.ckpt is unreadable"):
        resume_checkpoint(tmp_path, "auto")
    torch.save({"global_step": 7}, tmp_path / "checkpoints" / "last.ckpt")
    assert resume_checkpoint(tmp_path, "auto") == tmp_path / "checkpoints" / "last.ckpt"
    assert resume_checkpoint(tmp_path, "never") is None
    with pytest.raises(FileNotFoundError, match="resume=nope.ckpt: no such checkpoint"):
        resume_checkpoint(tmp_path, "nope.ckpt")


def test_rows_after_the_checkpoint_are_dropped_for_relogging(tmp_path: Path) -> None:
    from selfsup.resume import read_metrics

    (tmp_path / "metrics.csv").write_text("epoch,step,train/loss_step\n0,40,1.0\n0,41,0.9\n1,42,0.8\n1,43,0.7\n")
    assert [r["step"] for r in read_metrics(tmp_path, 42)] == ["40", "41"]  # checkpoint after 42 steps
    assert read_metrics(tmp_path / "missing", 42) == []
