"""Every option of every config group under configs/, found by walking the folders, composes with
train.yaml and resolves completely: no missing value, no broken interpolation, no `hydra:` key
that does not exist; and every value passes its declared type and range (selfsup.schema). A new
YAML file is covered without touching this test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from selfsup.schema_check import check_schema
from tests.conftest import CONFIGS, compose_cfg

# Values an option leaves required (`???`) on purpose, with the override a user must give.
REQUIRED = {("data", "imagefolder"): ["data.path=/x"], ("data", "shards"): ["data.path=/x"]}
# Set by Hydra's launcher when a job starts, not by composition (hydra.sweep.subdir reads job.num).
JOB_VALUES = {"num": 0, "id": "0"}


def config_groups() -> dict[str, list[str]]:
    """Every folder under configs/ holding YAML files, as a Hydra group path ('augment/preset'), with
    its options (file stems)."""
    groups: dict[str, list[str]] = {}
    for folder in sorted(p for p in CONFIGS.rglob("*") if p.is_dir()):
        options = sorted(f.stem for f in folder.glob("*.yaml"))
        if options:
            groups[folder.relative_to(CONFIGS).as_posix()] = options
    return groups


def _choice_keys() -> dict[str, tuple[str, str]]:
    """For each nested group (a group inside a group's folder, chosen by an option's defaults list,
    e.g. `augment/preset@data.view` chosen by `data`): the override key that selects its option and
    a top-level `group=option` that includes it."""
    found: dict[str, tuple[str, str]] = {}
    for group, options in config_groups().items():
        if "/" in group:
            continue
        for option in options:
            choices = compose_cfg([f"{group}={option}", *REQUIRED.get((group, option), [])]).hydra.runtime.choices
            for key in choices:
                nested = key.split("@", 1)[0]
                if "/" in nested and not key.startswith("hydra/"):
                    found.setdefault(nested, (key, f"{group}={option}"))
    GlobalHydra.instance().clear()
    return found


def _params() -> Iterator[object]:
    for group, options in config_groups().items():
        for option in options:
            yield pytest.param(group, option, id=f"{group}={option}")


@pytest.fixture(scope="module")
def nested_keys() -> dict[str, tuple[str, str]]:
    return _choice_keys()


def overrides_for(group: str, option: str, nested_keys: dict[str, tuple[str, str]]) -> list[str]:
    if "/" not in group:
        return [f"{group}={option}", *REQUIRED.get((group, option), [])]
    assert group in nested_keys, f"configs/{group}/ is chosen by no option of a top-level group"
    key, parent = nested_keys[group]
    parent_group, parent_option = parent.split("=", 1)
    return [parent, *REQUIRED.get((parent_group, parent_option), []), f"{key}={option}"]


def resolve(cfg: DictConfig) -> dict:
    """The config as a job sees it, fully resolved; and the parts of Hydra's node that configs/ sets
    (run and sweep folders, launcher), with the values a launcher sets when the job starts."""
    with read_write(cfg.hydra.job), open_dict(cfg.hydra.job):
        for key, value in JOB_VALUES.items():
            cfg.hydra.job[key] = value
    HydraConfig.instance().set_config(cfg)
    for part in ("run", "sweep", "launcher"):
        OmegaConf.to_container(cfg.hydra[part], resolve=True, throw_on_missing=True)
    with read_write(cfg), open_dict(cfg):
        del cfg["hydra"]
    job = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert isinstance(job, dict)
    return job


def test_the_walk_finds_every_group() -> None:
    groups = config_groups()
    top = {g for g in groups if "/" not in g}
    assert top >= {"method", "loss", "backbone", "head", "augment", "data", "optim", "trainer", "logger"}
    assert {"eval", "launcher", "experiment", "debug", "augment/preset"} <= set(groups)
    assert all(len(options) >= 1 for options in groups.values())


@pytest.mark.parametrize("group,option", _params())
def test_option_composes_and_resolves(group: str, option: str, nested_keys: dict[str, tuple[str, str]]) -> None:
    overrides = overrides_for(group, option, nested_keys)
    cfg = compose_cfg(overrides, run_dir=Path("/tmp/selfsup-run"))
    try:
        choices = cfg.hydra.runtime.choices
        key = group if "/" not in group else nested_keys[group][0]
        assert choices[key] == option, (key, dict(choices))
        job = resolve(cfg)
        check_schema(cfg)  # every value of every option has its declared type and range
    finally:
        GlobalHydra.instance().clear()
    assert job["run_dir"] == "/tmp/selfsup-run"
    if group in job["choices"]:
        assert job["choices"][group] == option


def test_required_values_stay_required() -> None:
    """The documented `???` values are what REQUIRED supplies: resolving without them fails."""
    for (group, option), given in REQUIRED.items():
        cfg = compose_cfg([f"{group}={option}"])
        try:
            with pytest.raises(Exception, match="Missing mandatory value"):
                resolve(cfg)
        finally:
            GlobalHydra.instance().clear()
        assert all("=" in g for g in given)


def test_a_method_config_sets_optimiser_values_under_the_command_line() -> None:
    """train.yaml composes optim before method, so a method's own optimiser value (DINO's AdamW lr)
    wins over the optim option's, and the command line wins over both; other methods keep the
    option's."""
    try:
        lrs = {
            args: compose_cfg(list(args)).optim.optimizer.lr
            for args in [("method=dino",), ("method=dino", "optim.optimizer.lr=5e-4"), ("method=simclr",)]
        }
    finally:
        GlobalHydra.instance().clear()
    assert lrs == {("method=dino",): 2e-3, ("method=dino", "optim.optimizer.lr=5e-4"): 5e-4, ("method=simclr",): 1e-3}
