"""The documentation: the configuration reference lists every key of every config, with a type
and range where selfsup.schema declares one and a description for each; a key without one fails
its generation (and with it `make docs`)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig, OmegaConf
from pydantic import BaseModel

from selfsup.schema import FinetuneSchema, RunSchema
from selfsup.tools.config_reference import ENTRY, MissingDescription, config_files, markdown, reference
from tests.conftest import CONFIGS, ROOT


def _leaves(node: Any, prefix: str = "") -> set[str]:
    """The dotted keys of a loaded YAML file's values, as the reference lists them: the defaults
    list and Hydra's `_target_`-style keys left out; a node holding only those is a value."""
    out: set[str] = set()
    for key in node.keys() if isinstance(node, DictConfig) else []:
        key = str(key)
        if (not prefix and key == "defaults") or _hydra_key(key):
            continue
        child = node._get_node(key)
        nested = isinstance(child, DictConfig) and not child._is_none() and not child._is_interpolation()
        if nested and any(not _hydra_key(str(k)) for k in child.keys()):
            out |= _leaves(child, f"{prefix}{key}.")
        else:
            out.add(f"{prefix}{key}")
    return out


def _hydra_key(key: str) -> bool:
    return key.startswith("_") and key.endswith("_")


def _schema_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out |= _schema_keys(ann, f"{prefix}{name}.")
        else:
            out.add(f"{prefix}{name}")
    return out


def test_the_reference_lists_every_key_of_every_config_file() -> None:
    listed: dict[str, set[str]] = {}
    for k in reference():
        listed.setdefault(k.file, set()).add(k.path)
    files = sorted(p.relative_to(CONFIGS).as_posix() for p in CONFIGS.rglob("*.yaml"))
    assert [f.name for f in config_files()] == [*ENTRY, *(f for f in files if f not in ENTRY)]
    for name in files:
        assert listed.get(name, set()) == _leaves(OmegaConf.load(CONFIGS / name)), name


def test_the_reference_lists_every_schema_key_with_its_declared_range() -> None:
    keys = reference()
    train = {k.key for k in keys if k.file != "finetune.yaml"}
    finetune = {k.key for k in keys if k.file in ("finetune.yaml",) or k.file.startswith(("data/", "augment/preset/"))}
    assert _schema_keys(RunSchema) <= train, _schema_keys(RunSchema) - train
    assert _schema_keys(FinetuneSchema) <= finetune, _schema_keys(FinetuneSchema) - finetune
    by_key = {(k.file, k.key): k for k in keys}
    assert by_key[("train.yaml", "seed")].range == "≥ 0"
    assert by_key[("data/digits.yaml", "data.batch_size")].range == "> 0"
    assert by_key[("finetune.yaml", "label_smoothing")].range == "[0, 1)"
    # a component's argument: the type and range its signature declares
    assert by_key[("loss/ntxent.yaml", "loss.temperature")].range == "> 0"
    assert "low ≤ high" in by_key[("augment/simclr.yaml", "augment.crop_scale")].range
    assert by_key[("method/moco.yaml", "method.module.forward_layout")].range == "`joint`, `per_view`"
    # a key only a component argument reads: that argument's type (augment.size: ${data.view.size})
    assert by_key[("augment/preset/px8.yaml", "data.view.size")].range == "> 0"
    assert all(k.meaning for k in keys)


def _copy_configs(tmp_path: Path) -> Path:
    return Path(shutil.copytree(CONFIGS, tmp_path / "configs"))


def test_a_key_without_a_description_fails_the_reference(tmp_path: Path) -> None:
    configs = _copy_configs(tmp_path)
    ntxent = configs / "loss" / "ntxent.yaml"
    lines = ntxent.read_text().splitlines()
    lines = [line.split("#")[0].rstrip() if line.startswith("temperature:") else line for line in lines]
    ntxent.write_text("\n".join(lines) + "\n")
    with pytest.raises(MissingDescription, match=r"configs/loss/ntxent.yaml: loss.temperature"):
        markdown(configs)


def test_a_new_key_without_a_description_fails_the_reference(tmp_path: Path) -> None:
    configs = _copy_configs(tmp_path)
    with (configs / "eval" / "default.yaml").open("a") as f:
        f.write("new_key: 1\n")
    with pytest.raises(MissingDescription, match=r"configs/eval/default.yaml: eval.new_key"):
        reference(configs)
    with (configs / "eval" / "default.yaml").open("a") as f:
        f.write("newer_key: 2                # described\n")
    with pytest.raises(MissingDescription) as raised:
        reference(configs)
    assert "eval.newer_key" not in str(raised.value)


def test_the_hook_puts_the_reference_in_the_configuration_page() -> None:
    import importlib.util

    path = ROOT / "docs" / "hooks" / "config_reference.py"
    spec = importlib.util.spec_from_file_location("config_reference_hook", path)
    assert spec is not None and spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)

    class Page:
        class file:  # noqa: N801
            src_uri = "configuration.md"

    text = (ROOT / "docs" / "configuration.md").read_text()
    out = hook.on_page_markdown(text, Page(), None, None)
    assert hook.MARKER not in out and "| `loss.temperature` |" in out
    with pytest.raises(ValueError, match="marker"):
        hook.on_page_markdown("# no marker", Page(), None, None)
