"""One run from a composed config: check, pretrain, evaluate, write the run directory."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, Timer
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from omegaconf import DictConfig

from selfsup.build import (
    build_backbone,
    build_datamodule,
    build_loggers,
    build_metric_callbacks,
    build_module,
    build_trainer,
    build_view_maker,
    check_config,
    check_epoch_has_a_step,
    no_validation_warning,
    save_config,
)
from selfsup.data import stats
from selfsup.data.base import seeded_indices
from selfsup.data.module import ImageDataModule
from selfsup.dist import launcher_rank_zero
from selfsup.errors import ConfigError
from selfsup.eval.collapse import CollapseCheck
from selfsup.eval.final import final_evaluation
from selfsup.eval.layers import split_rows, stage_encoders
from selfsup.eval.neighbours import GALLERY, NEIGHBOURS, QUERIES, write_neighbours
from selfsup.eval.online_probe import OnlineLinearProbe
from selfsup.eval.report import below_baselines, format_table, table_columns
from selfsup.export import EXPORT, export_finished_run, not_exportable
from selfsup.methods.base import Method
from selfsup.owned_dir import recover
from selfsup.plots import CURVES, TEMPERATURES, plot_curves, plot_temperatures
from selfsup.progress import StepProgressBar
from selfsup.rerun import check_run_dir, finished_report
from selfsup.resume import (
    AtomicCheckpointIO,
    FiniteLoss,
    RNGState,
    check_checkpoint_fits,
    check_mid_epoch_resume,
    checkpoint_step,
    mid_epoch_checkpoints,
    read_metrics,
    remove_partial_checkpoints,
    restore_metrics,
    resume_checkpoint,
)
from selfsup.run_dir import (
    RESULTS,
    atomic_write_json,
    git_revision,
    mark_failed,
    remove_if_only_hydra,
    start_attempt,
)
from selfsup.run_lock import hold, release, takes_the_lock

log = logging.getLogger(__name__)


def run(cfg: DictConfig, run_dir: Path, loss_choice: str) -> dict[str, Any]:
    """Pretrain and evaluate; ``results.json`` is written last, so its presence means finished.

    Everything that can be checked is checked before the run directory is touched: the config,
    the run directory (another process in it, a finished run, the config of a run to resume:
    :func:`selfsup.rerun.check_run_dir`), the checkpoint to resume from, the data, the model. A run
    refused there changes no byte of an earlier attempt's files, and removes the directory Hydra
    made for it if nothing else is in it. A finished run of this very config is not run again:
    its results are printed and returned. The run holds the run directory's lock
    (:mod:`selfsup.run_lock`) from the checks to its end; once it starts, an error leaves ``FAILED``.

    Args:
        cfg: the composed config.
        run_dir: the run directory (Hydra's output directory).
        loss_choice: the option chosen in the ``loss`` group (checked against the method).
    """
    lead = launcher_rank_zero()  # the other ranks are the same run: rank 0 decides, and writes
    try:
        check_config(cfg, loss_choice)
        finished, ckpt = check_run_dir(cfg, run_dir) if lead else (None, resume_checkpoint(run_dir, str(cfg.resume)))
        if finished is None and takes_the_lock() and hold(run_dir):
            finished, ckpt = check_run_dir(cfg, run_dir)  # again, now that no other process can write
        if finished is not None:
            release(run_dir)
            print(finished_report(finished, run_dir))
            return finished
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        view_maker = build_view_maker(cfg)
        dm = build_datamodule(cfg, view_maker)
        dm.setup()  # reads the data now: a missing data set fails before anything is written
        check_bit_depth(cfg, dm)
        norm = auto_normalization(cfg, dm, run_dir, ckpt)
        if norm is not None:
            view_maker.set_normalization(norm["mean"], norm["std"])
        check_epoch_has_a_step(cfg, dm)
        check_mid_epoch_resume(cfg.checkpoint_every_n_steps, dm)
        module = build_module(cfg, view_maker)
        stage_encoders(module.eval_encoder, list(cfg.eval.layers))  # eval.layers names stages it has
        for part in module.modules():  # state sized against the data (a MoCo queue): checked against it
            check = getattr(part, "check_train_size", None)
            if callable(check):
                check(dm.train_size())
        if ckpt is not None:
            check_checkpoint_fits(module, ckpt)
        if (why := not_exportable(module.eval_encoder)) is not None:  # said now, not after hours of training
            log.warning("%s: this run trains and is evaluated, but writes no export/", why)
    except BaseException:
        if lead:
            release(run_dir)
            remove_if_only_hydra(run_dir)  # the directory Hydra made for this refused attempt
        raise

    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _run(cfg, run_dir, ckpt, dm, module, norm)
    except BaseException as e:
        if lead:
            mark_failed(run_dir, e)
        raise
    finally:
        release(run_dir)


# What a run that starts over (no checkpoint to resume from: resume=never, or none yet) removes
# of an earlier attempt besides results.json and FAILED, so that none of it passes for the new
# run's: its metrics, its products, and its checkpoints (last.previous.ckpt would otherwise be the
# new run's fallback until its second save).
FRESH = ("metrics.csv", "checkpoints", EXPORT, TEMPERATURES, CURVES, NEIGHBOURS, stats.STATS_FILE)


def auto_normalization(cfg: DictConfig, dm: ImageDataModule, run_dir: Path, ckpt: Path | None) -> dict[str, Any] | None:
    """``data.normalize=auto``'s statistics (:mod:`selfsup.data.stats`): a resumed run's own, else
    measured now; None for ``data.normalize=fixed``."""
    if cfg.data.get("normalize", "fixed") != "auto":
        return None
    if ckpt is not None and (saved := stats.read(run_dir)) is not None:
        return saved
    assert dm.splits is not None
    measured = stats.measure(dm.splits.indexed_train, int(cfg.data.get("bit_depth", 8)))
    fmt = ", ".join
    log.info(
        "data.normalize=auto: per-channel mean [%s], std [%s] (%d training images)",
        fmt(f"{v:.4f}" for v in measured["mean"]),
        fmt(f"{v:.4f}" for v in measured["std"]),
        measured["images"],
    )
    return measured


def check_bit_depth(cfg: DictConfig, dm: ImageDataModule) -> None:
    """Refuse a data set whose images are not of ``data.bit_depth``'s dtype (a built-in 8-bit set
    with ``data.bit_depth=16``), before anything is written."""
    assert dm.splits is not None
    bits = int(cfg.data.get("bit_depth", 8))
    dtype = dm.splits.indexed_train[0][0].dtype
    if dtype != {8: torch.uint8, 16: torch.uint16}[bits]:
        raise ConfigError(f"data.bit_depth={bits}, but data={cfg.data.name} holds {dtype} images; set data.bit_depth=8")


def _run(
    cfg: DictConfig,
    run_dir: Path,
    ckpt: Path | None,
    dm: ImageDataModule,
    module: Method,
    norm: dict[str, Any] | None = None,
) -> dict[str, Any]:
    # Under DDP every process runs this; the run directory is rank 0's to write (the rank comes
    # from the launcher's environment: RANK, LOCAL_RANK or SLURM_PROCID, as Lightning reads it).
    lead = launcher_rank_zero()
    if lead:
        # What a killed attempt left half-written: a checkpoint's temporary, an export's new or old
        # version beside export/ (the complete checkpoints and export/ themselves stay).
        remove_partial_checkpoints(run_dir / "checkpoints")
        recover(run_dir / EXPORT)
        removed = start_attempt(run_dir, FRESH if ckpt is None else ())
        if removed:
            names = ", ".join(removed)
            log.warning(f"resume={cfg.resume}: starting {run_dir} over; removed the earlier attempt's {names}")
    resolved = save_config(cfg, run_dir, write=lead)
    if norm is not None:  # data.normalize=auto: the statistics, beside the config that asked for them
        if lead:
            atomic_write_json(run_dir / stats.STATS_FILE, norm)
        stats.apply(cfg, norm)  # the export records them
    git = git_revision()
    if lead:
        atomic_write_json(run_dir / "git.json", git)
    if ckpt is not None and lead:
        print(f"resuming from {ckpt}")
    skipped = no_validation_warning(cfg)
    if skipped is not None and lead:
        log.warning(skipped)

    clock = Timer(verbose=False)  # pretraining time; its checkpointed state adds the time before a resume
    callbacks: list[L.Callback] = [
        StepProgressBar(),
        # last.ckpt after every epoch, replaced atomically (AtomicCheckpointIO keeps the one before).
        # Not save_last=True with save_top_k=0: Lightning then writes last.ckpt only when training ends.
        ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="last", save_top_k=1, enable_version_counter=False),
        RNGState(cfg.seed),
        clock,
        *mid_epoch_checkpoints(cfg.checkpoint_every_n_steps, run_dir / "checkpoints"),
        FiniteLoss(),
    ]
    if cfg.eval.online_probe and dm.num_classes:  # no labels: nothing to probe
        callbacks.append(OnlineLinearProbe(dm.num_classes, lr=cfg.eval.online_probe_lr))
    metric_cbs = build_metric_callbacks(cfg, dm.num_classes)
    callbacks += metric_cbs
    earlier = read_metrics(run_dir, checkpoint_step(ckpt)) if ckpt is not None else []
    loggers = build_loggers(cfg)
    for lg in loggers:
        if isinstance(lg, CSVLogger) and lead:
            restore_metrics(lg, earlier)  # what was logged up to the checkpoint stays in metrics.csv
        lg.log_hyperparams(resolved)
    trainer = build_trainer(
        cfg,
        logger=loggers,
        callbacks=callbacks,
        default_root_dir=str(run_dir),
        plugins=[AtomicCheckpointIO()],
    )

    # weights_only=False: the run's own checkpoint, which carries the numpy/python RNG states.
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt, weights_only=False)
    pretrain_seconds = clock.time_elapsed("train")

    results: dict[str, Any] = {}
    if trainer.is_global_zero:
        eval_start = time.perf_counter()
        rows = final_evaluation(cfg, module, dm, device=module.device, new_backbone=lambda: build_backbone(cfg))
        eval_seconds = time.perf_counter() - eval_start
        # The final RankMe is of the whole held-out split (the final evaluation's test loader);
        # None: too short a run to judge (eval.collapse.after_epochs).
        check = next(cb for cb in metric_cbs if isinstance(cb, CollapseCheck))
        samples = len(dm.val_dataloader().dataset)  # type: ignore[arg-type]
        collapse = check.judge(rows["pretrained"], samples, module, trainer, trainer.current_epoch)
        warnings = collapse or []
        layers, baselines = split_rows(rows)
        for w in warnings:
            log.warning(w)
        results = {
            "choices": dict(resolved.get("choices", {})),
            "seed": cfg.seed,
            "epochs": trainer.current_epoch,
            "steps": trainer.global_step,
            "world_size": trainer.world_size,  # processes (devices x nodes); data.batch_size is per process
            "pretrain_seconds": round(pretrain_seconds, 2),
            # Time inside the held-out metric callbacks, part of pretrain_seconds.
            "metrics_seconds": round(sum(cb.seconds for cb in metric_cbs), 3),
            "eval_seconds": round(eval_seconds, 2),  # the final evaluation (probe, kNN, RankMe, LiDAR, baselines)
            "metrics": rows["pretrained"],
            "baselines": baselines,
            "layers": layers,  # eval.layers: the same metrics of intermediate stages, by stage name
            "git": git,
            # The end-of-run judgement (selfsup/eval/collapse.py): null when the run was too short to judge.
            "collapsed": None if collapse is None else bool(collapse),
            "warnings": warnings,
        }
        for lg in loggers:
            lg.log_metrics({f"final/{k}": v for k, v in rows["pretrained"].items()}, step=trainer.global_step)
            if hasattr(lg, "log_table"):  # wandb: the whole final table, baselines included
                columns, data = table_columns(rows)
                lg.log_table(key="final/results", columns=columns, data=data, step=trainer.global_step)
            lg.save()
        for lg in loggers:  # a loss that learns temperatures: their plot, from the CSV log
            if isinstance(lg, CSVLogger):
                plot_temperatures(Path(lg.log_dir) / "metrics.csv", run_dir / TEMPERATURES)
                plot_curves(Path(lg.log_dir) / "metrics.csv", run_dir / CURVES)
        if not dm.num_classes:  # no labels: the neighbours preview
            queries = dm.held_out_images(QUERIES)
            gallery = dm.train_images(seeded_indices(dm.train_size(), GALLERY, cfg.seed))
            encoder, prepare = module.eval_encoder, module.view_maker.prepare
            results["neighbours"] = write_neighbours(encoder, prepare, queries, gallery, run_dir / NEIGHBOURS).name
        results["export"] = export_finished_run(
            cfg, module, run_dir / EXPORT, trainer.current_epoch, rows["pretrained"]
        )
        # Wall clock from this process's start (imports, data, compilation, evaluation and export
        # included): the time to accuracy a user waits for. A resumed run counts its last process only.
        results["process_seconds"] = round(process_seconds(), 2)
        atomic_write_json(run_dir / RESULTS, results)
        _report(rows, results, run_dir, warnings)
    for lg in loggers:
        lg.finalize("success")
        if isinstance(lg, WandbLogger):  # close the wandb run: the next job of a sweep starts its own
            lg.experiment.finish()
    return results


def process_seconds() -> float:
    """Seconds since this process started (Linux: from ``/proc``, so interpreter start-up and
    imports count); elsewhere since :mod:`selfsup.pipeline` was imported."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORTED


_IMPORTED = time.monotonic()


#: The label-free metrics of the pretrained encoder a run without labels reports: name, key.
LABEL_FREE = (("RankMe", "rankme_backbone"), ("LiDAR", "lidar_backbone"), ("alignment", "align_backbone"),
              ("uniformity", "uniform_backbone"))  # fmt: skip


def _report(rows: dict[str, dict[str, float]], results: dict[str, Any], run_dir: Path, warnings: list[str]) -> None:
    took = f"pretraining took {results['pretrain_seconds']:.1f} s, the final evaluation {results['eval_seconds']:.1f} s"
    print(
        f"\n{took}; {results['process_seconds']:.1f} s from process start; offline evaluation on the held-out split:\n"
    )
    print(format_table(rows, collapsed=["pretrained"] if warnings else []))
    if "neighbours" in results:
        m = rows["pretrained"]
        free = ", ".join(f"{name} {m[k]:.3g}" for name, k in LABEL_FREE if k in m)
        print(
            f"\nno labels (data.eval_path names a labelled folder for the probes); label-free: {free}; "
            f"each held-out image's nearest training images: {run_dir / results['neighbours']}"
        )
    for w in warnings:
        print(f"\nWARNING: {w}")
    for remark in below_baselines(rows):
        print(f"\nNOTE: {remark}")
    print(f"\nrun directory: {run_dir}")
