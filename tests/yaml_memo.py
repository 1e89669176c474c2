"""YAML parsed once per text, for the test processes.

Every run composes its config twice (Hydra reads the mode, then composes for the job) from about
fifty YAML files, and PyYAML's pure-Python parser makes that a tenth of a second or more of each of
the hundreds of runs and compositions in the tests. :func:`install` wraps ``yaml.load`` so that a
text parsed before with the same kind of loader returns a deep copy of that result: the same
object a fresh parse gives (a file whose text changed is parsed anew; a parse that fails is not
remembered). :func:`warm` parses the project's configs and Hydra's own, so that processes forked
afterwards (tests/command_server.py) start with them.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

_parse = yaml.load
_memo: dict[tuple[str, str], Any] = {}


def _load(stream: Any, Loader: Any) -> Any:  # noqa: N803  (yaml.load's own argument name)
    text = stream.read() if hasattr(stream, "read") else stream
    if not isinstance(text, str):  # bytes: yaml detects the encoding itself
        return _parse(text, Loader=Loader)
    # OmegaConf makes a new loader class per call: the same class by its name.
    key = (f"{Loader.__module__}.{Loader.__qualname__}", text)
    if key not in _memo:
        _memo[key] = _parse(text, Loader=Loader)
    return copy.deepcopy(_memo[key])


def install() -> None:
    """Route ``yaml.load`` (OmegaConf's and Hydra's loads) through the memo."""
    yaml.load = _load


def warm(*folders: Path) -> None:
    """Parse every ``*.yaml`` under ``folders`` as OmegaConf loads a config."""
    from omegaconf._utils import get_yaml_loader

    for folder in folders:
        for path in sorted(folder.rglob("*.yaml")):
            try:
                _load(path.read_text(encoding="utf-8"), get_yaml_loader())
            except yaml.YAMLError:
                pass  # a test's deliberately broken file: parsed (and refused) where it is used
