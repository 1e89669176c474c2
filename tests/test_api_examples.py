"""The public components as an API for a training loop of one's own (docs/api.md): every `Example:` of
their docstrings runs and prints what it says (standard doctest), every component a config names with
`_target_` has one, and the loop of docs/api.md runs."""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import re
from types import ModuleType
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

from tests.conftest import CONFIGS, ROOT

# The packages a user's loop imports from; their public names are their `__all__`.
PACKAGES = ("selfsup.losses", "selfsup.heads", "selfsup.augment", "selfsup.backbones", "selfsup.metrics")
# The configs that name those packages' components: every `_target_` under them must have an example.
COMPONENT_CONFIGS = ("loss", "head", "augment", "backbone")


def _modules() -> list[ModuleType]:
    out = []
    for name in PACKAGES:
        package = importlib.import_module(name)
        out.append(package)
        for info in pkgutil.iter_modules(package.__path__, f"{name}."):
            out.append(importlib.import_module(info.name))
    return out


def _doctests() -> list[doctest.DocTest]:
    """Every docstring example of those modules, each run with only `torch` in its namespace: an
    example imports the component itself, from its package (the public import it documents)."""
    finder = doctest.DocTestFinder(exclude_empty=True)
    found: dict[str, doctest.DocTest] = {}
    for module in _modules():
        for test in finder.find(module, module.__name__, globs={"torch": torch}):
            if test.examples:
                found.setdefault(test.name, test)
    return sorted(found.values(), key=lambda t: t.name)


DOCTESTS = _doctests()


@pytest.mark.parametrize("test", DOCTESTS, ids=[t.name for t in DOCTESTS])
def test_docstring_example_runs_as_written(test: doctest.DocTest) -> None:
    torch.manual_seed(0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report: list[str] = []
    runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


def _targets(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["_target_"]] if isinstance(node.get("_target_"), str) else []
        return own + [t for value in node.values() for t in _targets(value)]
    if isinstance(node, list):
        return [t for value in node for t in _targets(value)]
    return []


def _component_targets() -> list[str]:
    targets: set[str] = set()
    for group in COMPONENT_CONFIGS:
        for path in sorted((CONFIGS / group).rglob("*.yaml")):
            targets |= set(_targets(OmegaConf.to_container(OmegaConf.load(path))))
    return sorted(targets)


def _resolve(target: str) -> Any:
    module, _, name = target.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_every_configured_component_is_public_and_has_a_docstring_example() -> None:
    targets = _component_targets()
    assert "selfsup.losses.NTXent" in targets and "selfsup.augment.make_view_maker" in targets  # the scan works
    tested = {t.name for t in DOCTESTS}
    missing = []
    for target in targets:
        module, _, name = target.rpartition(".")
        # Named by its package (public: in its `__all__`) or by its own module of the package.
        package = module if module in PACKAGES else module.rpartition(".")[0]
        assert package in PACKAGES, f"{target}: a config names a component outside {PACKAGES}"
        if module == package:
            assert name in importlib.import_module(package).__all__, f"{target} is not in {package}.__all__"
        obj = _resolve(target)
        qualified = f"{obj.__module__}.{obj.__qualname__}"
        if "Example:" not in (inspect.getdoc(obj) or "") or qualified not in tested:
            missing.append(target)
    assert not missing, f"components a config names without a docstring `Example:` (>>> lines): {missing}"


def test_every_public_metric_has_a_docstring_example() -> None:
    import selfsup.metrics

    tested = {t.name for t in DOCTESTS}
    missing = [n for n in selfsup.metrics.__all__ if f"{getattr(selfsup.metrics, n).__module__}.{n}" not in tested]
    assert not missing, missing


PYTHON_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```", flags=re.S | re.M)


def test_the_loop_of_docs_api_runs(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = PYTHON_BLOCK.findall((ROOT / "docs" / "api.md").read_text())
    assert blocks, "docs/api.md has no python block"
    torch.manual_seed(0)
    for block in blocks:
        exec(compile(block, "docs/api.md", "exec"), {"__name__": "docs_api"})
    assert re.fullmatch(r"loss \d+\.\d{3}, RankMe \d+\.\d\n", capsys.readouterr().out)
