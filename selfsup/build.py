"""Hydra glue: turns a composed config into typed components and checks what can be checked
before any training starts.

The components (``selfsup.data``, ``augment``, ``backbones``, ``heads``, ``losses``, ``methods``,
``optim``, the metrics and callbacks of ``selfsup.eval``) never read the run's config: they take
their arguments, which this module instantiates from their own config nodes. The config object
(the composed ``DictConfig``, or a trained run's saved ``config.yaml``) is read here, by the entry
points (``train.py``, ``finetune.py``, the scripts that reuse a trained run) and by the modules that
run or check a whole run, each for its own part:

- :mod:`selfsup.pipeline`: the keys that decide what one run does around its components: ``seed``,
  ``resume``, ``checkpoint_every_n_steps``, ``eval.online_probe``, ``eval.layers``;
- :mod:`selfsup.eval.final`: the end-of-run evaluation's protocol (``eval.*``, ``seed``), the same for
  a run re-evaluated later (``scripts/linear_probe.py``);
- :mod:`selfsup.export`: what a run's export records (``data.mean``/``std``, ``augment.size``, the
  method, loss and data on its model card);
- :mod:`selfsup.finetune_pipeline`: ``configs/finetune.yaml`` and the source run's saved config;
- the checks: :mod:`selfsup.schema_check` (types and ranges), :mod:`selfsup.preflight` (Hydra's
  callback, before the run directory is written), :mod:`selfsup.rerun` (the config against a run
  directory's saved one), :mod:`selfsup.run_dir` (a trained run's saved config, for the scripts).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from selfsup.augment import ViewPipeline
from selfsup.data import ImageDataModule
from selfsup.dist import planned_world_size
from selfsup.errors import CheckpointError, ConfigError, UserError
from selfsup.eval.collapse import CollapseCheck
from selfsup.eval.held_out import HeldOutMetric
from selfsup.eval.knn_callback import KNNCallback
from selfsup.eval.rankme_callback import RankMeCallback
from selfsup.eval.view_metrics import ViewMetricsCallback
from selfsup.methods import Method
from selfsup.optim import lr_scaling
from selfsup.schema_check import check_schema, missing_keys


def check_config(cfg: DictConfig, loss_choice: str) -> None:
    """Fail before training on a value its declared type refuses (:mod:`selfsup.schema`) or a
    combination no single type can see (a method and a loss, the CPU and a GPU-only setting).

    Args:
        cfg: the composed config.
        loss_choice: the option chosen in the ``loss`` group.
    """
    secrets = _secret_keys(cfg)  # first: whatever else is wrong, a credential must not be saved
    if secrets:
        raise ConfigError(
            f"{', '.join(secrets)}: credentials never go in a config (it is saved with the run); "
            "set WANDB_API_KEY in the environment instead"
        )
    missing = missing_keys(cfg)
    if missing:
        raise ConfigError(f"{', '.join(missing)} must be given (??? in the config), e.g. `{missing[0]}=...`")
    check_schema(cfg)
    accepted = list(cfg.method.losses)
    if loss_choice not in accepted:
        raise ConfigError(
            f"method={cfg.method.name} does not accept loss={loss_choice}; "
            f"method={cfg.method.name} accepts loss={'|'.join(accepted)}"
        )
    _check_trainer(cfg.trainer)


def _check_trainer(t: DictConfig) -> None:
    if t.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator={t.accelerator}: no CUDA GPU is visible here; "
            "use trainer=cpu (or trainer.accelerator=cpu), or run on a GPU machine"
        )
    on_cpu = t.accelerator == "cpu" or (t.accelerator == "auto" and not torch.cuda.is_available())
    if t.get("sync_batchnorm") and on_cpu:
        raise ConfigError(
            "trainer.sync_batchnorm=true needs GPUs (torch's SyncBatchNorm does not run on the CPU); "
            "set trainer.sync_batchnorm=false with trainer.accelerator=cpu"
        )
    if str(t.precision) in ("16-mixed", "16") and on_cpu:
        raise ConfigError(f"trainer.precision={t.precision} needs a GPU; on the CPU use 32-true or bf16-mixed")


# Key names that hold credentials whatever their value, and suffixes that do when the value
# looks like one (a long string without spaces): `wandb_api_key`, `hf_token: hf_abc...`, but
# not a timm ViT's `class_token: true` or a `max_tokens: 77`.
SECRET_NAMES = ("api_key", "apikey", "password", "passwd", "secret", "secret_key", "access_key")


def _looks_like_credential(value: Any) -> bool:
    return isinstance(value, str) and len(value) >= 16 and not any(c.isspace() for c in value)


def _secret_keys(node: Any, prefix: str = "") -> list[str]:
    """Dotted keys that hold credentials: a secret name, or ``*_token`` set to a credential-like string."""
    found: list[str] = []
    if isinstance(node, DictConfig):
        for key in node:
            path = prefix + str(key)
            name = str(key).lower()
            child = node._get_node(key)  # no interpolation resolved
            value = child._value() if child is not None and not isinstance(child, DictConfig) else None
            if name.endswith(SECRET_NAMES) or (name.endswith("token") and _looks_like_credential(value)):
                found.append(path)
            found += _secret_keys(child, path + ".")
    return found


def build_view_maker(cfg: DictConfig) -> ViewPipeline:
    """The view maker of ``cfg.augment``; with ``data.normalize=auto``, an identity normalisation
    until the run sets the measured one (:mod:`selfsup.data.stats`)."""
    auto = {}
    if cfg.data.get("normalize", "fixed") == "auto":
        c = int(cfg.data.channels)
        auto = {"mean": [0.0] * c, "std": [1.0] * c}
    try:
        return instantiate(cfg.augment, **auto)
    except Exception as e:  # Hydra wraps the component's ValueError; name the group
        cause = str(e.__cause__ or e)
        raise ConfigError(cause if cause.startswith("augment") else f"augment: {cause}") from e


def build_datamodule(cfg: DictConfig, view_maker: ViewPipeline | None = None) -> ImageDataModule:
    """The data module; ``view_maker``'s per-sample transform (if any) runs in its workers."""
    return ImageDataModule(
        splits=instantiate(cfg.data.splits),
        batch_size=cfg.data.batch_size,
        num_workers=cfg.data.num_workers,
        train_transform=view_maker.sample_transform if view_maker is not None else None,
        full_resolution_transform=view_maker.full_resolution_transform() if view_maker is not None else None,
        on_device=bool(cfg.data.get("on_device", False)),
        seed=int(cfg.seed),
    )


def check_epoch_has_a_step(cfg: DictConfig, dm: ImageDataModule) -> None:
    """Refuse a training set that gives an epoch no step (:meth:`ImageDataModule.train_share`): each
    process's share smaller than ``data.batch_size`` where the training loader drops the last
    incomplete batch, or no image at all for a process. Such a run would train nothing and export
    and report an untrained encoder."""
    t = cfg.trainer
    processes = planned_world_size(str(t.accelerator), t.devices, int(t.get("num_nodes", 1)))
    share, drops = dm.train_share(processes)
    n, batch = dm.train_size(), int(cfg.data.batch_size)
    if share > 0 and not (drops and share < batch):
        return
    size = f"the training set of data={cfg.data.name} has {n} images"
    if processes > 1:
        size += f", {share} per process over {processes} processes (trainer.devices x trainer.num_nodes)"
    if share == 0:
        raise ConfigError(f"{size}: a process would have no image; use fewer processes or more images")
    raise ConfigError(
        f"data.batch_size={batch}: {size}, fewer than one batch, and its training loader keeps only complete "
        f"batches (drop_last), so an epoch would have no step; set data.batch_size={share} or less"
    )


def build_backbone(cfg: DictConfig) -> nn.Module:
    try:
        backbone = instantiate(cfg.backbone)
    except InstantiationException as e:  # Hydra wraps what the backbone raised: a UserError stays one line
        if isinstance(e.__cause__, UserError):
            raise e.__cause__ from None
        raise
    if not hasattr(backbone, "num_features"):
        raise ConfigError(f"backbone {cfg.backbone._target_} has no `num_features`")
    return backbone


def build_module(cfg: DictConfig, view_maker: ViewPipeline | None = None) -> Method:
    backbone = build_backbone(cfg)
    head = _instantiate_named("head", cfg.head, in_dim=backbone.num_features)
    return _instantiate_named(
        "method.module",
        cfg.method.module,
        backbone=backbone,
        head=head,
        loss=_instantiate_named("loss", cfg.loss),
        view_maker=view_maker if view_maker is not None else build_view_maker(cfg),
        optimizer=instantiate(cfg.optim.optimizer),
        scheduler=instantiate(cfg.optim.scheduler) if cfg.optim.get("scheduler") else None,
        exclude_bias_and_norm=cfg.optim.exclude_bias_and_norm,
        channels_last=cfg.trainer.channels_last,
        compile=cfg.trainer.compile,
        lr_scale=lr_scaling(cfg.optim.lr_scaling.rule, cfg.optim.lr_scaling.reference_batch),
    )


def load_trained(cfg: DictConfig, ckpt: Path) -> Method:
    """The module of ``cfg`` with the weights of ``ckpt``, laid out as in training (channels_last,
    compilation), so its features are the ones the run measured.

    Raises:
        CheckpointError: ``ckpt`` cannot be read, or holds another model (its keys or shapes differ
            from the config's).
    """
    module = build_module(_checkpoint_only(cfg))
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    except Exception as e:
        raise CheckpointError(f"{ckpt} is not a readable Lightning checkpoint ({type(e).__name__}: {e})") from None
    # State with one row per training image (NPID's bank, iSogCLR's temperatures) takes the
    # checkpoint's row count, as Method.setup sizes it from the data before Lightning loads one.
    for name, m in module.named_modules():
        if hasattr(m, "resize_per_sample"):
            rows = [v.shape[0] for k, v in state.items() if k.startswith(name + ".") and v.ndim >= 1]
            if rows:
                m.resize_per_sample(max(rows))
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).split("\n\t")[1] if "\n\t" in str(e) else str(e).splitlines()[0]
        raise CheckpointError(
            f"{ckpt} holds another model than the run's config (backbone {cfg.backbone._target_}"
            f"{' ' + str(cfg.backbone.name) if 'name' in cfg.backbone else ''}): {first.strip()}"
        ) from None
    module.configure_model()
    return module


def _checkpoint_only(cfg: DictConfig) -> DictConfig:
    """``cfg`` with ``backbone.pretrained`` off: the checkpoint's weights replace pretrained ones, so
    the machine that loads a run needs no cache of them."""
    if not cfg.backbone.get("pretrained"):
        return cfg
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.backbone.pretrained = False
        if "pretrained_file" in cfg.backbone:
            cfg.backbone.pretrained_file = None
    return cfg


def _instantiate_named(key: str, node: DictConfig, **kwargs: Any) -> Any:
    """``instantiate(node, **kwargs)``; a component's ValueError becomes a ConfigError naming ``key``."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, ValueError):
            raise ConfigError(f"{key}: {cause}") from e
        raise


# Keys of the trainer config that are selfsup's, not lightning.Trainer's (the module applies them).
MODULE_TRAINER_KEYS = ("channels_last", "compile")


def resolve_device(name: str) -> torch.device:
    """``auto``: a CUDA GPU if there is one, else the CPU; otherwise the named device (``cuda:1``)."""
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)


def build_trainer(cfg: DictConfig, **kwargs: Any) -> L.Trainer:
    """``lightning.Trainer`` from ``cfg.trainer`` (less the module's keys) and ``kwargs``."""
    keys = [str(k) for k in cfg.trainer if k not in MODULE_TRAINER_KEYS]
    return instantiate(OmegaConf.masked_copy(cfg.trainer, keys), **kwargs)


def build_metric_callbacks(cfg: DictConfig, num_classes: int) -> list[HeldOutMetric | CollapseCheck]:
    """The label-free metrics (and kNN) on the held-out split during training, none if disabled,
    and last the :class:`CollapseCheck` that reads them (and the online probe's) after each validation."""
    m = cfg.eval.metrics
    metrics: list[HeldOutMetric] = []
    rankme_cb = None
    if m.enabled:
        rankme_cb = RankMeCallback(m.every_n_epochs)
        metrics = [
            rankme_cb,
            ViewMetricsCallback(m.every_n_epochs, m.lidar_images, m.lidar_views, m.lidar_delta, m.lidar_eps, cfg.seed),
        ]
        if num_classes:  # no labels: no kNN
            metrics.append(KNNCallback(num_classes, m.knn_every_n_epochs, cfg.eval.knn_k, cfg.eval.knn_temperature))
    return [*metrics, build_collapse_check(cfg, num_classes, rankme_cb)]


def no_validation_warning(cfg: DictConfig) -> str | None:
    """What ``trainer.limit_val_batches=0`` turns off, in one line; None when validation runs.

    With no validation batch Lightning runs no validation epoch, so every callback that works on
    the validation loop's held-out features never runs: the online probe's held-out top-1, the
    label-free metrics and the periodic kNN of :func:`build_metric_callbacks`, and the
    :class:`CollapseCheck` after each validation. The final evaluation does not use the loop.
    """
    limit = cfg.trainer.limit_val_batches
    if limit != 0:
        return None
    return (
        f"trainer.limit_val_batches={limit}: no validation during training, so no online probe on the held-out "
        "split (val/online_top1; the probe still trains), no label-free metrics (val/rankme_*, val/lidar_*, "
        "val/align_*, val/uniform_*), no periodic kNN (val/knn_top1) and no collapse check after each epoch "
        "(eval.stop_on_collapse cannot stop the run); the final evaluation and results.json are as usual, "
        "the end-of-run collapse judgement reading the final RankMe only"
    )


def build_collapse_check(cfg: DictConfig, num_classes: int, rankme: RankMeCallback | None = None) -> CollapseCheck:
    """The collapse check of ``eval.collapse`` and ``eval.stop_on_collapse``."""
    c = cfg.eval.collapse
    return CollapseCheck(
        num_classes,
        rankme_share=float(c.rankme_share),
        probe_chance_margin=float(c.probe_chance_margin),
        after_epochs=int(c.after_epochs),
        stop=bool(cfg.eval.stop_on_collapse),
        rankme=rankme,
    )


def build_loggers(cfg: DictConfig) -> list[Any]:
    return [instantiate(c) for c in cfg.logger.values()]


def resolved_config(cfg: DictConfig) -> Mapping[str, Any]:
    """The config as the run saves it: resolved, as a plain dict, without ``hydra``."""
    # `hydra` is present only when a config was composed with it (tests); it is not the run's.
    return OmegaConf.to_container(OmegaConf.masked_copy(cfg, [str(k) for k in cfg if k != "hydra"]), resolve=True)  # type: ignore[return-value]


def save_config(cfg: DictConfig, run_dir: Path, write: bool = True) -> Mapping[str, Any]:
    """The resolved config as YAML in the run directory (if ``write``); returns it as a plain dict."""
    from selfsup.run_dir import atomic_write_text

    resolved = resolved_config(cfg)
    if write:
        atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(dict(resolved))))
    return resolved
