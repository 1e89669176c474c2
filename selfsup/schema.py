"""Types and ranges of every config value, declared once and checked before a run starts.

Two places declare them:

- **Components** (every config node whose ``_target_`` is a ``selfsup`` class or function:
  losses, methods, heads, backbones, view makers, mixes, schedules, data splits) declare them
  in their own signature, with the constrained types below (``temperature: Positive``,
  ``views: Annotated[int, Ge(2)]``). A new loss or method is checked as soon as its signature
  says what it accepts; nothing here changes.
- **The rest** (``data``, ``optim``, ``trainer``, ``eval``, ``seed``, ``resume``, ``objective``): the models
  :class:`RunSchema` and the ones it nests.

:func:`check_schema` validates the composed config against both with pydantic (strict: a
string is never read as a number) and raises one :class:`~selfsup.errors.ConfigError` per
run, naming the full key, its value and what is allowed, e.g.
``optim.optimizer.lr=-1: must be greater than 0``.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import typing
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt, Interval, Len, MinLen
from omegaconf import DictConfig, ListConfig, OmegaConf
from pydantic import AfterValidator, BaseModel, ConfigDict, TypeAdapter, ValidationError, model_validator
from pydantic.errors import PydanticSchemaGenerationError

from selfsup.errors import ConfigError
from selfsup.objective import Objective

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


class _Node(BaseModel):
    """A config node: the keys named here are checked, any others are left to their component."""

    model_config = ConfigDict(extra="allow", strict=True)


class DataSchema(_Node):
    name: str
    channels: Literal[1, 3]
    image_size: PositiveInt
    mean: Annotated[list[float], MinLen(1)]
    std: Annotated[list[Positive], MinLen(1)]
    batch_size: PositiveInt
    num_workers: NonNegativeInt
    on_device: bool = False  # serve training batches from the device (selfsup.data.device_batches)

    @model_validator(mode="after")
    def _one_statistic_per_channel(self) -> DataSchema:
        for key in ("mean", "std"):
            if len(getattr(self, key)) != self.channels:
                raise ValueError(
                    f"data.{key} has {len(getattr(self, key))} values but data.channels={self.channels}: "
                    "give one per channel"
                )
        return self


class OptimizerSchema(_Node):
    lr: Positive
    weight_decay: NonNegative = 0.0
    momentum: Annotated[float, Interval(ge=0, lt=1)] = 0.0


class LrScalingSchema(_Node):
    rule: LrScalingRule
    reference_batch: PositiveInt


class OptimSchema(_Node):
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


class TrainerSchema(_Node):
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


class MetricsSchema(_Node):
    enabled: bool
    every_n_epochs: PositiveInt
    lidar_images: Annotated[int, Ge(2)]
    lidar_views: Annotated[int, Ge(2)]
    final_lidar_images: Annotated[int, Ge(2)]
    final_lidar_views: Annotated[int, Ge(2)]
    lidar_delta: Positive
    lidar_eps: Positive
    knn_every_n_epochs: NonNegativeInt


class CollapseSchema(_Node):
    rankme_share: Probability
    probe_chance_margin: NonNegative
    after_epochs: PositiveInt


class EvalSchema(_Node):
    online_probe: bool
    online_probe_lr: Positive
    knn_k: PositiveInt
    knn_temperature: Positive
    probe_Cs: Annotated[list[Positive], MinLen(1)]
    probe_val_fraction: OpenFraction
    probe_max_iter: PositiveInt
    baselines: list[Literal["random_init", "raw_pixels"]]  # the rows build.final_evaluation adds
    layers: list[int]  # backbone stages evaluated like the final features (selfsup/eval/layers.py)
    collapse: CollapseSchema
    stop_on_collapse: bool
    metrics: MetricsSchema


class AugmentSchema(_Node):
    views: Annotated[int, Ge(2)]  # every method compares at least two views of an image


class SweepSchema(_Node):
    """The keys every job of a sweep shares, checked once before the sweep starts."""

    objective: Objective  # the value train.py returns to a sweeper (selfsup/objective.py)


class RunSchema(SweepSchema):
    """The keys every run reads besides its components'."""

    seed: NonNegativeInt
    resume: str
    checkpoint_every_n_steps: PositiveInt | None = None
    data: DataSchema
    optim: OptimSchema
    trainer: TrainerSchema
    eval: EvalSchema
    augment: AugmentSchema


class FinetuneSchema(_Node):
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


def check_finetune_schema(cfg: DictConfig) -> None:
    """:func:`check_schema` for ``configs/finetune.yaml``: :class:`FinetuneSchema` (a top-level key it
    does not declare, such as ``+num_classes=5``, is refused: nothing would read it), then the
    ``selfsup`` components in it (the data splits)."""
    unknown = [str(k) for k in cfg if str(k) not in FinetuneSchema.model_fields and str(k) != "hydra"]
    if unknown:
        raise ConfigError(
            f"{unknown[0]}: finetune.py has no such key (it reads {', '.join(FinetuneSchema.model_fields)}); "
            "the number of classes comes from the data option"
        )
    check_schema(cfg, FinetuneSchema)


def check_schema(cfg: DictConfig, schema: type[_Node] | None = None) -> None:
    """Raise a one-line :class:`ConfigError` for the first value of ``cfg`` its declared type refuses.

    Checks ``schema`` (:class:`RunSchema` unless given), then every ``selfsup`` component node
    against its signature.
    """
    _check(cfg, schema or RunSchema)
    for key, node in _component_nodes(cfg, ""):
        _check_component(cfg, key, node)


def missing_keys(node: Any, prefix: str = "") -> list[str]:
    """Dotted keys left ``???`` (required) in ``node``; an interpolation of one is not reported again."""
    found: list[str] = []
    if isinstance(node, DictConfig):
        for key in node:
            child = node._get_node(key)
            if str(key) != "hydra" and child is not None:
                found += [f"{prefix}{key!s}"] if child._is_missing() and not child._is_interpolation() else []
                found += missing_keys(child, f"{prefix}{key!s}.")
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            found += missing_keys(node._get_node(i), f"{prefix.rstrip('.')}[{i}].")
    return found


def check_sweep(cfg: DictConfig) -> None:
    """:func:`check_schema` for the keys no job of a sweep changes (:class:`SweepSchema`): a
    mistyped ``objective`` stops a sweep before its first job."""
    _check(cfg, SweepSchema)


def _check(cfg: DictConfig, schema: type[_Node]) -> None:
    plain = {k: _resolved(cfg, k) for k in schema.model_fields if k in cfg}
    try:
        schema.model_validate(plain)
    except ValidationError as e:
        raise _config_error(cfg, "", e) from None


def _component_nodes(node: Any, prefix: str) -> list[tuple[str, DictConfig]]:
    """``(dotted key, node)`` of every node with a ``selfsup`` ``_target_``, outermost first."""
    found: list[tuple[str, DictConfig]] = []
    if isinstance(node, DictConfig):
        target = node._get_node("_target_", throw_on_missing_key=False) if "_target_" in node else None
        if target is not None and str(target._value()).startswith("selfsup."):
            found.append((prefix.rstrip("."), node))
        for key in node:
            if str(key) != "hydra":
                found += _component_nodes(node._get_node(key), f"{prefix}{key!s}.")
    elif isinstance(node, ListConfig):
        for i, child in enumerate(node):
            found += _component_nodes(child, f"{prefix.rstrip('.')}[{i}].")
    return found


def _check_component(cfg: DictConfig, key: str, node: DictConfig) -> None:
    target = str(node._target_)
    params, open_ended = _parameters(target)
    for name in node:
        name = str(name)
        if name.startswith("_") and name.endswith("_"):
            continue
        full = f"{key}.{name}"
        if name not in params:
            if open_ended:
                continue
            raise ConfigError(f"{full}: {target} has no argument {name!r}; it accepts {sorted(params)}")
        child = node._get_node(name)
        if isinstance(child, DictConfig) and "_target_" in child:
            continue  # a component of its own, checked on its own
        for adapter in params[name]:
            try:
                adapter.validate_python(_resolved(cfg, full), strict=True)
            except ValidationError as e:
                raise _config_error(cfg, full, e) from None


@functools.cache
def component_annotations(target: str) -> tuple[dict[str, list[Any]], bool]:
    """The named arguments of ``target``, each with its annotation in every signature that
    declares it (a subclass and the parent it forwards to; ``Any`` where one has none), and
    whether it takes arbitrary keywords. A class's ``**kwargs`` are followed up the MRO to its
    parents' ``__init__``; a function's to the class ``fn.kwargs_of`` names."""
    module, _, name = target.rpartition(".")
    obj = getattr(importlib.import_module(module), name)
    classes = obj.__mro__ if inspect.isclass(obj) else getattr(obj, "kwargs_of", object).__mro__
    functions: list[Callable[..., Any]] = [] if inspect.isclass(obj) else [obj]
    functions += [vars(c)["__init__"] for c in classes if "__init__" in vars(c) and c is not object]
    params: dict[str, list[Any]] = {}
    for fn in functions:
        sig = inspect.signature(fn)
        try:
            hints = typing.get_type_hints(fn, include_extras=True)
        except Exception:  # an annotation that cannot be evaluated: names are still checked
            hints = {}
        for p in sig.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name == "self":
                continue
            params.setdefault(p.name, []).append(hints.get(p.name, Any))
        if not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            return params, False
    return params, True


@functools.cache
def _parameters(target: str) -> tuple[dict[str, list[TypeAdapter]], bool]:
    """:func:`component_annotations` with each annotation as a validator (none for one pydantic
    cannot check)."""
    annotations, open_ended = component_annotations(target)
    params = {name: [a for a in map(_adapter, anns) if a is not None] for name, anns in annotations.items()}
    return params, open_ended


def _adapter(annotation: Any) -> TypeAdapter | None:
    try:
        return TypeAdapter(annotation, config=ConfigDict(arbitrary_types_allowed=True))
    except (PydanticSchemaGenerationError, TypeError):
        return None


def _resolved(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, throw_on_missing=True)
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _config_error(cfg: DictConfig, base: str, e: ValidationError) -> ConfigError:
    """One line for the first error: the full key, its value, what is allowed, and where the
    value came from when it is interpolated (``augment.size=4 (from ${data.view.size})``)."""
    errors = e.errors(include_url=False)
    key = _key(base, errors[0]["loc"])
    same = [err for err in errors if _key(base, err["loc"]) == key]  # a union's members: every alternative
    msgs = list(dict.fromkeys(_message(err) for err in same))
    msg = msgs[0] + "".join(", or " + m.removeprefix("must be ") for m in msgs[1:])
    value = same[0]["input"]
    if isinstance(value, dict):  # a check across keys: its message names them
        return ConfigError(msg)
    return ConfigError(f"{key}={value!r}{_interpolation(cfg, key)}: {msg}")


def _key(base: str, loc: tuple[int | str, ...]) -> str:
    key = base
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        elif not _pydantic_tag(str(part)):
            key = f"{key}.{part}" if key else str(part)
    return key


def _message(err: Any) -> str:
    msg = str(err["msg"])
    if msg.startswith("Value error, "):  # our validators' messages
        msg = msg.removeprefix("Value error, ")
        return msg if isinstance(err["input"], dict) else "must be " + msg
    return re.sub(r"^(Input|List|Value|Tuple|Sequence) should", "must", msg)


def _pydantic_tag(part: str) -> bool:
    """A union member's or validator's name in an error location, not a key."""
    return part.startswith(("function-", "union[", "lax-or-strict", "json-or-python", "literal[")) or part in (
        "int",
        "float",
        "str",
        "bool",
        "list[int]",
        "constrained-int",
        "constrained-float",
    )


def _interpolation(cfg: DictConfig, key: str) -> str:
    """`` (from ${data.view.size})`` when ``key``'s value is interpolated, else ''."""
    parent, _, leaf = key.split("[")[0].rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if not isinstance(node, DictConfig) or leaf not in node:
        return ""
    raw = node._get_node(leaf)
    return f" (from {raw._value()})" if raw is not None and raw._is_interpolation() else ""
