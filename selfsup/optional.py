"""Packages only one option needs, imported when that option is chosen (pyproject.toml's extras).

A machine with selfsup's runtime alone (a GPU node that installed the offline wheelhouse,
docs/scaling.md "GPU nodes without internet") runs every other option; one that chooses an option whose package
is absent stops before anything is written, with one line naming both::

    error: logger=wandb needs the package wandb: pip install wandb (or selfsup[wandb])

The sweeper and launcher are Hydra plugins: without them Hydra cannot compose the config at all,
so ``train.py`` checks its command line before Hydra starts (:func:`check_command_line`); the
config check checks the composed config's choices too (:func:`check_choices`: options chosen by
an experiment config).

Examples:
    >>> check_choices({"logger": "csv", "data": "digits"})  # nothing optional chosen: no error
    >>> litdata = require("data=shards")  # the module, or MissingPackageError
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType

from selfsup.errors import MissingPackageError


@dataclass(frozen=True)
class Needs:
    """What an option imports: ``module``, installed by pip as ``package``, in selfsup's ``extra``."""

    module: str
    package: str
    extra: str


# group=option -> what it imports. pyproject.toml's extras hold the same packages (a test compares).
OPTIONAL: dict[str, Needs] = {
    "logger=wandb": Needs("wandb", "wandb", "wandb"),
    "sweeper=optuna": Needs("hydra_plugins.hydra_optuna_sweeper", "hydra-optuna-sweeper", "sweep"),
    "launcher=slurm": Needs("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "slurm"),
    "data=shards": Needs("litdata", "litdata", "shards"),
}


# A script's flag -> what it imports (several packages, one extra). pyproject.toml's extras hold them.
FLAGS: dict[str, tuple[Needs, ...]] = {
    "export --onnx": (
        Needs("onnx", "onnx", "onnx"),
        Needs("onnxscript", "onnxscript", "onnx"),  # torch.onnx's exporter
        Needs("onnxruntime", "onnxruntime", "onnx"),  # the check of the written file
    ),
    "reading .dcm files": (Needs("pydicom", "pydicom", "dicom"),),  # DICOM in data=imagefolder, make_shards, embed
}


def require_flag(flag: str) -> None:
    """Refuse ``flag`` (a key of :data:`FLAGS`) in one line naming it and the packages it lacks."""
    missing = [n.package for n in FLAGS[flag] if not installed(n.module)]
    if missing:
        raise MissingPackageError(
            f"{flag} needs the package{'s' if len(missing) > 1 else ''} {', '.join(missing)}: "
            f"pip install {' '.join(missing)} (or selfsup[{FLAGS[flag][0].extra}])"
        )


def _message(option: str) -> str:
    needs = OPTIONAL[option]
    return f"{option} needs the package {needs.package}: pip install {needs.package} (or selfsup[{needs.extra}])"


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (wandb's import takes seconds)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package absent, or a module set to None in sys.modules
        return False


def require(option: str) -> ModuleType:
    """The module ``option`` imports; :class:`MissingPackageError` naming the option and the package
    if it is not installed."""
    needs = OPTIONAL[option]
    if not installed(needs.module):
        raise MissingPackageError(_message(option))
    return importlib.import_module(needs.module)


def check_choices(choices: Mapping[str, object]) -> None:
    """Refuse a config whose chosen options (Hydra's ``runtime.choices``: group -> option) need a
    package that is not installed."""
    check_options(f"{group}={option}" for group, option in choices.items())


def check_command_line(argv: Iterable[str]) -> None:
    """Refuse a command line that chooses an option whose package is not installed, before Hydra
    composes it: ``logger=wandb``, ``+launcher=slurm``, a sweep's ``data=digits,shards``."""
    chosen = []
    for arg in argv:
        group, sep, value = arg.lstrip("+~").partition("=")
        if sep and not arg.startswith("-"):
            chosen += [f"{group}={v.strip()}" for v in value.split(",")]
    check_options(chosen)


def check_options(options: Iterable[str]) -> None:
    for option in options:
        if option in OPTIONAL and not installed(OPTIONAL[option].module):
            raise MissingPackageError(_message(option))
