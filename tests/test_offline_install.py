"""The offline install (docs/scaling.md "GPU nodes without internet"), for real: the docs' `make wheelhouse`
commands build the small bundle for the GPU image, and a fresh venv that holds only torch and
torchvision installs a wheelhouse made for it with `pip install --no-index` (scripts/offline_install.sh),
trains one epoch (and two DDP ranks) with the installed `selfsup` command, and refuses each optional option in one line.

Marked slow (3 min on 2 cores once torch is cached; the first run installs
torch, about 2 min more): it downloads from PyPI, builds a venv and trains in it; `make
test-offline` runs it. Wheels and the torch install are kept in `.cache/offline-install/`
(git-ignored), so a rerun downloads little.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from selfsup.optional import OPTIONAL
from tests.conftest import FAST_OVERRIDES, ROOT
from tests.test_readme import readme_commands

pytestmark = pytest.mark.slow

CACHE = ROOT / ".cache" / "offline-install"
# This machine's pip configuration (an index, find-links, constraints) is left out where the node's
# side runs: there the wheelhouse and what is installed are all there is.
NODE_ENV = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")} | {
    "PIP_CONFIG_FILE": os.devnull,
    "PYTHONUNBUFFERED": "1",
}


def _run(argv: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env or os.environ, capture_output=True, text=True, timeout=900)


def _wheels(folder: Path) -> dict[str, Path]:
    """The folder's wheels by distribution name (``pydantic_core``, ``hydra_core``)."""
    return {w.name.split("-")[0].lower(): w for w in folder.glob("*.whl")}


def test_readme_wheelhouse_commands_bundle_what_the_gpu_image_lacks() -> None:
    """Each `make wheelhouse` command of the docs, for the GPU image's CPython 3.12 and manylinux tags:
    Hydra, OmegaConf, pydantic and selfsup itself, none of what the image has, under 30 MB."""
    cmds = [c for c in readme_commands() if c.startswith("make wheelhouse")]
    assert cmds
    for i, cmd in enumerate(cmds):
        out = CACHE / f"gpu-image-{i}"
        p = _run([*shlex.split(cmd), f"PYTHON={sys.executable}", f"WHEELHOUSE={out}"])
        assert p.returncode == 0, f"{cmd}\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
        wheels = _wheels(out)
        assert {"selfsup", "hydra_core", "omegaconf", "pydantic", "pydantic_core"} <= set(wheels), sorted(wheels)
        assert all("cp312" in w.name for n, w in wheels.items() if n == "pydantic_core"), wheels["pydantic_core"]
        assert not {"torch", "torchvision", "lightning", "timm", "numpy", "scipy", "nvidia_cudnn_cu12"} & set(wheels)
        extras = re.search(r"EXTRAS=(\S+)", cmd)
        chosen = extras.group(1).split(",") if extras else []
        for needs in OPTIONAL.values():  # an extra's package is in the bundle exactly when it was asked for
            assert (needs.package.replace("-", "_") in wheels) == (needs.extra in chosen), (cmd, needs)
        size = sum(w.stat().st_size for w in wheels.values()) / 1e6
        print(f"{cmd}: {len(wheels)} wheels, {size:.1f} MB")
        if not chosen:
            assert size < 30, f"{cmd}: {size:.1f} MB"


@pytest.fixture(scope="module")
def torch_only() -> Path:
    """A folder holding this environment's torch and torchvision, what they need, and pip: nothing
    else. Installed once by pip (from the index this environment's torch came from) and kept."""
    pins = [f"{d}=={importlib.metadata.version(d)}" for d in ("torch", "torchvision", "pip")]
    base = CACHE / ("torch-only-" + "-".join(pins).replace("==", "") + f"-{sysconfig.get_config_var('SOABI')}")
    if not (base / ".complete").exists():
        shutil.rmtree(base, ignore_errors=True)
        p = _run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(base), *pins])
        assert p.returncode == 0, p.stderr[-3000:]
        (base / ".complete").touch()
    return base


def test_a_fresh_venv_with_torch_alone_installs_the_wheelhouse_offline_and_trains(
    torch_only: Path, tmp_path: Path
) -> None:
    # The node: a venv of this Python with torch, torchvision and pip on its path, and nothing else.
    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", "--without-pip", str(venv)]).returncode == 0
    python = venv / "bin" / "python"
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    (Path(site) / "torch_only.pth").write_text(f"{torch_only}\n")
    have = tmp_path / "have.txt"
    p = _run([str(python), "-m", "pip", "list", "--format=freeze"], env=NODE_ENV)
    assert p.returncode == 0 and "torch==" in p.stdout and "lightning" not in p.stdout, p.stdout + p.stderr
    have.write_text(p.stdout)  # as the docs say: the node's own list

    # Here: the wheelhouse for this interpreter and machine (the three target variables empty).
    wheelhouse = CACHE / "fresh-venv"
    p = _run(["make", "wheelhouse", f"PYTHON={sys.executable}", f"WHEELHOUSE={wheelhouse}",
              f"WHEELHOUSE_HAVE={have}", "WHEEL_PYTHON=", "WHEEL_IMPL=", "WHEEL_PLATFORMS="])  # fmt: skip
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    wheels = _wheels(wheelhouse)
    assert {"lightning", "timm", "hydra_core", "selfsup"} <= set(wheels) and not {"torch", "torchvision"} & set(wheels)

    # There: the docs' install command, offline, into the venv.
    install = next(c for c in readme_commands() if c.startswith("bash scripts/offline_install.sh"))
    argv = [str(wheelhouse) if a == "wheelhouse" else a for a in shlex.split(install)]
    p = _run(argv, env=NODE_ENV | {"PYTHON": str(python)})
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    assert f"installed into {venv}" in p.stdout and "selfsup==" in p.stdout and "torch==" not in p.stdout, p.stdout

    # One epoch with the installed wheel's `selfsup` command, in an empty folder: its configs travel in the wheel.
    app = tmp_path / "app"
    app.mkdir()
    selfsup = str(venv / "bin" / "selfsup")
    # The whole epoch at digits' own batch size (5 steps); a short evaluation, without baselines.
    short = [t for t in FAST_OVERRIDES if not t.startswith(("trainer.limit_train_batches=", "data.batch_size="))]
    argv = [selfsup, "train", *short, "eval.baselines=[]", f"hydra.run.dir={tmp_path / 'run'}"]
    p = _run(argv, env=NODE_ENV, cwd=app)
    assert p.returncode == 0, p.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["epochs"] == 1 and results["metrics"]["linear_top1"] > 50, results["metrics"]
    # Two DDP ranks: Lightning starts the second as `python -m selfsup.cli.train ...`, the module the command ran.
    ddp = [selfsup, "train", *FAST_OVERRIDES, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
           "trainer.sync_batchnorm=false", "trainer.precision=32-true", "eval.baselines=[]",
           f"hydra.run.dir={tmp_path / 'ddp'}"]  # fmt: skip
    p = _run(ddp, env=NODE_ENV, cwd=app)
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads((tmp_path / "ddp" / "results.json").read_text())["world_size"] == 2
    where = _run([str(python), "-c", "import selfsup; print(selfsup.__file__)"], env=NODE_ENV, cwd=app)
    assert where.stdout.startswith(site), where.stdout

    # Each optional option, its package absent: one line naming both, and nothing written.
    want_shards = "data=shards needs the package litdata: pip install litdata (or selfsup[shards])"
    for option, needs in OPTIONAL.items():
        run_dir = tmp_path / f"refused-{needs.extra}"
        p = _run([selfsup, "train", option, f"hydra.run.dir={run_dir}"], env=NODE_ENV, cwd=app)
        want = f"{option} needs the package {needs.package}: pip install {needs.package} (or selfsup[{needs.extra}])"
        assert p.returncode == 2 and p.stderr.strip().splitlines() == [f"error: {want}"], p.stderr[-3000:]
        assert not run_dir.exists()
    p = _run([selfsup, "finetune", "data=shards", f"run={tmp_path / 'run'}"], env=NODE_ENV, cwd=app)
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [f"error: {want_shards}"], p.stderr[-3000:]
