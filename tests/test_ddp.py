"""trainer=ddp for real: `python train.py` as two gloo processes, and as two torchrun "nodes".

Lightning starts the second process itself (re-running the command with Hydra's run
directory), or reads torchrun's environment; either way rank 0 alone writes the run directory.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, TINY, free_port
from tests.test_train_options import assert_complete_run_dir

pytestmark = pytest.mark.distributed

DDP_CPU = [
    "trainer=ddp",
    "trainer.accelerator=cpu",
    "trainer.sync_batchnorm=false",
    "trainer.precision=32-true",
    "loss=dcl",
    *TINY,
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _check(run_dir: Path) -> None:
    results = assert_complete_run_dir(run_dir)
    assert results["world_size"] == 2
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    logged = {k for r in rows for k, v in r.items() if v}
    assert {"val/online_top1", "val/rankme_backbone", "val/lidar_backbone", "train/loss_epoch"} <= logged
    assert not list(run_dir.rglob("*.tmp")), "a half-written file was left behind"


def test_train_py_with_two_cpu_processes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "train.py", *DDP_CPU, "trainer.devices=2", f"hydra.run.dir={run_dir}"]
    p = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    _check(run_dir)
    assert p.stdout.count("offline evaluation on the held-out split") == 1, "only rank 0 evaluates and reports"
    # Each rank drew its own views, and the checkpoint keeps both ranks' RNG states to resume them.
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    ranks = ckpt["callbacks"]["RNGState"]["ranks"]
    assert len(ranks) == 2 and not torch.equal(ranks[0]["torch"], ranks[1]["torch"])


def test_two_torchrun_nodes_form_one_run(tmp_path: Path) -> None:
    """Two `torchrun --nnodes 2` agents on this host: Lightning reads RANK/WORLD_SIZE from them."""
    run_dir, port = tmp_path / "run", free_port()
    overrides = [*DDP_CPU, "trainer.devices=1", "trainer.num_nodes=2", f"hydra.run.dir={run_dir}"]
    agents = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes=2",
                f"--node_rank={node}",
                "--nproc_per_node=1",
                "--master_addr=127.0.0.1",
                f"--master_port={port}",
                "train.py",
                *overrides,
            ],
            cwd=ROOT,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for node in (0, 1)
    ]
    outs = [a.communicate(timeout=600) for a in agents]
    for a, (out, err) in zip(agents, outs, strict=True):
        assert a.returncode == 0, out[-2000:] + err[-4000:]
    _check(run_dir)
    assert "offline evaluation" in outs[0][0] and "offline evaluation" not in outs[1][0]
