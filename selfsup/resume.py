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
import shutil
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from selfsup.dist import rank, world_size
from selfsup.errors import CheckpointError, ConfigError, LossNotFinite, MissingFileError, writing

LAST = "last.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to ``.NAME.tmp``, fsync, read back, then ``os.replace``: a checkpoint is whole
    or absent, and the one it replaces stays beside it as ``NAME.previous.ckpt`` (a hard link, no
    copy) until the next save, for :func:`resume_checkpoint` to fall back on."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            with writing(path), open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            _read_entries(tmp)  # read back before it replaces anything: a bad write raises here
            if path.is_file() and _unreadable(path) is None:  # a damaged one never displaces a good previous
                _keep_as_previous(path)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)  # the renames themselves reach the disk
        finally:
            os.close(fd)


def remove_partial_checkpoints(folder: Path) -> None:
    """Delete the temporaries a killed :class:`AtomicCheckpointIO` save left in ``folder``
    (``.NAME.tmp``, ``.NAME.previous.tmp``); the checkpoints themselves are never touched."""
    if folder.is_dir():
        for tmp in folder.glob(".*.ckpt*.tmp"):
            tmp.unlink(missing_ok=True)


def previous_checkpoint(path: Path) -> Path:
    """Where :class:`AtomicCheckpointIO` keeps the checkpoint that ``path`` replaced."""
    return path.with_name(f"{path.stem}.previous{path.suffix}")


def _keep_as_previous(path: Path) -> None:
    prev, tmp = previous_checkpoint(path), path.with_name(f".{path.name}.previous.tmp")
    if prev.is_file() and os.path.samefile(path, prev):
        # A save killed just after keeping it: prev already is this file. (os.replace between two
        # names of one file does nothing, which would leave tmp behind.)
        return
    tmp.unlink(missing_ok=True)
    try:
        os.link(path, tmp)  # the same file under a second name: path itself is never absent
    except OSError:  # a file system without hard links
        shutil.copyfile(path, tmp)
    os.replace(tmp, prev)


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

    Each candidate is read (its small entries, memory-mapped) before it is chosen. Under ``auto``,
    an unreadable ``last.ckpt`` (truncated, say, by a full disk) falls back, with a warning naming
    both files, to the checkpoint it replaced (``last.previous.ckpt``).

    Raises:
        FileNotFoundError: ``resume`` names a file that does not exist.
        CheckpointError: no readable checkpoint where one exists or was named.
    """
    if resume == "never":
        return None
    if resume == "auto":
        last = run_dir / "checkpoints" / LAST
        if not last.is_file():
            return None
        reason = _unreadable(last)
        if reason is None:
            return last
        prev = previous_checkpoint(last)
        if prev.is_file() and _unreadable(prev) is None:
            warnings.warn(
                f"{last} is unreadable ({reason}); resuming from the checkpoint before it, {prev}",
                stacklevel=2,
            )
            return prev
        raise CheckpointError(
            f"{last} is unreadable ({reason}) and there is no readable checkpoint before it: "
            "resume=never starts the run over"
        )
    path = Path(resume)
    if not path.is_file():
        raise MissingFileError(f"resume={resume}: no such checkpoint (expected auto, never or a .ckpt path)")
    reason = _unreadable(path)
    if reason is not None:
        raise CheckpointError(f"resume={resume}: unreadable checkpoint ({reason})")
    return path


def check_checkpoint_fits(module: torch.nn.Module, ckpt: Path) -> None:
    """Refuse, before anything is written, a checkpoint whose weights the config's model cannot
    load (another ``head.out_dim``, backbone or method), as Lightning would once training started.

    State with one row per training image (NPID's bank, iSogCLR's temperatures) is sized from the
    data when fitting starts (``Method.setup``), so its row count is not compared here.

    Raises:
        CheckpointError: naming the first entry that is missing, extra or of another shape.
    """
    saved = _read_entries(ckpt).get("state_dict", {})
    own = module.state_dict()
    per_sample = tuple(f"{name}." for name, m in module.named_modules() if name and hasattr(m, "resize_per_sample"))
    for key in sorted(own.keys() | saved.keys()):
        if key.startswith(per_sample):
            continue
        if key not in saved:
            problem = f"{key} is not in the checkpoint"
        elif key not in own:
            problem = f"the checkpoint's {key} is not in this config's model"
        elif tuple(saved[key].shape) != tuple(own[key].shape):
            problem = f"{key} is {tuple(saved[key].shape)} there, {tuple(own[key].shape)} in this config's model"
        else:
            continue
        raise CheckpointError(
            f"{ckpt} holds another model than this config ({problem}): resume=never starts the run over, "
            "or give the config it was trained with"
        )


def _unreadable(path: Path) -> str | None:
    """Why ``path`` cannot be resumed from, or None when its entries read back."""
    try:
        checkpoint_step(path)
    except Exception as e:  # noqa: BLE001 - whatever torch.load raises on a damaged file
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'empty'}"
    return None


def checkpoint_step(path: Path) -> int:
    """The global step a checkpoint was saved at.

    Memory-mapped: only the small entries are read, not the weights (Lightning loads those).
    """
    return int(_read_entries(path)["global_step"])


def _read_entries(path: Path) -> dict[str, Any]:
    # weights_only=False: the run's own checkpoints carry the numpy/python RNG states.
    return torch.load(path, map_location="cpu", weights_only=False, mmap=True)  # type: ignore[no-any-return]


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
            raise LossNotFinite(
                f"train/loss is {value if bad else 'not finite on another rank'} at {where}: "
                "stopped. The last checkpoint before it is untouched (resume=auto continues from it); "
                "a lower optim.optimizer.lr, gradient clipping (trainer.gradient_clip_val) or 32-bit "
                "precision are the usual remedies"
            )


def check_mid_epoch_resume(every_n_steps: int | None, dm: Any) -> None:
    """``checkpoint_every_n_steps`` needs a training loader that saves its position (a
    ``state_dict``, which Lightning stores in the checkpoint); one that cannot would repeat the
    epoch's first batches after a resume, so it is refused before the run starts."""
    if not every_n_steps:
        return
    loader = dm.train_dataloader()
    if not (hasattr(loader, "state_dict") and hasattr(loader, "load_state_dict")):
        raise ConfigError(
            f"checkpoint_every_n_steps={every_n_steps}: the training loader of this data option cannot resume "
            "mid-epoch (it would repeat the epoch's first batches); use data=shards or data.on_device=true, or "
            "checkpoint_every_n_steps=null (last.ckpt after every epoch)"
        )


def mid_epoch_checkpoints(every_n_steps: int | None, dirpath: Path) -> list[ModelCheckpoint]:
    """``last.ckpt`` every ``every_n_steps`` optimiser steps too (none when None); the per-epoch
    one is the pipeline's. Both write the same file through :class:`AtomicCheckpointIO`."""
    if not every_n_steps:
        return []
    return [
        ModelCheckpoint(
            dirpath=dirpath,
            filename=Path(LAST).stem,
            every_n_train_steps=every_n_steps,
            save_top_k=1,
            enable_version_counter=False,
        )
    ]
