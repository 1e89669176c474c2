"""selfsup.schema and selfsup.schema_check: a value of the wrong type or out of range, anywhere in the
composed config, is refused in one line naming the full key, the value and what is allowed. The
component checks come from the real components' signatures (no copy of their types in the test)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from annotated_types import Gt
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from selfsup.errors import ConfigError
from selfsup.schema import Positive
from selfsup.schema_check import _parameters, check_schema
from tests.conftest import compose_cfg

# (overrides, the whole message). Each is one class of mistake a user makes.
REFUSED = [
    (["augment.views=one"], "augment.views='one': must be a valid integer"),
    (["augment.views=2.5"], "augment.views=2.5: must be a valid integer"),
    (["augment.views=0"], "augment.views=0: must be greater than 0"),
    (["augment.views='2'"], "augment.views='2': must be a valid integer"),
    (["optim.optimizer.lr=-1"], "optim.optimizer.lr=-1: must be greater than 0"),
    (["optim.optimizer.lr=0"], "optim.optimizer.lr=0: must be greater than 0"),
    (["optim=sgd", "optim.optimizer.momentum=1.0"], "optim.optimizer.momentum=1.0: must be less than 1"),
    (["data.batch_size=0"], "data.batch_size=0: must be greater than 0"),
    (["data.num_workers=-1"], "data.num_workers=-1: must be greater than or equal to 0"),
    (["data.mean=[0.1,0.2]"], "data.mean has 2 values but data.channels=1: give one per channel"),
    (["augment.flip_p=1.5"], "augment.flip_p=1.5: must be less than or equal to 1"),
    (["augment.blur_p=-0.1"], "augment.blur_p=-0.1: must be greater than or equal to 0"),
    (["augment.crop_scale=[0.9,0.2]"], "augment.crop_scale=[0.9, 0.2]: must be a range [low, high] with low <= high"),
    (
        ["data.view.crop_scale=[0.2,1.5]"],
        "augment.crop_scale[1]=1.5 (from ${data.view.crop_scale}): must be less than or equal to 1",
    ),
    (["augment.jitter=[0.4,0.4]"], "augment.jitter=[0.4, 0.4]: must have at least 4 items after validation, not 2"),
    (["loss.temperature=0"], "loss.temperature=0: must be greater than 0"),
    (["loss=dclw", "loss.weight_scope=all"], "loss.weight_scope='all': must be 'global' or 'local'"),
    (["loss=hcl", "loss.tau_plus=1.0"], "loss.tau_plus=1.0: must be less than 1"),
    (["method=moco", "method.module.queue_size=-5"], "method.module.queue_size=-5: must be greater than 0"),
    (
        ["method=byol", "method.module.base_momentum=1.5"],
        "method.module.base_momentum=1.5: must be less than or equal to 1",
    ),
    (["head.out_dim=0"], "head.out_dim=0: must be greater than 0"),
    (
        ["augment=randaugment", "augment.randaugment.num_ops=-1"],
        "augment.randaugment.num_ops=-1: must be greater than or equal to 0",
    ),
    (
        ["augment.ops=[{_target_:selfsup.augment.RandAugment,num_ops:-1}]"],
        "augment.ops[0].num_ops=-1: must be greater than or equal to 0",
    ),
    (["augment.ops=[3]"], "augment.ops[0]=3: must be an instance of Module"),
    (["optim.scheduler.warmup_epochs=-1"], "optim.scheduler.warmup_epochs=-1: must be greater than or equal to 0"),
    (["optim.lr_scaling.rule=cubic"], "optim.lr_scaling.rule='cubic': must be 'none', 'linear' or 'sqrt'"),
    (["trainer.max_epochs=0"], "trainer.max_epochs=0: must be greater than 0"),
    (
        ["trainer.limit_train_batches=1.5"],
        "trainer.limit_train_batches=1.5: must be a fraction in (0, 1] or a number of batches >= 1, got 1.5",
    ),
    (["trainer.limit_val_batches=-1"], "trainer.limit_val_batches=-1: must be greater than or equal to 0"),
    (
        ["trainer.limit_val_batches=1.5"],
        "trainer.limit_val_batches=1.5: must be 0 (no validation), a fraction in (0, 1] or a number of batches >= 1, "
        "got 1.5",
    ),
    (["eval.knn_k=0"], "eval.knn_k=0: must be greater than 0"),
    (["eval.probe_val_fraction=1.0"], "eval.probe_val_fraction=1.0: must be less than 1"),
    (["eval.baselines=[foo]"], "eval.baselines[0]='foo': must be 'random_init' or 'raw_pixels'"),
    (["eval.metrics.lidar_views=1"], "eval.metrics.lidar_views=1: must be greater than or equal to 2"),
    (["eval.collapse.rankme_share=2"], "eval.collapse.rankme_share=2: must be less than or equal to 1"),
    (["eval.stop_on_collapse=maybe"], "eval.stop_on_collapse='maybe': must be a valid boolean"),
    (["seed=-1"], "seed=-1: must be greater than or equal to 0"),
    (
        ["data=imagefolder", "data.path=/x", "data.on_bad_image=ignore"],
        "data.splits.on_bad_image='ignore' (from ${data.on_bad_image}): must be 'error' or 'skip'",
    ),
]


@pytest.fixture
def compose() -> Iterator[object]:
    def make(*overrides: str) -> DictConfig:
        return compose_cfg(list(overrides))

    yield make
    GlobalHydra.instance().clear()


@pytest.mark.parametrize("overrides,message", REFUSED, ids=[" ".join(o) for o, _ in REFUSED])
def test_a_bad_value_is_refused_in_one_line_naming_the_key(compose, overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        check_schema(compose(*overrides))
    assert str(e.value) == message
    assert "\n" not in str(e.value)


def test_the_defaults_pass(compose) -> None:
    check_schema(compose())


@pytest.mark.parametrize("zero", ["0", "0.0"])
def test_no_validation_is_a_valid_setting(compose, zero: str) -> None:
    """``trainer.limit_val_batches=0``: Lightning's way to skip validation (what it turns off:
    selfsup.build.no_validation_warning)."""
    check_schema(compose(f"trainer.limit_val_batches={zero}"))


def test_precision_lists_what_lightning_accepts(compose) -> None:
    with pytest.raises(ConfigError, match=r"^trainer\.precision=17: must be 64, 32 or 16, or .*'bf16-mixed'"):
        check_schema(compose("trainer.precision=17"))


def test_an_argument_the_component_does_not_take_is_named(compose) -> None:
    with pytest.raises(ConfigError) as e:
        check_schema(compose("+augment.foo=1"))
    assert str(e.value).startswith("augment.foo: selfsup.augment.make_view_maker has no argument 'foo'; it accepts [")
    assert "'crop_scale'" in str(e.value)  # the view pipeline's arguments, behind make_view_maker's **kwargs


def test_a_subclass_and_its_parent_both_constrain_an_argument() -> None:
    """NTXent declares `temperature: float` and forwards it to ContrastiveLoss (`Positive`): both
    signatures' types apply, so the parent's range is not lost behind the subclass's."""
    params, open_ended = _parameters("selfsup.losses.NTXent")
    assert not open_ended
    constraints = [m for a in params["temperature"] for m in getattr(a._type, "__metadata__", ())]
    assert Gt(0) in constraints
    assert {"drop_top_k", "mochi_hardest", "ft_pos_alpha"} <= set(params)  # the parent's options


def test_the_constrained_types_are_the_components_own() -> None:
    """The schema reads types from signatures: a component annotated with Positive is checked."""
    import inspect
    import typing

    from selfsup.losses._contrastive import ContrastiveLoss

    hints = typing.get_type_hints(ContrastiveLoss.__init__, include_extras=True)
    assert hints["temperature"] == Positive
    assert "temperature" in inspect.signature(ContrastiveLoss.__init__).parameters


def test_messages_name_no_pydantic_internals(compose) -> None:
    for overrides, _ in REFUSED:
        try:
            check_schema(compose(*overrides))
        except ConfigError as e:
            assert not re.search(r"pydantic|function-after|lax-or-strict|union\[", str(e)), str(e)
