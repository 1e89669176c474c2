"""selfsup/cli/show_augment.py (scripts/show_augment.py) and scripts/bench_augment.py, run for real on small inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from selfsup.cli import show_augment
from tests.conftest import CONFIGS, ROOT

OPTIONS = sorted(p.stem for p in (CONFIGS / "augment").glob("*.yaml"))


@pytest.mark.parametrize("option", [*OPTIONS, "multicrop-torchvision"])
def test_show_augment_writes_a_grid_for_every_option(option: str, tmp_path: Path) -> None:
    overrides = [f"augment={option}"] if option in OPTIONS else ["augment=multicrop", "augment.backend=torchvision"]
    out = tmp_path / "v.png"
    assert show_augment.main([*overrides, "--images", "3", "--out", str(out)]) == 0
    img = Image.open(out)
    views = 6 if option.startswith("multicrop") else 2
    side = 16  # digits' views
    assert img.size == ((views + 1) * (side + 1) + 1, 3 * (side + 1) + 1)  # columns x rows, 1 px padding


@pytest.mark.readme  # a documented command, run for real: make test-readme (CI runs it)
def test_bench_augment_reports_both_backends_in_one_run(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_augment.py"), "--images", "64", "--batch", "32",
           "--epochs", "1", "--workers", "1", "--size", "16", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    for name in ("simclr", "randaugment", "multicrop"):
        r = res[name]
        assert r["batched_views_per_s"] > 0 and r["per_sample_views_per_s"] > 0
        assert r["ratio"] == pytest.approx(r["batched_views_per_s"] / r["per_sample_views_per_s"])
    assert res["cutmix"]["batched_views_per_s"] > 0 and res["random_fields"]["batched_views_per_s"] > 0
    assert "| simclr |" in proc.stdout
