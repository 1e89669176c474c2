#!/usr/bin/env python
"""Every GPU figure of the project in one run: a markdown report and a JSON of the same.

    bash scripts/gpu_evidence.sh OUT_DIR              # on a GPU machine (installs wheelhouse/ first)
    python scripts/gpu_evidence.py OUT_DIR --dry-run  # the same parts, tiny, on the CPU

The parts, each a subprocess with its own time limit (a part that fails or runs out of time is
reported with its last lines, and the next one starts):

1. ``bench_train.py gpu``: ResNet-18 SimCLR steps in 32-true vs bf16 vs bf16 + channels_last vs
   + torch.compile.
2. ``bench_train.py p1``: the framework's step vs a hand-written loop (goal >= 0.95x on a GPU).
3. ``bench_train.py views --device cuda``: the share of a step spent making the views on the GPU
   (goal <= 5 %).
4. ``bench_train.py resident --device cuda --data cifar10``: DataLoader vs ``data.on_device``.
5. ``bench_peers.py --device cuda``: lightly's and stable-pretraining's SimCLR examples beside
   ours on the same GPU (needs the peers: gpu_evidence.sh installs ``wheelhouse-bench/`` into a
   folder of its own, ``--bench-site``, on this part's ``PYTHONPATH`` only; skipped, saying so,
   where they cannot be imported).
6. ``train.py experiment=cifar10_speedrun_short``: time to accuracy on CIFAR-10 (kNN k = 200 and
   the linear probe on the 10,000 test images).
7. ``pytest -m gpu``: every test that needs a GPU.

CIFAR-10 comes from the JPEG pack of ``--datasets`` (``cifar10-jpeg.npz.xz`` and ``cifar10.py``;
default ``../shared/datasets``, else ``shared/datasets``), unpacked once into ``--work`` as decoded
arrays, or from ``--cifar-root``, a folder cifar_splits reads. Nothing here downloads.
``--dry-run`` runs every part on the CPU with tiny settings (a test runs it), so a broken part
shows before a GPU is spent on it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SPEEDRUN = "cifar10_speedrun_short"
# What the speedrun's results.json contributes to the report.
SPEEDRUN_KEYS = ("knn_top1", "linear_top1", "rankme_backbone")
SPEEDRUN_TIMES = ("pretrain_seconds", "eval_seconds", "process_seconds", "epochs", "steps")


@dataclass
class Part:
    """One measurement: its command, how it ended, and the table lines it printed."""

    name: str
    command: list[str]
    limit_s: int
    rc: int | None = None  # None: not run (skipped), with the reason in ``note``
    seconds: float = 0.0
    table: list[str] = field(default_factory=list)
    tail: list[str] = field(default_factory=list)  # the last lines, when it failed
    note: str = ""
    results: dict[str, Any] = field(default_factory=dict)


def _bench(what: str, *args: str) -> list[str]:
    return [sys.executable, str(ROOT / "scripts" / "bench_train.py"), what, *args]


def plan(work: Path, cifar_root: Path, dry: bool) -> list[Part]:
    """The parts, with the GPU's settings or the dry run's (tiny, CPU)."""
    dev = "cpu" if dry else "cuda"
    gpu_size = ["--batch", "512", "--steps", "30", "--warmup", "10"]
    size = ["--tiny", "--batch", "8", "--steps", "2", "--warmup", "1"] if dry else gpu_size
    speedrun = [
        sys.executable,
        str(ROOT / "train.py"),
        f"experiment={SPEEDRUN}",
        f"data.root={cifar_root}",
        f"hydra.run.dir={work / 'speedrun'}",
        "resume=never",
    ]
    if dry:
        speedrun += [
            "trainer.accelerator=cpu",
            "trainer.compile=false",
            "trainer.precision=32-true",  # bf16 convolutions are slow on most CPUs
            "eval.metrics.final_lidar_views=2",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
            "data.batch_size=16",
            "eval.probe_max_iter=50",
        ]
    pytest = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", str(ROOT / "tests")]
    peers = [sys.executable, str(ROOT / "scripts" / "bench_peers.py"), "--device", dev]
    peers += ["--batch", "8", "--steps", "1", "--warmup", "1", "--images", "32"] if dry else gpu_size
    return [
        Part("bench_train.py gpu: precision, channels_last, compile", _bench("gpu", "--device", dev, *size), 240),
        Part("bench_train.py p1: framework vs hand-written loop", _bench("p1", *size), 150),
        Part("bench_train.py views: share of the step making views", _bench("views", "--device", dev, *size), 90),
        Part(
            "bench_train.py resident: DataLoader vs data.on_device",
            _bench("resident", "--device", dev, "--data", "cifar10", "--data-root", str(cifar_root), *size[-6:]),
            120,
        ),
        Part("bench_peers.py: lightly, stable-pretraining, selfsup", peers, 240),
        Part(f"train.py experiment={SPEEDRUN}: time to accuracy", speedrun, 420),
        Part("pytest -m gpu", pytest, 300),
    ]


def cifar_arrays(datasets: Path, work: Path) -> Path:
    """``work/cifar10`` holding ``cifar10.npz`` (decoded uint8 arrays) from the pack in ``datasets``."""
    root = work / "cifar10"
    if (root / "cifar10.npz").is_file():
        return root
    script = datasets / "cifar10.py"
    if not script.is_file():
        raise SystemExit(f"error: no CIFAR-10 pack: {script} is missing (--datasets DIR, or --cifar-root DIR)")
    partial = work / "cifar10.partial"
    cmd = [sys.executable, str(script), str(partial), "--npz", str(partial / "cifar10.npz")]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    partial.rename(root)  # whole or absent: a killed unpack is redone
    return root


def run_part(part: Part, env: dict[str, str]) -> None:
    """Run ``part`` within its limit; keep its table lines (``|`` rows and ``Goal`` lines)."""
    start = time.perf_counter()
    try:
        p = subprocess.run(
            part.command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=part.limit_s, check=False
        )
        part.rc, out = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        part.rc, part.note = 124, f"stopped at its {part.limit_s} s limit"
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
    part.seconds = round(time.perf_counter() - start, 1)
    lines = out.splitlines()
    part.table = [ln for ln in lines if ln.startswith("|") or ln.startswith("Goal") or ln.startswith("GPU goals")]
    if part.rc != 0:
        part.tail = lines[-25:]


def with_site(env: dict[str, str], site: Path | None) -> dict[str, str]:
    """``env`` with ``site`` first on ``PYTHONPATH``."""
    if site is None:
        return env
    return env | {"PYTHONPATH": os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH", "")) if p)}


def peers_missing(env: dict[str, str]) -> str:
    """Why the peer benchmark cannot run with ``env`` ('' when it can)."""
    names = "('lightly', 'stable_pretraining')"
    probe = f"import importlib.util as u; print(' '.join(m for m in {names} if not u.find_spec(m)))"
    p = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False)
    missing = p.stdout.split()
    if missing:
        return f"skipped: {', '.join(missing)} not importable (make wheelhouse-bench; gpu_evidence.sh installs it)"
    return ""


def speedrun_results(work: Path) -> dict[str, Any]:
    path = work / "speedrun" / "results.json"
    if not path.is_file():
        return {}
    r = json.loads(path.read_text())
    out = {k: r["metrics"][k] for k in SPEEDRUN_KEYS} | {k: r[k] for k in SPEEDRUN_TIMES}
    out["eval_share"] = round(r["eval_seconds"] / r["process_seconds"], 4)
    return out


def environment(dry: bool) -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False)
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "device": torch.cuda.get_device_name() if cuda else f"CPU ({os.cpu_count()} cores)",
        "gpus": torch.cuda.device_count() if cuda else 0,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "git": git.stdout.strip() or "unknown",
        "dry_run": dry,
    }


def report(env: dict[str, Any], parts: list[Part]) -> str:
    title = "GPU evidence (dry run, CPU)" if env["dry_run"] else "GPU evidence"
    lines = [
        f"# {title}: {env['device']}, {env['date']}",
        "",
        f"torch {env['torch']}, Python {env['python']}, {env['gpus']} GPU(s), git {env['git'][:12]}.",
        f"Command: `bash scripts/gpu_evidence.sh OUT_DIR{' --dry-run' if env['dry_run'] else ''}`",
    ]
    for p in parts:
        status = "skipped" if p.rc is None else ("ok" if p.rc == 0 else f"FAILED (exit {p.rc})")
        lines += ["", f"## {p.name}", "", f"`{' '.join(_short(c) for c in p.command)}`: {status}, {p.seconds:.0f} s"]
        if p.note:
            lines.append(f"({p.note})")
        if p.results:
            lines += ["", "| " + " | ".join(p.results) + " |", "|" + "---:|" * len(p.results)]
            lines.append("| " + " | ".join(str(v) for v in p.results.values()) + " |")
        if p.table:
            lines += ["", *p.table]
        if p.tail:
            lines += ["", "```", *p.tail, "```"]
    return "\n".join(lines) + "\n"


def _short(arg: str) -> str:
    """An argument as the report shows it: paths inside the repository relative to it."""
    if arg == sys.executable:
        return "python"
    return arg.replace(str(ROOT) + os.sep, "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", type=Path, help="where report.md and evidence.json are written")
    ap.add_argument("--dry-run", action="store_true", help="every part tiny, on the CPU")
    ap.add_argument("--datasets", type=Path, default=None, help="folder of cifar10-jpeg.npz.xz and cifar10.py")
    ap.add_argument("--cifar-root", type=Path, default=None, help="a CIFAR-10 folder cifar_splits reads (no unpack)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/selfsup-gpu-evidence"), help="data and run directories")
    ap.add_argument("--bench-site", type=Path, default=None, help="the peers' packages (bench_peers.py only)")
    ap.add_argument("--only", nargs="*", default=None, help="run only the parts whose name starts with one of these")
    args = ap.parse_args(argv)

    import torch

    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("error: no CUDA GPU here: run on a GPU machine, or with --dry-run")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.cifar_root is None:
        datasets = args.datasets or next(
            (d for d in (ROOT.parent / "shared" / "datasets", ROOT / "shared" / "datasets") if d.is_dir()),
            ROOT.parent / "shared" / "datasets",
        )
        args.cifar_root = cifar_arrays(datasets, args.work)
    env_vars = dict(os.environ, PYTHONUNBUFFERED="1")
    env = environment(args.dry_run)
    parts = plan(args.work, args.cifar_root, args.dry_run)
    if args.only:
        parts = [p for p in parts if any(p.name.startswith(o) for o in args.only)]
    for part in parts:
        peers = part.name.startswith("bench_peers")
        part_env = with_site(env_vars, args.bench_site) if peers else env_vars
        if peers and (why := peers_missing(part_env)):
            part.note = why
        else:
            print(f"[gpu_evidence] {part.name} ...", flush=True)
            run_part(part, part_env)
            if part.name.startswith("train.py"):
                part.results = speedrun_results(args.work)
        print(f"[gpu_evidence] {part.name}: rc={part.rc} in {part.seconds:.0f} s {part.note}", flush=True)
    (args.out_dir / "evidence.json").write_text(json.dumps(env | {"parts": [asdict(p) for p in parts]}, indent=1))
    md = report(env, parts)
    (args.out_dir / "report.md").write_text(md)
    print(md)
    return 0 if all(p.rc in (0, None) for p in parts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
