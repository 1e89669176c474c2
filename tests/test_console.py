"""The `selfsup` command (selfsup/cli/): one command per module of selfsup/cli, a run from any folder
(the configs come with the package), and a wheel that holds the configs and the entry point."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from selfsup.cli import COMMANDS
from tests.conftest import CONFIGS, ROOT, TINY
from tests.test_readme import readme_commands
from tests.test_train_options import assert_complete_run_dir

SELFSUP = Path(sys.executable).with_name("selfsup")  # the console script `make install` put beside this Python


def test_every_module_of_selfsup_cli_is_a_listed_command() -> None:
    modules = {p.stem.replace("_", "-") for p in (ROOT / "selfsup" / "cli").glob("*.py") if p.stem != "__init__"}
    assert modules == set(COMMANDS)
    p = subprocess.run([SELFSUP, "--help"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and all(f"  {c} " in p.stdout for c in COMMANDS), p.stdout
    p = subprocess.run([SELFSUP, "fit"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stderr.splitlines() == [
        f"error: selfsup fit: no such command; expected one of {', '.join(COMMANDS)}"
    ], p.stderr
    p = subprocess.run([SELFSUP, "export", "--help"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.startswith("usage: selfsup export "), p.stdout


@pytest.mark.readme  # a documented command, run for real: make test-readme (CI runs it)
def test_the_docs_selfsup_commands_run_outside_the_checkout(tmp_path: Path) -> None:
    """docs/getting-started.md's `selfsup train` (tiny) and `selfsup export` commands, then `selfsup
    collect`, in a folder that is not the checkout: the configs come from the package."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run_dir = tmp_path / "runs" / "NAME"
    train = next(c for c in readme_commands() if c.startswith("selfsup train"))
    argv = [SELFSUP, *shlex.split(train)[1:], *TINY, "eval.baselines=[]", f"hydra.run.dir={run_dir}"]
    p = subprocess.run(argv, cwd=elsewhere, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert_complete_run_dir(run_dir)
    assert (run_dir / "train.log").is_file() and not any(elsewhere.iterdir())
    export = next(c for c in readme_commands() if c.startswith("selfsup export"))
    argv = [SELFSUP, *shlex.split(export.replace("runs/", f"{tmp_path}/runs/"))[1:]]
    p = subprocess.run(argv, cwd=elsewhere, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0 and (tmp_path / "runs" / "NAME-timm" / "model.safetensors").is_file(), p.stderr[-3000:]
    p = subprocess.run([SELFSUP, "collect", str(tmp_path / "runs")], cwd=elsewhere, capture_output=True, text=True)
    assert p.returncode == 0 and "| byol | 1 |" in p.stdout, p.stdout + p.stderr


def test_the_wheel_holds_every_config_and_the_command(tmp_path: Path) -> None:
    """What the docs' `pip install .` installs: the wheel pip builds from the checkout (here from a copy
    of it, as pip builds in the source folder, with this environment's setuptools)."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "selfsup", src / "selfsup", symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(CONFIGS, src / "configs")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src)
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path)]
    cmd.append(str(src))
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    (wheel,) = tmp_path.glob("selfsup-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {f"selfsup/configs/{p.relative_to(CONFIGS).as_posix()}" for p in CONFIGS.rglob("*.yaml")}
    assert configs <= names, sorted(configs - names)
    assert {"selfsup/cli/__init__.py", "selfsup/cli/train.py", "selfsup/__main__.py"} <= names
    (entry_points,) = (n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "selfsup = selfsup.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    assert not any(n.startswith(("tests/", "scripts/")) for n in names)
