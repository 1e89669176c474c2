"""Types and ranges of every config value, declared once; :mod:`selfsup.schema_check` checks a
composed config against them before a run starts.

Two places declare them:

- **Components** (every config node whose ``_target_`` is a ``selfsup`` class or function:
  losses, methods, heads, backbones, view makers, mixes, schedules, data splits) declare them
  in their own signature, with the constrained types below (``temperature: Positive``,
  ``views: Annotated[int, Ge(2)]``). A new loss or method is checked as soon as its signature
  says what it accepts; nothing here changes.
- **The rest** (``data``, ``optim``, ``trainer``, ``eval``, ``seed``, ``resume``, ``objective``): the models
  :class:`RunSchema` and the ones it nests.

This module holds only declarations (the components import its types); the engine that walks a
config and validates it is :mod:`selfsup.schema_check`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt, Interval, Len, MinLen
from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator

from selfsup.sweep_metric import SweepMetric

Positive = Annotated[float, Gt(0)]
NonNegative = Annotated[float, Ge(0)]
Probability = Annotated[float, Interval(ge=0, le=1)]
OpenFraction = Annotated[float, Interval(gt=0, lt=1)]
PositiveInt = Annotated[int, Gt(0)]
NonNegativeInt = Annotated[int, Ge(0)]


def _ordered(pair: Sequence[float]) -> Sequence[float]:
    """low ≤ high."""
    if pair[0] > pair[1]:
        raise ValueError("a range [low, high] with low <= high")
    return pair


# [low, high] with 0 < low <= high: crop aspect ratios, blur sigmas, ...
Range = Annotated[Sequence[Positive], Len(2, 2), AfterValidator(_ordered)]
# [low, high] with 0 < low <= high <= 1: crop area fractions.
AreaRange = Annotated[Sequence[Annotated[float, Interval(gt=0, le=1)]], Len(2, 2), AfterValidator(_ordered)]


# How the lr scales with the global batch (selfsup.optim.scaling.lr_scaling).
LrScalingRule = Literal["none", "linear", "sqrt"]


class Node(BaseModel):
    """A config node: the keys named here are checked, any others are left to their component."""

    model_config = ConfigDict(extra="allow", strict=True)


class DataSchema(Node):
    name: str
    channels: PositiveInt
    bit_depth: Literal[8, 16] = 8
    normalize: Literal["fixed", "auto"] = "fixed"  # auto: statistics of the training images (selfsup.data.stats)
    image_size: PositiveInt
    mean: Annotated[list[float], MinLen(1)] | None
    std: Annotated[list[Positive], MinLen(1)] | None
    batch_size: PositiveInt
    num_workers: NonNegativeInt
    on_device: bool = False  # serve training batches from the device (selfsup.data.device_batches)

    @model_validator(mode="after")
    def _one_statistic_per_channel(self) -> DataSchema:
        if self.normalize == "auto":  # computed from the data: mean and std are not read
            return self
        for key in ("mean", "std"):
            if getattr(self, key) is None:
                raise ValueError(f"data.{key} is null: give one value per channel, or set data.normalize=auto")
            if len(getattr(self, key)) != self.channels:  # type: ignore[arg-type]
                raise ValueError(
                    f"data.{key} has {len(getattr(self, key))} values but data.channels={self.channels}: "
                    "give one per channel"
                )
        return self


class OptimizerSchema(Node):
    lr: Positive
    weight_decay: NonNegative = 0.0
    momentum: Annotated[float, Interval(ge=0, lt=1)] = 0.0


class LrScalingSchema(Node):
    rule: LrScalingRule
    reference_batch: PositiveInt


class OptimSchema(Node):
    optimizer: OptimizerSchema
    lr_scaling: LrScalingSchema
    exclude_bias_and_norm: bool


def _limit(v: float | int) -> float | int:
    """A fraction in (0, 1] or a number of batches ≥ 1."""
    if isinstance(v, float) and not 0 < v <= 1:
        raise ValueError(f"a fraction in (0, 1] or a number of batches >= 1, got {v}")
    return v


def _val_limit(v: float | int) -> float | int:
    """0 (no validation), a fraction in (0, 1] or a number of batches ≥ 1."""
    if v == 0:  # Lightning's way to skip validation (selfsup.build.skipped_validation says what that turns off)
        return v
    if isinstance(v, float) and not 0 < v <= 1:
        raise ValueError(f"0 (no validation), a fraction in (0, 1] or a number of batches >= 1, got {v}")
    return v


def _lightning_precision() -> Any:
    """The precision values ``lightning.Trainer`` accepts (its own type)."""
    from lightning.fabric.connector import _PRECISION_INPUT

    return _PRECISION_INPUT


class TrainerSchema(Node):
    accelerator: str
    devices: PositiveInt | Literal["auto", -1] | list[NonNegativeInt] | str
    num_nodes: PositiveInt = 1
    max_epochs: PositiveInt
    precision: _lightning_precision()  # type: ignore[valid-type]
    log_every_n_steps: PositiveInt
    check_val_every_n_epoch: PositiveInt
    limit_train_batches: Annotated[PositiveInt | Positive, AfterValidator(_limit)]
    limit_val_batches: Annotated[NonNegativeInt | NonNegative, AfterValidator(_val_limit)]
    gradient_clip_val: NonNegative | None
    accumulate_grad_batches: PositiveInt
    sync_batchnorm: bool
    channels_last: bool
    compile: bool
    deterministic: bool | Literal["warn"]
    enable_progress_bar: bool
    num_sanity_val_steps: Annotated[int, Ge(-1)]


class MetricsSchema(Node):
    enabled: bool
    every_n_epochs: PositiveInt
    lidar_images: Annotated[int, Ge(2)]
    lidar_views: Annotated[int, Ge(2)]
    final_lidar_images: Annotated[int, Ge(2)]
    final_lidar_views: Annotated[int, Ge(2)]
    lidar_delta: Positive
    lidar_eps: Positive
    knn_every_n_epochs: NonNegativeInt


class CollapseSchema(Node):
    rankme_share: Probability
    probe_chance_margin: NonNegative
    after_epochs: PositiveInt


class EvalSchema(Node):
    online_probe: bool
    online_probe_lr: Positive
    knn_k: PositiveInt
    knn_temperature: Positive
    probe_Cs: Annotated[list[Positive], MinLen(1)]
    probe_val_fraction: OpenFraction
    probe_max_iter: PositiveInt
    baselines: list[Literal["random_init", "raw_pixels"]]  # the rows eval.final.final_evaluation adds
    layers: list[int]  # backbone stages evaluated like the final features (selfsup/eval/layers.py)
    collapse: CollapseSchema
    stop_on_collapse: bool
    metrics: MetricsSchema


class AugmentSchema(Node):
    views: PositiveInt  # the global views; a method that compares views refuses fewer (Method.min_views)


class SweepSchema(Node):
    """The keys every job of a sweep shares, checked once before the sweep starts."""

    objective: SweepMetric  # the value train.py returns to a sweeper (selfsup/sweep_metric.py)


class RunSchema(SweepSchema):
    """The keys every run reads besides its components'."""

    seed: NonNegativeInt
    verbose: bool = False
    resume: str
    checkpoint_every_n_steps: PositiveInt | None = None
    data: DataSchema
    optim: OptimSchema
    trainer: TrainerSchema
    eval: EvalSchema
    augment: AugmentSchema


class FinetuneSchema(Node):
    """The keys of ``configs/finetune.yaml`` (``python finetune.py``; :mod:`selfsup.finetune`)."""

    run: str
    protocols: Annotated[list[Literal["probe", "linear", "finetune", "from_scratch"]], MinLen(1)]
    epochs: PositiveInt
    batch_size: PositiveInt
    lr: Positive
    backbone_lr_scale: Positive
    weight_decay: NonNegative
    warmup_epochs: NonNegative
    label_smoothing: Annotated[float, Interval(ge=0, lt=1)]
    crop_scale: AreaRange
    flip_p: Probability
    input_size: PositiveInt | None
    normalize: Literal["source", "target"]
    max_train_samples: PositiveInt | None
    max_test_samples: PositiveInt | None
    seed: NonNegativeInt
    device: str
    data: DataSchema
