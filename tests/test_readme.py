"""Every command in the shell code blocks of README.md and of every docs page (docs/**/*.md) composes and
is run here (with tiny settings where it trains). Commands are read from the code blocks only: rewording
the prose around them, or moving a command from one page to another, changes nothing here, and a new
command in a block is picked up (and must be handled below)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf, open_dict, read_write

from selfsup.finetune import PROTOCOLS
from tests.conftest import FAST_OVERRIDES, ROOT, TINY, compose_cfg, run_python
from tests.test_configs import resolve

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "WANDB_MODE": "offline"}
# Test runners: CI runs `make test` itself, and running either from a test would recurse.
RUNNERS = {"make test", "make test-slow"}
SHARED_CIFAR = ROOT.parent / "shared" / "datasets" / "cifar10.py"


# An untitled shell block. A titled one (```bash title="try it"```) belongs to a worked example of
# docs/extending.md, whose files do not exist here: tests/test_extending.py runs it in a copy.
SHELL_BLOCK = re.compile(r"^```(?:bash|sh|shell|console)[ \t]*\n(.*?)^```", flags=re.S | re.M)


def doc_pages() -> list[Path]:
    """README.md, then the docs pages in the order of mkdocs.yml's nav, then any other Markdown page
    under docs/ (sorted by path)."""
    nav = re.findall(r"^\s+- [^:\n]+: ([\w/.-]+\.md)$", (ROOT / "mkdocs.yml").read_text(), flags=re.M)
    listed = [ROOT / "docs" / page for page in nav if (ROOT / "docs" / page).is_file()]
    return [ROOT / "README.md", *listed, *sorted(set((ROOT / "docs").rglob("*.md")) - set(listed))]


def readme_commands() -> list[str]:
    """The commands of the shell code blocks of README.md and the docs pages (:func:`doc_pages`), in
    order, each once: blank lines and comments dropped, a `$ ` prompt stripped, backslash-continued
    lines joined into one command."""
    cmds: list[str] = []
    for block in (b for page in doc_pages() for b in SHELL_BLOCK.findall(page.read_text())):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = line.strip().removeprefix("$ ").strip()
            if line and not line.startswith("#") and line not in cmds:
                cmds.append(line)
    return cmds


def train_commands() -> list[str]:
    return [c for c in readme_commands() if c.startswith("python train.py")]


def finetune_commands() -> list[str]:
    return [c for c in readme_commands() if c.startswith("python finetune.py")]


# A README finetune.py command, shortened: one epoch on small subsets (as tests/test_finetune.py).
FINETUNE_SHORT = ["epochs=1", "warmup_epochs=0", "batch_size=32", "max_train_samples=64", "max_test_samples=64"]


def _value(args: list[str], key: str) -> str | None:
    """The value a command's ``key=value`` argument sets, or None where it sets none."""
    return next((a.split("=", 1)[1] for a in args if a.startswith(f"{key}=")), None)


def _finetune_argv(cmd: str, run_dir: Path, out: Path, data_roots: dict[str, Path]) -> list[str]:
    shortened = {a.split("=", 1)[0] for a in FINETUNE_SHORT}
    args = [a.replace("RUN_DIR", str(run_dir)) for a in shlex.split(cmd)[2:] if a.split("=", 1)[0] not in shortened]
    data = _value(args, "data")
    roots = [f"data.root={data_roots[data]}"] if data in ("fashion_mnist", "cifar10", "cifar100", "stl10") else []
    return [sys.executable, "finetune.py", *args, *FINETUNE_SHORT, *roots, f"hydra.run.dir={out}"]


def sweep_points(args: list[str]) -> list[list[str]]:
    """The override lists a `train.py -m` command runs: one per combination of comma-separated values
    (a list value such as `[10,4]` is one value)."""
    points: list[list[str]] = [[]]
    for a in args:
        key, _, value = a.partition("=")
        values = value.split(",") if "=" in a and "," in value and not value.startswith(("[", "{")) else None
        points = [[*p, f"{key}={v}"] for p in points for v in values] if values else [[*p, a] for p in points]
    return points


def _run(argv: list[str], timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return run_python(argv, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)


# The method and objective tables' sweeps run one seed here: each method with each of its losses is
# trained by tests/methods/test_contract.py already, and three seeds would repeat the same runs.
ONE_SEED_SWEEPS = (
    "hydra.sweep.dir=multirun/methods_",
    "hydra.sweep.dir=multirun/objectives_",
    "hydra.sweep.dir=multirun/spectral",
)
# Tables whose own batch size and step budget give the fake data sets here no step: TINY's win.
TINY_BUDGET = (*ONE_SEED_SWEEPS, "hydra.sweep.dir=multirun/fashion_baselines", "data.path=data/spectral")
BUDGET_KEYS = ("data.batch_size=", "trainer.limit_train_batches=")
# Where the README's named sweeps (hydra.sweep.dir=multirun/...) run, below the test's tmp_path.
SWEEPS = "sweeps"
# The rows of README's objectives table: one sweep folder each.
OBJECTIVE_ROWS = (
    "ntxent",
    "hcl",
    "align_uniform",
    "isogclr",
    "amcl",
    "drop_top_k",
    "mochi",
    "ft",
    "mixup",
    "resizemix",
)


# The sweep folders a `collect.py --baselines` command reads: their runs keep the baseline rows that
# TINY (debug=fast) leaves out.
BASELINE_SWEEPS = tuple(
    shlex.split(c)[2] for c in readme_commands() if c.startswith("python scripts/collect.py") and "--baselines" in c
)


def _train_argv(cmd: str, out: Path, data_roots: dict[str, Path]) -> list[str]:
    args = shlex.split(cmd)[2:]
    if "PHOTOS_DIR" in cmd:  # the README's unlabelled-folder command: the fake photo folder
        args = [a.replace("PHOTOS_DIR", str(data_roots["photos"])) for a in args]
    if "data.path=data/spectral" in cmd:  # docs/beyond-rgb.md: the generated set, small
        args = [a.replace("data/spectral", str(data_roots["spectral"])) for a in args]
    if any(t in cmd for t in ONE_SEED_SWEEPS):
        args = ["seed=0" if a.startswith("seed=") else a for a in args]
    if any(t in cmd for t in TINY_BUDGET):
        args = [a for a in args if not a.startswith(BUDGET_KEYS)]
    data = _value(args, "data")
    roots = [f"data.root={data_roots[data]}"] if data in ("fashion_mnist", "cifar10", "cifar100", "stl10") else []
    if data == "shards":  # the fake image folder's shards (what the README's make_shards.py command writes)
        args = [a for a in args if not a.startswith("data.path=")]
        roots = [f"data.path={data_roots['shards']}", "data.image_size=32", "data.view.size=24"]
    # TINY (debug=fast) shortens the run; a key the command sets itself (a swept value, say) wins over
    # it, except the epochs, which are TINY's.
    kept = [a for a in args if not a.startswith("trainer.max_epochs=")]
    if any(sweep in cmd for sweep in BASELINE_SWEEPS) and "eval.baselines=" not in cmd:
        kept.append("eval.baselines=[random_init,raw_pixels]")
    where = f"hydra.sweep.dir={out}" if "-m" in args else f"hydra.run.dir={out}"
    return [sys.executable, "train.py", *kept, *TINY, *roots, where]


def test_every_readme_command_is_handled() -> None:
    for cmd in readme_commands():
        assert (
            cmd in RUNNERS
            or cmd == "make train"
            or cmd == "make lint"
            or cmd.startswith(
                (
                    "python train.py",
                    "python finetune.py",
                    "python scripts/linear_probe.py",
                    "python scripts/collect.py",
                    "python scripts/select_runs.py",
                    "python scripts/export.py",
                    "python scripts/embed.py",
                    "python scripts/show_augment.py",
                    "python scripts/reproduce.py",
                    "python scripts/make_shards.py",
                    "python scripts/make_spectral.py",
                    "mkdir -p data/cifar10 && tar -xzf cifar-10-python.tar.gz",  # test_the_cifar10_release_command
                    "sudo scripts/slurm_local.sh",  # tests/test_slurm.py
                    "bash scripts/gpu_evidence.sh",  # tests/test_gpu_evidence.py (its dry run)
                    "make wheelhouse",  # tests/test_offline_install.py
                    "bash scripts/offline_install.sh",  # tests/test_offline_install.py
                    "pip install .",  # tests/test_console.py (the wheel it builds)
                    "selfsup train",  # tests/test_console.py
                    "selfsup export",  # tests/test_console.py
                )
            )
        ), f"README or docs command without a test: {cmd}"


@pytest.mark.parametrize("cmd", train_commands())
def test_readme_train_command_composes(cmd: str) -> None:
    """Each `python train.py` command of the README and the docs (each run of a `-m` sweep) composes and
    resolves, the ones run below and the ones run elsewhere or not here (SLURM, the real CIFAR-10) alike."""
    args = [a for a in shlex.split(cmd)[2:] if a not in ("-m", "--multirun")]
    for point in sweep_points(args) if len(args) < len(shlex.split(cmd)[2:]) else [args]:
        try:
            resolve(compose_cfg(point, run_dir=Path("/tmp/selfsup-readme-run")))
        finally:
            GlobalHydra.instance().clear()


@pytest.mark.parametrize("cmd", finetune_commands())
def test_readme_finetune_command_composes(cmd: str) -> None:
    """Each `python finetune.py` command of the README and the docs composes, resolves and passes the schema."""
    from hydra import compose, initialize_config_dir

    from selfsup.schema_check import check_finetune_schema
    from tests.conftest import CONFIGS

    args = [a.replace("RUN_DIR", "/tmp/selfsup-readme-run") for a in shlex.split(cmd)[2:]]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
            cfg = compose(config_name="finetune", overrides=args, return_hydra_config=True)
        with read_write(cfg), open_dict(cfg):
            cfg.hydra.runtime.output_dir = "/tmp/selfsup-readme-finetune"
        resolve(cfg)
        check_finetune_schema(cfg)
    finally:
        GlobalHydra.instance().clear()


@pytest.mark.readme
def test_readme_train_commands(tmp_path: Path, data_roots: dict[str, Path]) -> None:
    last_run: Path | None = None
    digits_run: Path | None = None
    colour_run: Path | None = None  # what embed.py reads IMAGES_DIR (colour images) with
    sweeps: dict[str, Path] = {}  # an unnamed sweep (multirun/DATE/TIME) -> where it ran here
    named_runs: dict[str, Path] = {}  # a named run (hydra.run.dir=runs/NAME) -> where it ran here
    for i, cmd in enumerate(train_commands()):
        for named_run, actual in named_runs.items():  # a later command reads a named run's files
            cmd = cmd.replace(f"={named_run}/", f"={actual}/")
        if "data=cifar10" in cmd and "backbone.name=resnet18" in cmd:
            continue  # run on the real unpacked copy in the slow test below
        if "launcher=slurm" in cmd:
            continue  # run against a real SLURM in tests/test_slurm.py
        if "experiment=cifar10_speedrun" in cmd:
            continue  # a GPU run: on the CPU in tests/test_gpu_evidence.py (scripts/gpu_evidence.py --dry-run)
        named = _value(shlex.split(cmd), "hydra.sweep.dir")
        named_run_dir = _value(shlex.split(cmd), "hydra.run.dir")
        # A named sweep runs at the same path below SWEEPS, so a collect over its parent folder finds it.
        out = tmp_path / SWEEPS / named if named else tmp_path / f"cmd{i}"
        p = _run(_train_argv(cmd, out, data_roots))
        assert p.returncode == 0, f"{cmd}\n{p.stderr[-3000:]}"
        finished = [r.parent for r in out.rglob("results.json")]
        assert finished, f"{cmd}: no finished run under {out}"
        if named_run_dir is not None:
            named_runs[named_run_dir] = out
        if " -m " in cmd and "sweeper=optuna" in cmd:  # a study: its trials, not a grid
            runs = int(_value(shlex.split(cmd), "hydra.sweeper.n_trials") or 8)
            assert len(finished) == runs, f"{cmd}: {len(finished)} runs"
        elif " -m " in cmd:
            runs = len(sweep_points(_train_argv(cmd, out, data_roots)[2:]))  # as run here
            assert len(finished) == runs, f"{cmd}: {len(finished)} runs"
            if named is None:
                sweeps["multirun/DATE/TIME"] = out
        last_run = finished[0]
        if digits_run is None and "name: digits" in (last_run / "config.yaml").read_text():
            digits_run = last_run  # what the README's finetune.py commands start from
        if colour_run is None and OmegaConf.load(last_run / "config.yaml").data.channels == 3:
            colour_run = last_run
    assert last_run is not None and digits_run is not None and colour_run is not None
    for i, cmd in enumerate(finetune_commands()):
        out = tmp_path / f"finetune{i}"
        p = _run(_finetune_argv(cmd, digits_run, out, data_roots))
        assert p.returncode == 0, f"{cmd}\n{p.stderr[-3000:]}"
        results = json.loads((out / "finetune.json").read_text())
        asked = _value(shlex.split(cmd), "protocols")
        expected = set(asked.strip("[]").split(",")) if asked else set(PROTOCOLS)  # the command's, else all
        assert set(results["top1"]) == expected, results["top1"]
        assert all(f"| {protocol} |" in p.stdout for protocol in expected), p.stdout
    for cmd in readme_commands():
        script = cmd.split()[1] if cmd.startswith("python scripts/") else None
        if script is None:
            continue
        if script == "scripts/reproduce.py":
            _run_reproduce(cmd, tmp_path, data_roots)
            continue
        readme_cmd = cmd
        for named, actual in sweeps.items():
            cmd = cmd.replace(named, str(actual))
        cmd = re.sub(r"(?<![\w/])multirun/", f"{tmp_path / SWEEPS}/multirun/", cmd)  # the named sweeps
        cmd = cmd.replace("docs/selection_digits.png", str(tmp_path / "selection.png"))  # not the README's copy
        cmd = cmd.replace("docs/optuna_selection_digits.png", str(tmp_path / "selection.png"))
        cmd = cmd.replace("docs/optuna_history_digits.png", str(tmp_path / "optuna_history.png"))
        cmd = cmd.replace("--out runs/views.png", f"--out {tmp_path / 'views.png'}")
        cmd = cmd.replace("--out runs/exported", f"--out {tmp_path / 'exported'}")
        cmd = cmd.replace("IMAGES_DIR", str(data_roots["imagefolder"] / "val"))
        cmd = cmd.replace("make_spectral.py data/spectral", f"make_spectral.py {tmp_path / 'spectral'}")
        cmd = cmd.replace("--images data/spectral/", f"--images {data_roots['spectral']}/")
        for named_run, actual in named_runs.items():  # a named run (runs/NAME) of a command above
            cmd = re.sub(rf"(?<![\w/]){re.escape(named_run)}(?=[ /]|$)", str(actual), cmd)
        cmd = cmd.replace(
            "make_shards.py /data/imagenet data/shards/imagenet",
            f"make_shards.py {data_roots['imagefolder']} {tmp_path / 'shards'}",
        )
        # embed.py refuses colour images for a grey run (and says so): IMAGES_DIR is the colour folder.
        run_dir = colour_run if script == "scripts/embed.py" else last_run
        argv = [sys.executable, *shlex.split(cmd.replace("RUN_DIR", str(run_dir)))[1:]]
        data = _value(argv, "data")
        if script == "scripts/show_augment.py" and data in data_roots:
            argv.append(f"data.root={data_roots[data]}")
        p = _run(argv)
        assert p.returncode == 0, f"{cmd}\n{p.stderr[-3000:]}"
        if script == "scripts/linear_probe.py":
            assert (last_run / "probe.json").is_file()
        elif script == "scripts/collect.py" and "augment_effect" in readme_cmd:
            for option in ("simclr", "randaugment", "cutmix", "random_fields"):
                assert f"| {option} | 3 |" in p.stdout, p.stdout
        elif script == "scripts/collect.py" and "multirun/objectives_" in readme_cmd:
            for name in OBJECTIVE_ROWS:
                assert f"| {name} | 1 |" in p.stdout, p.stdout  # one seed here (ONE_SEED_SWEEPS)
        elif script == "scripts/collect.py" and "multirun/methods_" in readme_cmd:
            # a row for every method the README's sweeps into that folder name (one seed here: ONE_SEED_SWEEPS)
            folder = shlex.split(readme_cmd)[2]
            swept = {
                m
                for c in train_commands()
                for a in shlex.split(c)
                if f"hydra.sweep.dir={folder}" in c and a.startswith("method=")
                for m in a.split("=", 1)[1].split(",")
            }
            if "--baselines" in readme_cmd:  # the README's table of every method
                assert swept == {p.stem for p in (ROOT / "configs" / "method").glob("*.yaml")}, readme_cmd
            assert swept, readme_cmd
            for method in sorted(swept):
                assert f"| {method} | 1 |" in p.stdout, p.stdout
            if "--baselines" in readme_cmd:
                assert "| random_init |" in p.stdout and "| raw_pixels |" in p.stdout, p.stdout
        elif script == "scripts/collect.py" and "--baselines" in readme_cmd:
            assert "| random_init | 1 |" in p.stdout and "| raw_pixels | 1 |" in p.stdout, p.stdout
        elif script == "scripts/collect.py":
            assert "| ntxent | 3 |" in p.stdout and "| dclw | 3 |" in p.stdout
        elif script == "scripts/select_runs.py":
            assert "Kendall τ" in p.stdout and (tmp_path / "selection.png").is_file()
            if "--history" in readme_cmd:
                assert "Optuna study: " in p.stdout and (tmp_path / "optuna_history.png").is_file(), p.stdout
        elif script == "scripts/export.py":
            out = tmp_path / "exported" if "--out runs/exported" in readme_cmd else run_dir / "export"
            if "runs/spectral" in readme_cmd:
                out = named_runs["runs/spectral"] / "export"
                assert json.loads((out / "config.json").read_text())["bit_depth"] == 16
            assert (out / "model.safetensors").is_file()
            if "--onnx" in readme_cmd:
                assert (out / "model.onnx").is_file() and "checked with onnxruntime" in p.stdout, p.stdout
        elif script == "scripts/embed.py" and "runs/spectral" in readme_cmd:
            assert (named_runs["runs/spectral"] / "embeddings.npy").is_file() and "embedded 16 images" in p.stdout
        elif script == "scripts/embed.py":
            assert (run_dir / "embeddings.parquet").is_file() and "embedded 24 images" in p.stdout, p.stdout
        elif script == "scripts/make_spectral.py":
            assert len(list((tmp_path / "spectral").rglob("*.tif"))) == 640 and "wrote 640 images" in p.stdout
        elif script == "scripts/make_shards.py":
            assert (tmp_path / "shards" / "selfsup_shards.json").is_file() and "wrote 24 + 24 images" in p.stdout
        elif script == "scripts/show_augment.py":
            assert (tmp_path / "views.png").is_file() and "wrote" in p.stdout
            (tmp_path / "views.png").unlink()


def _run_reproduce(cmd: str, tmp_path: Path, data_roots: dict[str, Path]) -> None:
    """A README reproduce command on one loss, batch size and seed of its table, tiny, on the CPU."""
    from selfsup.tools.reproduce import TABLES

    if "--launcher slurm" in cmd:
        return  # tests/test_reproduce.py::test_reproduce_on_slurm, against a real SLURM
    args = shlex.split(cmd)[2:]
    # The command's own train.py overrides (after `--`) are kept; TINY's settings shorten the rest (as
    # key=value overrides: the report names the overrides a run was given).
    own_train = args[args.index("--") + 1 :] if "--" in args else []
    args = args[: args.index("--")] if "--" in args else args
    table = TABLES[args[0]]
    batch = args[args.index("--batches") + 1] if "--batches" in args else str(table.batches[0])
    subset = ["--losses", table.losses[0], "--seeds", "0", "--batches", batch]
    data = "cifar10" if "cifar10" in table.name else "fashion_mnist"
    tiny = [t for t in FAST_OVERRIDES if not t.startswith("data.batch_size=")]
    shortened = {t.split("=", 1)[0] for t in tiny}  # a longer budget is not what this test checks
    train = [*tiny, *(o for o in own_train if o.split("=", 1)[0] not in shortened), f"data.root={data_roots[data]}"]
    if data == "cifar10":
        train += ["trainer=cpu", "data.num_workers=0"]  # the GPU tables' runs, on this CPU
    argv = [sys.executable, "scripts/reproduce.py", *args, *subset, "--dir", str(tmp_path / "reproduce" / table.name),
            "--out", str(tmp_path / "reproduce_out"), "--", *train]  # fmt: skip
    p = _run(argv)
    assert p.returncode == 0, f"{cmd}\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    md = (tmp_path / "reproduce_out" / f"{table.name}.md").read_text()
    assert f"| SimCLR (NT-Xent) | {batch} |" in md, md
    said = re.search(r"1 of 1 runs changed the experiment config with `(.*)`", md)
    assert said and said.group(1).split() == train, f"{cmd}: the report does not name the run's overrides\n{md}"


@pytest.mark.readme
def test_make_train_meets_the_digits_target(tmp_path: Path) -> None:
    """The quick start: defaults on digits; linear probe ≥ 98.0 % on the held-out split (a full run of
    the defaults, about 80 s: with the other README commands, in `make test-readme`)."""
    run_dir = tmp_path / "run"
    p = _run(["make", "train", f"ARGS=hydra.run.dir={run_dir}"], timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "| pretrained |" in p.stdout and "| raw_pixels |" in p.stdout and "| random_init |" in p.stdout
    results = json.loads((run_dir / "results.json").read_text())
    assert results["epochs"] == 30
    assert results["metrics"]["linear_top1"] >= 98.0, results["metrics"]
    assert results["metrics"]["linear_top1"] > results["baselines"]["raw_pixels"]["linear_top1"]
    assert results["metrics"]["linear_top1"] > results["baselines"]["random_init"]["linear_top1"]


# readme: on a clean clone mypy starts without its cache, and `make lint` takes minutes.
@pytest.mark.readme
def test_make_lint() -> None:
    p = _run(["make", "lint"])
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_CIFAR.is_file(), reason="needs ../shared/datasets/cifar10.py beside the checkout")
def test_readme_cifar10_from_the_shared_copy(tmp_path: Path) -> None:
    cmds = readme_commands()
    train = next(c for c in cmds if "data=cifar10" in c and "backbone.name=resnet18" in c)
    root = tmp_path / "cifar10"
    p = _run([sys.executable, str(SHARED_CIFAR), str(root)])  # the real images, as an ImageFolder tree
    assert p.returncode == 0, p.stderr
    assert sum(1 for _ in (root / "test").rglob("*.jpg")) == 10000
    out = tmp_path / "run"
    argv = _train_argv(train, out, {"cifar10": root}) + ["eval.baselines=[]"]
    p = _run(argv, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    assert (out / "results.json").is_file()


def test_the_cifar10_release_command(tmp_path: Path) -> None:
    """The docs' command that unpacks the standard CIFAR-10 python release where data=cifar10 reads
    it, run on a release of the same layout (cifar-10-batches-py/, a few images)."""
    import tarfile

    from selfsup.data.cifar import cifar_splits
    from tests import fake_data

    unpack = {c for c in readme_commands() if c.startswith("mkdir -p data/cifar10 && tar -xzf cifar-10-python")}
    assert len(unpack) == 1, unpack
    release = fake_data.make_cifar_pickles(tmp_path / "release")
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(release / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    p = subprocess.run(["bash", "-c", unpack.pop()], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    splits = cifar_splits(str(tmp_path / "data" / "cifar10"))
    assert (len(splits.train), len(splits.test), splits.num_classes) == (50, 20, 10)
