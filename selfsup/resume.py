"""Kill-safe checkpoints and resuming: atomic writes, RNG state, the metrics written so far.

A checkpoint is written to a temporary file, flushed to disk and renamed over the old one, so a
kill during the write leaves the previous checkpoint whole. The RNG states travel in the
checkpoint, so a run resumed from the end of epoch e draws the same shuffles and views as the
uninterrupted run did from there on.
"""

from __future__ import annotations

import csv
import math
import os
import random
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.loggers import CSVLogger

from selfsup.dist import rank, world_size

LAST = "last.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to ``.NAME.tmp``, fsync, then ``os.replace``: a checkpoint is whole or absent."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename itself reaches the disk
        finally:
            os.close(fd)


def _rng_states() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_states(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class RNGState(L.Callback):
    """Saves the python, numpy, torch (and CUDA) RNG states in each checkpoint and restores them.

    Under DDP every rank has its own stream (rank r > 0 is reseeded with a hash of ``(seed, r)``
    when fitting starts, not with seed + r, which another run's seed would repeat; rank 0 keeps
    the run's stream), so the ranks draw different views; the checkpoint holds every rank's state and each rank resumes
    its own.

    Args:
        seed: the run's seed; None leaves the ranks' streams as they are.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and self.seed is not None and trainer.global_rank > 0:
            s = int(np.random.SeedSequence([self.seed, trainer.global_rank]).generate_state(1)[0])
            random.seed(s)
            np.random.seed(s)
            torch.manual_seed(s)  # CUDA generators too

    def state_dict(self) -> dict[str, Any]:
        mine = _rng_states()
        if world_size() == 1:
            return {"ranks": [mine]}
        ranks: list[Any] = [None] * world_size()
        dist.all_gather_object(ranks, mine)  # every rank saves (rank 0 writes the file)
        return {"ranks": ranks}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        ranks = state_dict.get("ranks", [state_dict])  # a checkpoint from before per-rank states
        world = world_size()
        if len(ranks) != world:
            warnings.warn(
                f"the checkpoint holds RNG states of {len(ranks)} rank(s), this run has {world}: "
                "the resumed views will differ from an uninterrupted run's",
                stacklevel=2,
            )
        _set_rng_states(ranks[rank() % len(ranks)])


def resume_checkpoint(run_dir: Path, resume: str) -> Path | None:
    """The checkpoint to resume from: ``auto`` the run's last one if any, ``never`` none, else a path.

    Raises:
        FileNotFoundError: ``resume`` names a file that does not exist.
    """
    if resume == "never":
        return None
    if resume == "auto":
        last = run_dir / "checkpoints" / LAST
        return last if last.is_file() else None
    path = Path(resume)
    if not path.is_file():
        raise FileNotFoundError(f"resume={resume}: no such checkpoint (expected auto, never or a .ckpt path)")
    return path


def checkpoint_step(path: Path) -> int:
    """The global step a checkpoint was saved at.

    Memory-mapped: only the small entries are read, not the weights (Lightning loads those).
    """
    return int(torch.load(path, map_location="cpu", weights_only=False, mmap=True)["global_step"])


def read_metrics(run_dir: Path, before_step: int) -> list[dict[str, str]]:
    """Rows of ``metrics.csv`` logged before ``before_step``, the checkpoint's global step.

    Lightning logs a step's metrics at that step's index (0-based) and an epoch's at its last
    step's, so these are exactly the rows of the checkpointed epochs; the rest is logged again.
    """
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("step") and int(float(r["step"])) < before_step]


def restore_metrics(logger: CSVLogger, rows: list[dict[str, str]]) -> None:
    """Put ``rows`` back into the CSV logger's file (its writer empties the file when it starts)."""
    if not rows:
        return
    with warnings.catch_warnings():  # it warns that it deletes the old file; the rows are put back
        warnings.filterwarnings("ignore", message="Experiment logs directory")
        writer = logger.experiment
    keys = sorted(set().union(*rows))
    writer.metrics_keys = keys
    with open(writer.metrics_file_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


class FiniteLoss(L.Callback):
    """Stops the run on a NaN or infinite loss; the last checkpoint (before it) stays as it was."""

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        value = float(loss.detach()) if loss is not None else 0.0
        bad = not math.isfinite(value)
        # Every rank stops together (one raising alone would leave the others waiting on it).
        if trainer.strategy.reduce_boolean_decision(bad, all=False):
            where = f"epoch {trainer.current_epoch}, step {trainer.global_step}"
            raise FloatingPointError(
                f"train/loss is {value if bad else 'not finite on another rank'} at {where}: "
                "stopped. The last checkpoint before it is untouched (resume=auto continues from it); "
                "a lower optim.optimizer.lr, gradient clipping (trainer.gradient_clip_val) or 32-bit "
                "precision are the usual remedies"
            )
