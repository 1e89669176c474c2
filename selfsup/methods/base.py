"""The method contract: what ``build.py``, the callbacks and the evaluation rely on.

A method is a thin Lightning module. It receives typed components (backbone, projection head,
view maker, loss, optimiser factory) and implements one function, :meth:`Method.objective`:
views in, loss and features out. Everything else is here, once:

- **Step outputs.** ``training_step`` returns :data:`TRAIN_OUTPUTS`, ``validation_step``
  returns :data:`VAL_OUTPUTS`. Callbacks declare which keys they read and fail with a clear
  message (:func:`require_outputs`) when a method does not return them.
- **What is trained.** :meth:`Method.trained_modules` (backbone, head, plus what a method adds:
  a predictor): their parameters form the optimiser's groups, with biases and norms out of
  weight decay and LARS adaptation. Momentum teachers, queues and memory banks are not in it.
- **What is evaluated.** :attr:`Method.eval_encoder` and :attr:`Method.eval_head`: the backbone
  and projector that the online probe, kNN, RankMe, LiDAR and the final report use; the online
  ones by default, the momentum teacher's with ``method.module.eval_with=teacher``.
- **State between steps.** :meth:`Method.after_optimizer_step` runs once after every optimiser
  step (EMA teachers update there). Queues and memory banks are written in
  :meth:`Method.objective`, after the loss has read them, once per batch (so once per
  accumulated micro-batch with ``accumulate_grad_batches``). State lives in registered buffers
  and submodules, so it is in the checkpoint's ``state_dict`` and restored exactly on resume.
  Buffers whose size depends on the data are allocated in :meth:`Method.setup`, which runs
  before Lightning loads a checkpoint.
- **Forward layout.** ``method.module.forward_layout`` (:meth:`Method.by_view`): ``joint``
  forwards all V×B views of a size through the backbone, and all V×B features through the head
  and predictor, in one pass, so batch norm normalises over every view together (SimCLR's
  official TF code); ``per_view`` forwards each view's B images alone, so batch norm's
  statistics are per view (the official code of MoCo, BYOL, SimSiam, Barlow Twins, VICReg).
  Outputs are the same tensors in the same view-major order either way.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from selfsup import registry
from selfsup.augment import ViewPipeline, Views
from selfsup.schema import Positive

OptimizerFactory = Callable[[Iterable[Any]], Optimizer]
SchedulerFactory = Callable[..., LRScheduler]

# Keys every training step returns: the loss, the eval encoder's features (V*B, F) and the
# head's embeddings (V*B, D) of every view, detached, and each view's label (V*B,), -1 if none.
TRAIN_OUTPUTS = ("loss", "h", "z", "labels")
# Keys every validation step returns, for held-out images without augmentation: features
# (B, F), embeddings (B, D), labels (B,) and the sample index in the held-out split (B,).
VAL_OUTPUTS = ("h", "z", "labels", "index")
EVAL_WITH = ("online", "teacher")
FORWARD_LAYOUTS = ("joint", "per_view")


def require_outputs(outputs: Any, keys: Iterable[str], reader: str) -> Mapping[str, Tensor]:
    """``outputs`` if it holds every key in ``keys``; else a ValueError naming what is missing."""
    have = set(outputs) if isinstance(outputs, Mapping) else set()
    missing = [k for k in keys if k not in have]
    if missing:
        raise ValueError(
            f"{reader} reads {missing} from the step's outputs, which has {sorted(have)}: a method's "
            f"training_step returns {list(TRAIN_OUTPUTS)} and validation_step {list(VAL_OUTPUTS)} "
            "(selfsup/methods/base.py)"
        )
    return outputs  # type: ignore[return-value]


def param_groups(modules: Iterable[nn.Module], exclude_bias_and_norm: bool) -> list[dict[str, Any]]:
    """Split parameters into a decayed group and (optionally) a bias/norm group without decay."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    if not exclude_bias_and_norm:
        return [{"params": params}]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0, "lars_exclude": True}]


def _backbone_name(backbone: nn.Module) -> str:
    """The backbone as a user chose it: timm's model name (``resnet18``), else its class."""
    name = getattr(backbone, "model_name", None)
    return f"backbone.name={name}" if isinstance(name, str) else f"backbone {type(backbone).__name__}"


def cosine_momentum(step: int, total: int, base: float, final: float = 1.0) -> float:
    """BYOL's / MoCo v3's schedule: ``final - (final - base) (cos(π step/total) + 1) / 2``."""
    if total <= 0:
        return base
    return final - (final - base) * (math.cos(math.pi * min(step, total) / total) + 1) / 2


class Method(L.LightningModule):
    """Views -> backbone -> head -> loss; subclasses implement :meth:`objective`.

    Under mixed precision only the networks run in autocast: the views are made, and the loss
    computed (:meth:`criterion`), in float32.

    Args:
        backbone: module with ``num_features``; (N, C, H, W) -> (N, F).
        head: projector (N, F) -> (N, D).
        loss: the objective (a module of ``selfsup.losses``; the method decides its arguments).
        view_maker: batch -> :class:`~selfsup.augment.Views` (view groups by size, V, the mix).
        optimizer: builds the optimiser from parameter groups (a Hydra partial).
        scheduler: builds the per-step lr schedule, called with
            ``(optimizer, total_steps=..., steps_per_epoch=...)``; None keeps the lr constant.
        exclude_bias_and_norm: no weight decay (and no LARS adaptation) on biases and norms.
        channels_last: backbone weights and inputs in NHWC memory format.
        compile: ``torch.compile`` the backbone in place (its state_dict keys are unchanged).
        lr_scale: the lr factor as a function of the images per optimiser step; None keeps it.
        eval_with: ``online`` or ``teacher`` (methods with a momentum teacher): which encoder
            the probes, kNN, RankMe, LiDAR and the final report measure.
        predictor: builds a predictor on the head's output from its input width (a Hydra
            partial of ``MLPHead``; BYOL, SimSiam, MoCo v3, NNCLR), trained with the rest; None: none.
        predictor_lr: the predictor's lr as a multiple of the others' (its schedule is theirs).
            BYOL (Grill et al. 2020, sec. 5) keeps the predictor near-optimal with 10x.
        forward_layout: how the views go through the backbone, the head and the predictor
            (the momentum teacher's too), which is what batch norm normalises over. ``joint``
            (the default): one pass over all V_g×B views of each size (and over all V×B features
            in the head), so BN statistics are over every view at once, as SimCLR's official TF
            code, which concatenates the views into one batch (Chen et al. 2020). ``per_view``:
            one pass per view of B images, BN statistics per view, as the official code of most
            methods (MoCo, BYOL, SimSiam, Barlow Twins, VICReg forward each view separately).
            With ``trainer.sync_batchnorm`` (on in ``trainer=ddp``) the statistics are over the
            global batch: of all views (joint) or of each view (per_view). Without batch norm,
            or in eval mode, the layouts give the same outputs.
    """

    # Capabilities, read by the refusals below and by selfsup.registry (which phrases them from
    # every registered method, so a refusal names what would work).
    #: Multi-crop's small local views are used by this method (False: it refuses them).
    local_views_ok = True
    #: The method cannot train without ``predictor``.
    needs_predictor = False
    #: The method passes a mixed batch's ``mix`` to its loss (False: it refuses ``augment.mix``).
    mix_ok = True
    #: The global views of an image (``augment.views``) the method needs at least: 2 to compare views.
    min_views = 2
    #: The method reads the backbone's patch tokens (``backbone.tokens()``: a Vision Transformer's);
    #: it refuses a backbone without them.
    needs_tokens = False

    @classmethod
    def splits_heads(cls) -> bool:
        """Whether the method splits a multi-head projector (``head=multi``): it keeps the default
        :meth:`objective`, which sums one loss term per head."""
        return cls.objective is Method.objective

    @classmethod
    def stand_in_overrides(cls, workdir: Path, channels: int) -> list[str]:
        """The overrides that let ``python train.py method=NAME`` run on data of ``channels``
        channels with nothing of the user's, for the tests and benchmarks that run every registered
        method: a method whose config requires a file of the user's (``???``: distillation's
        teacher) makes a stand-in for it in ``workdir``. None by default."""
        return []

    @classmethod
    def takes_mix(cls, loss: type) -> bool:
        """Whether the method, with loss class ``loss``, trains on a mixed batch's soft targets."""
        return cls.mix_ok and registry.forward_takes(loss, "mix")

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        loss: nn.Module,
        view_maker: ViewPipeline,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        exclude_bias_and_norm: bool = True,
        channels_last: bool = False,
        compile: bool = False,
        lr_scale: Callable[[int], float] | None = None,
        eval_with: Literal["online", "teacher"] = "online",
        predictor: Callable[..., nn.Module] | None = None,
        predictor_lr: Positive = 1.0,
        forward_layout: Literal["joint", "per_view"] = "joint",
    ) -> None:
        super().__init__()
        if eval_with not in EVAL_WITH:
            raise ValueError(f"method.module.eval_with={eval_with!r}; expected one of {list(EVAL_WITH)}")
        if forward_layout not in FORWARD_LAYOUTS:
            raise ValueError(
                f"method.module.forward_layout={forward_layout!r}; expected one of {list(FORWARD_LAYOUTS)}"
            )
        if self.needs_tokens and not getattr(backbone, "has_tokens", False):
            raise ValueError(
                f"{type(self).__name__} needs a backbone's patch tokens, and {_backbone_name(backbone)} has none; use "
                "a Vision Transformer (backbone=timm backbone.name=vit_tiny_patch16_224, or another of timm's vit_*)"
            )
        views = int(getattr(view_maker, "views", self.min_views))
        if views < self.min_views:
            fewer = [m for m in registry.methods() if getattr(registry.method_class(m), "min_views", 2) <= views]
            raise ValueError(
                f"{type(self).__name__} compares views of an image; set augment.views={self.min_views} or more"
                + (f" (augment.views={views} works with method={'|'.join(fewer)})" if fewer else "")
            )
        if not self.local_views_ok and int(getattr(view_maker, "local_views", 0) or 0):
            raise ValueError(
                f"{type(self).__name__} uses global views only; set augment.local_views=0 (multi-crop's local "
                f"views are used by {registry.methods_where(lambda m: m.local_views_ok)})"
            )
        #: The keyword arguments the loss's ``forward`` takes (``mix``, ``index``).
        self.loss_takes = frozenset(inspect.signature(loss.forward).parameters)
        mixer = getattr(view_maker, "mix", None)
        if mixer is not None and not self.takes_mix(type(loss)):
            who = f"loss {type(loss).__name__}" if self.mix_ok else type(self).__name__
            raise ValueError(
                f"{who} has no soft targets for mixed views; set augment.mix=null ({type(mixer).__name__}'s "
                f"soft targets are taken by {registry.pairs(lambda m, lo: m.takes_mix(lo))})"
            )
        if hasattr(head, "split"):  # a multi-head projector: one loss term per head, summed in objective
            if not self.splits_heads():
                raise ValueError(
                    f"{type(self).__name__} has its own objective and does not split a multi-head projector; "
                    f"use head=mlp (head=multi works with {registry.methods_where(lambda m: m.splits_heads())})"
                )
            if "index" in self.loss_takes:
                one_state = registry.pairs(lambda m, lo: m.splits_heads() and not registry.forward_takes(lo, "index"))
                raise ValueError(
                    f"loss {type(loss).__name__} keeps per-image state and takes one projector; use head=mlp "
                    f"(head=multi works with {one_state})"
                )
        if self.needs_predictor and predictor is None:
            raise ValueError(f"{type(self).__name__} needs method.module.predictor (an MLPHead partial)")
        if predictor_lr <= 0:
            raise ValueError(f"method.module.predictor_lr={predictor_lr}; expected a positive lr multiple")
        if predictor is None and predictor_lr != 1:
            raise ValueError(f"method.module.predictor_lr={predictor_lr}, but {type(self).__name__} has no predictor")
        self.backbone: nn.Module = backbone
        self.head: nn.Module = head
        self.loss_fn: nn.Module = loss
        self.view_maker: ViewPipeline = view_maker
        self._optimizer = optimizer
        self._scheduler = scheduler
        self.exclude_bias_and_norm = exclude_bias_and_norm
        self.channels_last = channels_last
        self.compile_backbone = compile
        self.lr_scale = lr_scale
        self.eval_with = eval_with
        self.predictor: nn.Module | None = predictor(in_dim=self.head_dim) if predictor is not None else None
        self.predictor_lr = predictor_lr
        self.forward_layout = forward_layout

    # --- what a method implements --------------------------------------------------------------

    def objective(self, views: Views, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The loss of one batch of views; by default backbone -> head -> ``loss(z, views=V)``
        (with ``mix=`` when the views were mixed, and ``index=`` when the loss takes it); with a
        multi-head projector, the heads' losses weighted by ``head.weights`` and summed.

        Args:
            views: the batch's views (``views.groups``: one (V_g*B, C, S, S) tensor per size).
            index: (B,) the images' indices in the training set (memory banks key on it).

        Returns:
            The scalar loss, and the eval encoder's features (V*B, F) and the eval head's
            embeddings (V*B, D) of the views, for the callbacks (detached here). A method whose
            eval encoder sees only some views (a teacher of the global views) returns theirs,
            (V'*B, ·), view-major.
        """
        h = self.encode(views)  # (V*B, F)
        z = self.by_view(self.head, h, views.count)  # (V*B, D)
        extra: dict[str, Any] = {"mix": views.mix} if views.mix is not None else {}
        if "index" in self.loss_takes:
            extra["index"] = index
        split = getattr(self.head, "split", None)
        if split is None:
            return self.criterion(z, views=views.count, **extra), h, z
        # A multi-head projector: the loss of each head's embeddings, weighted and summed.
        weights: list[float] = self.head.weights  # type: ignore[assignment]
        terms = [w * self.criterion(p, views=views.count, **extra) for w, p in zip(weights, split(z), strict=True)]
        return torch.stack(terms).sum(), h, z

    def trained_modules(self) -> list[nn.Module]:
        """The modules the optimiser trains: backbone, head, the predictor if there is one, and the
        loss if it has parameters (AMCL's temperature network)."""
        loss = [self.loss_fn] if any(True for _ in self.loss_fn.parameters()) else []
        return [self.backbone, self.head] + ([self.predictor] if self.predictor is not None else []) + loss

    @property
    def teacher(self) -> nn.Module | None:
        """A momentum teacher with ``backbone`` and ``head`` attributes, if the method has one."""
        return None

    def after_optimizer_step(self, step: int, total: int) -> None:
        """Update state once after optimiser step ``step`` (0-based) of ``total``."""

    # --- the contract's shared parts ------------------------------------------------------------

    @property
    def eval_encoder(self) -> nn.Module:
        """The backbone the evaluation measures."""
        if self.eval_with == "teacher":
            return self._require_teacher().backbone
        return self.backbone

    @property
    def eval_head(self) -> nn.Module:
        """The projector whose embeddings the evaluation measures (RankMe, alignment, LiDAR)."""
        if self.eval_with == "teacher":
            return self._require_teacher().head
        return self.head

    @property
    def feature_dim(self) -> int:
        """F, the backbone's feature width (its ``num_features``), for a method's own heads."""
        return self._width("backbone", "num_features")

    @property
    def head_dim(self) -> int:
        """D, the projector's output width (its ``out_dim``)."""
        return self._width("head", "out_dim")

    def _width(self, part: str, attribute: str) -> int:
        dim = getattr(getattr(self, part), attribute, None)
        if not isinstance(dim, int):
            raise ValueError(f"{type(self).__name__} needs a {part} with an integer `{attribute}`")
        return dim

    def _require_teacher(self) -> Any:
        if self.teacher is None:
            raise ValueError(f"method.module.eval_with=teacher: {type(self).__name__} has no momentum teacher")
        return self.teacher

    def setup(self, stage: str) -> None:
        if self.eval_with == "teacher":
            self._require_teacher()  # before training starts
        # State with one row per training image (NPID's bank, iSogCLR's temperatures) is sized
        # here, before Lightning loads a checkpoint, so saved state of this size loads into it.
        per_sample: list[Callable[[int], None]] = [
            m.resize_per_sample  # type: ignore[misc]
            for m in self.modules()
            if hasattr(m, "resize_per_sample")
        ]
        if per_sample:
            n = self.trainer.datamodule.train_size()  # type: ignore[attr-defined]
            for resize in per_sample:
                resize(n)

    def configure_model(self) -> None:
        if self.channels_last:
            self.backbone.to(memory_format=torch.channels_last)
            if self.teacher is not None:
                self.teacher.to(memory_format=torch.channels_last)
        if self.compile_backbone and not getattr(self, "_compiled", False):
            self.backbone.compile()
            self._compiled = True

    def to_memory_format(self, x: Tensor) -> Tensor:
        """``x`` in the backbone's memory format: channels_last (NHWC) with ``trainer.channels_last``,
        else as it is. Not the forward layout (``forward_layout``, :meth:`by_view`)."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def by_view(self, net: Callable[[Tensor], Tensor], x: Tensor, count: int) -> Tensor:
        """``net`` applied to a view-major batch ``x`` of ``count`` views of B rows each, in the
        forward layout: one call on all count×B rows (``joint``), or one call per view's B rows
        (``per_view``), the outputs concatenated in the same order. Row i of the output is
        ``net``'s output for row i of ``x`` either way; only what batch norm sees differs."""
        if self.forward_layout == "joint" or count == 1:
            return net(x)
        if x.shape[0] % count:
            raise ValueError(f"{x.shape[0]} rows are not {count} views of equal size")
        return torch.cat([net(v) for v in x.split(x.shape[0] // count)])

    def encode(self, views: Views, backbone: nn.Module | None = None) -> Tensor:
        """(V*B, F) features of every view, view-major: one forward per view size (``joint``) or
        per view (``per_view``), :meth:`by_view`."""
        net = self.backbone if backbone is None else backbone
        b = views.images
        return torch.cat([self.by_view(net, self.to_memory_format(g), g.shape[0] // b) for g in views.groups])

    def criterion(self, *args: Any, **kwargs: Any) -> Tensor:
        """``self.loss_fn`` outside autocast, its tensor arguments in float32 at least."""

        def up(x: Any) -> Any:
            return x.float() if isinstance(x, Tensor) and x.is_floating_point() and x.dtype != torch.float64 else x

        with torch.autocast(self.device.type, enabled=False):
            return self.loss_fn(*[up(a) for a in args], **{k: up(v) for k, v in kwargs.items()})

    def forward(self, x: Tensor) -> Tensor:
        """The eval encoder's features of prepared (normalised float) images: (N, C, H, W) -> (N, F)."""
        return self.eval_encoder(self.to_memory_format(x))

    def training_step(self, batch: tuple[Any, Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        x, y, index = batch  # uint8 (B, C, H, W) (or per-sample views), (B,), (B,)
        with torch.autocast(y.device.type, enabled=False):
            views = self.view_maker(x)
        loss, h, z = self.objective(views, index)
        self.log("train/loss", loss, on_step=True, on_epoch=True, batch_size=y.shape[0], sync_dist=True)
        logged = getattr(self.loss_fn, "logged", None)  # a loss's own statistics (learned temperatures)
        if logged is not None and self.global_step % max(1, getattr(self.trainer, "log_every_n_steps", 50)) == 0:
            for name, value in logged().items():
                self.log(f"train/{name}", value, on_step=True, on_epoch=False, batch_size=y.shape[0])
        # h and z have the rows of some views of every image, view-major: all V, or fewer (a teacher
        # that sees the global views only); the labels repeat for as many.
        return {"loss": loss, "h": h.detach(), "z": z.detach(), "labels": y.repeat(h.shape[0] // y.shape[0])}

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        # global_step counts the optimiser steps completed before this one: its 0-based index.
        self.after_optimizer_step(self.trainer.global_step, self.planned_steps())

    def planned_steps(self) -> int:
        """The run's optimiser steps, as ``trainer.estimated_stepping_batches`` counts them, but from
        a loader of its own: that property builds Lightning's training loader before a checkpoint's
        loader state is restored, and the state is then never loaded (Lightning issue #20550), so a
        mid-epoch resume would restart the epoch's order. Counted once per trainer."""
        t = self.trainer
        cached = getattr(self, "_planned_steps", None)
        if cached is not None and cached[0] is t:
            return cached[1]
        if t.max_epochs is None or t.max_epochs < 0:
            steps = int(t.max_steps)
        else:
            n = len(t.datamodule.train_dataloader())  # type: ignore[attr-defined]
            limit = t.limit_train_batches
            n = min(n, int(limit)) if isinstance(limit, int) else int(n * float(limit or 1.0))
            steps = math.ceil(n / t.accumulate_grad_batches) * max(t.max_epochs, 1)
            steps = min(steps, t.max_steps) if t.max_steps != -1 else steps
        self._planned_steps = (t, steps)
        return steps

    def validation_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        x, y, index = batch
        h = self.eval_encoder(self.to_memory_format(self.view_maker.prepare(x)))
        return {"h": h, "z": self.eval_head(h), "labels": y, "index": index}

    def configure_optimizers(self) -> Any:
        # The predictor gets groups of its own only at its own lr, so the groups (and checkpoints'
        # optimiser states) of predictor_lr=1 are those of one lr for all.
        split = self.predictor is not None and self.predictor_lr != 1
        online = [m for m in self.trained_modules() if not (split and m is self.predictor)]
        groups = param_groups(online, self.exclude_bias_and_norm)
        if split and self.predictor is not None:  # its own groups, at predictor_lr x the lr
            groups += [
                {**g, "lr_factor": self.predictor_lr}
                for g in param_groups([self.predictor], self.exclude_bias_and_norm)
            ]
        opt = self._optimizer(groups)
        for group in opt.param_groups:
            group["lr"] *= group.get("lr_factor", 1.0)
        if self.lr_scale is not None:
            t = self.trainer
            batch = t.datamodule.batch_size * t.world_size * t.accumulate_grad_batches  # type: ignore[attr-defined]
            scale = self.lr_scale(batch)
            for group in opt.param_groups:
                group["lr"] *= scale
            if t.is_global_zero:
                print(f"lr x {scale:.4g} for {batch} images per optimiser step: lr {opt.param_groups[0]['lr']:.4g}")
        if self._scheduler is None:
            return opt
        total = self.planned_steps()
        per_epoch = max(1, total // max(1, self.trainer.max_epochs or 1))
        sched = self._scheduler(opt, total_steps=total, steps_per_epoch=per_epoch)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
