"""The registry: the options of ``configs/`` and the classes they name, read from the configs.

A method, loss, augmentation or batch mix exists because its config file does:
``configs/method/NAME.yaml`` names its class (``method.module._target_``) and the ``loss=`` options
it accepts (``method.losses``); ``configs/loss/NAME.yaml`` names its loss (``_target_``); an
``configs/augment/NAME.yaml`` that sets ``mix`` is a batch mix. Nothing else lists them: the
refusals of :mod:`selfsup.methods.base` name what is compatible from here, and the tests that
cover every method, loss and mix (contract, DDP, resume, layout) are parametrised from here, so a
new option is covered by adding its module, its config and its own test.

What a component can do is read from its class, not from a list of names:

- a method uses multi-crop's local views unless its class sets ``local_views_ok = False``;
- it passes a mixed batch's soft targets to its loss unless it sets ``mix_ok = False``, and a loss
  takes them when its ``forward`` has a ``mix`` argument;
- it splits a multi-head projector when it keeps :meth:`~selfsup.methods.base.Method.objective`;
- a loss keeps per-image state when its ``forward`` takes ``index``;
- a method needs a predictor when it sets ``needs_predictor = True``;
- a method needs a backbone's patch tokens (a Vision Transformer) when it sets ``needs_tokens = True``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import cache
from typing import Any

from hydra.utils import get_class
from omegaconf import OmegaConf

from selfsup import CONFIG_DIR


def options(group: str) -> list[str]:
    """The options of config group ``group`` (``configs/GROUP/*.yaml``), sorted."""
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


@cache
def node(group: str, name: str) -> dict[str, Any]:
    """``configs/GROUP/NAME.yaml`` as written (its defaults list not applied, nothing resolved)."""
    loaded = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / group / f"{name}.yaml"), resolve=False)
    assert isinstance(loaded, dict)
    return loaded  # type: ignore[return-value]


def methods() -> list[str]:
    """The ``method=`` options."""
    return options("method")


def method_class(name: str) -> type:
    """The Lightning module class of ``method=NAME``."""
    return get_class(node("method", name)["method"]["module"]["_target_"])


def method_losses(name: str) -> list[str]:
    """The ``loss=`` options ``method=NAME`` accepts, its default first."""
    return list(node("method", name)["method"]["losses"])


def methods_accepting(loss: str) -> list[str]:
    """The ``method=`` options that accept ``loss=LOSS``."""
    return [m for m in methods() if loss in method_losses(m)]


def losses() -> list[str]:
    """The ``loss=`` options."""
    return options("loss")


def loss_class(name: str) -> type:
    """The loss module class of ``loss=NAME``."""
    return get_class(node("loss", name)["_target_"])


def mixes() -> list[str]:
    """The ``augment=`` options that mix a view of the batch (they set ``mix``)."""
    return [a for a in options("augment") if node("augment", a).get("mix") is not None]


def forward_takes(cls: type, argument: str) -> bool:
    """Whether ``cls.forward`` has a parameter ``argument``."""
    return argument in inspect.signature(cls.forward).parameters  # type: ignore[attr-defined]


def pairs(accepts: Callable[[Any, Any], bool]) -> str:
    """The registered ``method=M with loss=L|...`` pairs for which ``accepts(method_class,
    loss_class)`` holds, for a refusal that says what would work."""
    found = []
    for m in methods():
        ok = [loss for loss in method_losses(m) if accepts(method_class(m), loss_class(loss))]
        if ok:
            found.append(f"method={m} with loss={'|'.join(ok)}")
    return "; ".join(found) if found else "none registered"


def methods_where(has: Callable[[Any], bool]) -> str:
    """``method=A|B|...``: the registered methods whose class ``has`` the capability."""
    names = [m for m in methods() if has(method_class(m))]
    return f"method={'|'.join(names)}" if names else "none registered"
