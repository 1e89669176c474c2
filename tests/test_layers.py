"""The import layers of selfsup (pyproject.toml's [tool.importlinter]): `lint-imports` keeps every
contract on this checkout, and fails on an upward import or a circle."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")  # the dev extra's, beside this Python


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the selfsup/ of ``root``, with ``root``'s pyproject.toml (it puts its working
    directory first on sys.path, so that selfsup/ is the one analysed); its stdout without colours
    (some versions colour it even into a pipe)."""
    assert LINT_IMPORTS.is_file(), f"{LINT_IMPORTS} not found: make install (pip install -e '.[dev]')"
    cmd = [str(LINT_IMPORTS), "--no-cache"]
    p = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300)
    p.stdout = re.sub(r"\x1b\[[0-9;]*m", "", p.stdout)
    return p


def test_every_import_contract_is_kept() -> None:
    p = lint_imports(ROOT)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    assert "BROKEN" not in p.stdout and " 0 broken" in p.stdout, p.stdout[-2000:]


def _copy(tmp_path: Path) -> Path:
    """This checkout's selfsup/ and pyproject.toml in ``tmp_path``."""
    shutil.copytree(ROOT / "selfsup", tmp_path / "selfsup", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def test_an_upward_import_breaks_the_layers(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "selfsup" / "losses" / "upward.py").write_text("from selfsup.methods import Method\n")
    p = lint_imports(root)
    assert p.returncode != 0 and "Layers: the pipeline over eval over methods over the components BROKEN" in p.stdout
    assert "selfsup.losses.upward -> selfsup.methods" in p.stdout, p.stdout[-2000:]


def test_a_circle_breaks_the_acyclic_contract(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    module = root / "selfsup" / "losses" / "_feature_transform.py"  # ntxent imports it (by way of _pairs)
    module.write_text(module.read_text() + "\nfrom selfsup.losses import ntxent\n")
    p = lint_imports(root)
    assert p.returncode != 0 and "No import cycle between the modules of any package of selfsup BROKEN" in p.stdout
    assert "No cycles are allowed in selfsup.losses" in p.stdout, p.stdout[-2000:]
