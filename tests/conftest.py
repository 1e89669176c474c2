"""Shared fixtures: composing the real train.yaml, tiny settings (debug=fast), fake data roots."""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from selfsup import registry
from selfsup.cli import make_shards as make_shards_cli
from selfsup.cli import make_spectral as make_spectral_cli
from tests import command_server, fake_data, yaml_memo

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
SLURM_LOCAL = ["bash", str(ROOT / "scripts" / "slurm_local.sh")]  # + start|stop|status

# Settings that make any run finish in seconds on a CPU: the debug option users also have,
# configs/debug/fast.yaml (`python train.py debug=fast`). A key given after it still wins.
TINY = ["debug=fast"]


def _as_overrides(node: object, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        return [o for key, value in node.items() for o in _as_overrides(value, f"{prefix}{key}.")]
    value = f"[{','.join(str(v) for v in node)}]" if isinstance(node, list) else str(node)
    return [f"{prefix.rstrip('.')}={value}"]


# The same settings as key=value overrides, read from that file, for a test that drops some of them
# or hands them to a tool that records a run's overrides (scripts/reproduce.py reports them).
FAST_OVERRIDES = _as_overrides(OmegaConf.to_container(OmegaConf.load(CONFIGS / "debug" / "fast.yaml")))

# The cores shared among pytest-xdist's workers (`make test` runs `-n auto`): torch in this process,
# and every command it starts (OMP_NUM_THREADS), uses its worker's share, so two workers on two
# cores do not each run two threads.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = max(1, min(2, (os.cpu_count() or 1) // WORKERS))
if WORKERS > 1:
    os.environ["OMP_NUM_THREADS"] = str(THREADS)
torch.set_num_threads(THREADS)

# Each YAML text parsed once in this process (tests/yaml_memo.py): hundreds of compositions read the
# same config files.
yaml_memo.install()

# `python ...` commands as forks of one process that imported torch, Lightning and selfsup once
# (tests/command_server.py): subprocess.run's arguments and result, without each command's imports.
run_python = command_server.run


@pytest.fixture(scope="session", autouse=True)
def _command_server() -> Iterator[None]:
    yield
    command_server.SERVER.close()


# What Lightning's seed_everything leaves in the environment for the processes it starts. A run in
# one test (train.run in this process) would otherwise seed the next test's DDP ranks: the DDP
# strategy re-seeds every rank from PL_GLOBAL_SEED in its setup, after the module was built.
_SEED_VARIABLES = ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")


@pytest.fixture(autouse=True)
def _no_seed_left_by_an_earlier_test() -> Iterator[None]:
    for name in _SEED_VARIABLES:
        os.environ.pop(name, None)
    yield
    for name in _SEED_VARIABLES:
        os.environ.pop(name, None)


def load_script(relpath: str) -> ModuleType:
    """A script of the repository's ``scripts/`` (a benchmark, the GPU evidence) loaded as a module;
    the commands themselves are modules of ``selfsup.cli``."""
    spec = importlib.util.spec_from_file_location(f"selfsup_script_{Path(relpath).stem}", ROOT / relpath)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def launch(main: Callable[[], object], argv: list[str], monkeypatch, capfd) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    """Run a Hydra app's ``main`` in this process with ``argv`` as the command line (no
    HYDRA_FULL_ERROR): its exit status and everything it printed."""
    monkeypatch.setattr(sys, "argv", ["app.py", *argv])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    GlobalHydra.instance().clear()
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    finally:
        GlobalHydra.instance().clear()
    out = capfd.readouterr()
    return code, out.out + out.err


def free_port() -> int:
    """A TCP port free on this host now (for a gloo rendezvous)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_ranks(worker: Callable[..., None], args: tuple[Any, ...], nprocs: int = 2) -> None:
    """``torch.multiprocessing.spawn(worker, args, nprocs)`` with processes forked from this one,
    which has imported torch and selfsup already (a spawned rank imports them again, for seconds).
    Each rank still runs its own process group (gloo), as a DDP rank does."""
    mp.start_processes(worker, args=args, nprocs=nprocs, join=True, start_method="fork")


_STAND_INS = Path(tempfile.mkdtemp(prefix="selfsup-stand-ins-"))
_CREATOR = os.getpid()


@atexit.register
def _remove_stand_ins() -> None:
    if os.getpid() == _CREATOR:  # not a fork's exit
        shutil.rmtree(_STAND_INS, ignore_errors=True)


def stand_ins(method: str, channels: int = 1) -> list[str]:
    """What ``method=METHOD`` needs beyond its config on a machine with nothing of the user's
    (:meth:`Method.stand_in_overrides`: a teacher file for distillation), made once per process."""
    cls: Any = registry.method_class(method)
    return cls.stand_in_overrides(_STAND_INS, channels)  # type: ignore[no-any-return]


def compose_cfg(overrides: list[str], run_dir: Path | None = None) -> DictConfig:
    """Compose configs/train.yaml as `python train.py` would, with the Hydra config set. A key the
    chosen method requires and the overrides leave unset (``???``) gets its stand-in (:func:`stand_ins`)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
        extra = [
            o
            for o in stand_ins(cfg.hydra.runtime.choices.method, int(cfg.data.channels))
            for parent, _, key in [o.split("=", 1)[0].rpartition(".")]
            if OmegaConf.is_missing(OmegaConf.select(cfg, parent) if parent else cfg, key)
        ]
        if extra:
            cfg = compose(config_name="train", overrides=[*overrides, *extra], return_hydra_config=True)
    if run_dir is not None:
        with read_write(cfg), open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(run_dir)
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.fixture
def composed(tmp_path: Path) -> Iterator[Callable[..., DictConfig]]:
    def make(*overrides: str, tiny: bool = True) -> DictConfig:
        return compose_cfg((TINY if tiny else []) + list(overrides), run_dir=tmp_path / "run")

    yield make
    GlobalHydra.instance().clear()


@pytest.fixture(scope="session")
def data_roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("data")
    roots = {
        # More training images than the default MoCo queue and NNCLR support set (1,024), which must be smaller.
        "fashion_mnist": fake_data.make_fashion_mnist(base / "fmnist", n_train=1100),
        "cifar10": fake_data.make_cifar_pickles(base / "cifar10", 10),
        "cifar100": fake_data.make_cifar_pickles(base / "cifar100", 100, n_train=200, n_test=100),
        "stl10": fake_data.make_stl10(base / "stl10"),
        "imagefolder": fake_data.make_image_folder(base / "folder"),
        "photos": fake_data.make_photos(base / "photos"),  # PHOTOS_DIR: a folder without layout or labels
    }
    # data/spectral: the docs' scripts/make_spectral.py set, small (13 bands, 16 bits, 4 classes)
    assert make_spectral_cli.main([str(base / "spectral"), "--train", "8", "--val", "4"]) == 0
    roots["spectral"] = base / "spectral"
    # data=shards: the image folder written by the docs' scripts/make_shards.py
    assert make_shards_cli.main([str(roots["imagefolder"]), str(base / "shards")]) == 0
    return {**roots, "shards": base / "shards"}


def _slurm_idle() -> bool:
    if shutil.which("sinfo") is None:
        return False
    p = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    return p.returncode == 0 and "idle" in p.stdout.split()


@pytest.fixture(scope="session")
def slurm() -> Iterator[bool]:
    """A running, idle SLURM: the one there is, or one started here once per test session (and stopped
    at its end). Yields whether this session started it (and so may stop and start it)."""
    started = False
    if not _slurm_idle():
        if os.geteuid() != 0:
            pytest.skip("needs root to start SLURM (scripts/slurm_local.sh start), or a running idle SLURM")
        p = subprocess.run([*SLURM_LOCAL, "start"], capture_output=True, text=True)
        assert p.returncode == 0, p.stdout + p.stderr
        started = True
    assert _slurm_idle()
    yield started
    if started:
        subprocess.run([*SLURM_LOCAL, "stop"], capture_output=True, text=True)
