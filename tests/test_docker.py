"""The Dockerfile builds, and `make train` (the quick start) runs inside the image, offline.

Marked `docker`: not in the default run (`make test-docker` runs it). It needs a reachable Docker
daemon (`docker info`) and, to build, the base image (python:3.11-slim) and PyPI; without a
daemon, or where the base image is not there and cannot be pulled, it skips, saying so."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.docker
IMAGE = "selfsup-test:latest"


def _daemon_problem() -> str | None:
    """Why Docker cannot be used here, or None when a daemon answers."""
    if shutil.which("docker") is None:
        return "no `docker` command on PATH"
    try:
        p = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer in 60 s"
    if p.returncode != 0:
        last = (p.stderr.strip() or p.stdout.strip()).splitlines()[-1:] or ["no output"]
        return f"no Docker daemon reachable (`docker info` failed: {last[0]})"
    return None


def _base_image_problem() -> str | None:
    """Why the Dockerfile's base image cannot be had (not present and `docker pull` fails), or None."""
    found = re.search(r"^FROM\s+(\S+)", (ROOT / "Dockerfile").read_text(), flags=re.M)
    assert found, "the Dockerfile has no FROM line"
    base = found.group(1)
    if subprocess.run(["docker", "image", "inspect", base], capture_output=True).returncode == 0:
        return None
    p = subprocess.run(["docker", "pull", base], capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        last = (p.stderr.strip() or p.stdout.strip()).splitlines()[-1:] or ["no output"]
        return f"the base image {base} is not here and cannot be pulled ({last[0]})"
    return None


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    problem = _daemon_problem() or _base_image_problem()
    if problem is not None:
        pytest.skip(problem)
    p = subprocess.run(["docker", "build", "-t", IMAGE, "."], cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert p.returncode == 0, f"docker build failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    yield IMAGE
    subprocess.run(["docker", "image", "rm", "-f", IMAGE], capture_output=True, text=True)


def test_make_train_runs_in_the_image(image: str) -> None:
    """The image's default command is `make train`: it trains on digits without a network (the
    venv was built into the image, so nothing is installed at run time) and prints the table."""
    p = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", image],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert p.returncode == 0, f"{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    for row in ("| pretrained |", "| random_init |", "| raw_pixels |"):
        assert row in p.stdout, p.stdout[-3000:]
    assert "run directory: runs/" in p.stdout
    assert "pip install" not in p.stdout + p.stderr  # the stamp held: no reinstall at run time
