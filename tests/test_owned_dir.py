"""Folders selfsup replaces whole (selfsup/owned_dir.py): never a folder it did not write, one
complete version under the public name at every instant, SIGKILL at each step of a swap, and a
full disk, with the real system calls."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from selfsup.cli import make_shards as make_shards_cli
from selfsup.errors import ConfigError, DiskFullError
from selfsup.owned_dir import MARKER, check_replaceable, recover, replacing
from selfsup.resume import AtomicCheckpointIO
from selfsup.run_dir import atomic_write_text
from tests.conftest import ROOT


def tree(root: Path) -> dict[str, str]:
    """Every file below ``root`` (relative path -> sha256), the marker left out."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MARKER
    }


def write_version(folder: Path, tag: str) -> None:
    (folder / "sub").mkdir()
    (folder / "a.txt").write_text(f"a {tag}")
    (folder / "sub" / "b.bin").write_bytes(tag.encode() * 1000)


def test_a_folder_selfsup_did_not_write_is_never_replaced(tmp_path: Path) -> None:
    mine = tmp_path / "notes"
    (mine / "sub").mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    (mine / "sub" / "table.csv").write_text("1,2\n")
    before = tree(mine)
    for force in (False, True):
        with pytest.raises(ConfigError, match=rf"{mine} exists and was not written by selfsup \(no \.selfsup in it\)"):
            check_replaceable(mine, force=force)
    assert tree(mine) == before
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not written by selfsup"):
        check_replaceable(tmp_path / "file", force=True)
    check_replaceable(tmp_path / "absent", force=False)  # nothing there: nothing to refuse


def test_replacing_swaps_whole_and_an_error_keeps_the_old_version(tmp_path: Path) -> None:
    public = tmp_path / "out"
    with replacing(public, "test") as new:
        write_version(new, "A")
    a = tree(public)
    with pytest.raises(ConfigError, match=r"exists \(written by selfsup\); pass --force"):
        check_replaceable(public, force=False)
    check_replaceable(public, force=True)
    with pytest.raises(RuntimeError, match="half way"), replacing(public, "test") as new:
        (new / "a.txt").write_text("a B")
        raise RuntimeError("half way")
    assert tree(public) == a and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with replacing(public, "test") as new:
        write_version(new, "B")
    assert tree(public)["a.txt"] != a["a.txt"] and (public / MARKER).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# A child process replaces OUT (version A -> B) and SIGKILLs itself at the K-th step: before or after
# one of the system calls the swap makes (renameat2 exchange, rename, rmtree, fsync).
CHILD = textwrap.dedent(
    """
    import os, shutil, signal, sys
    from pathlib import Path
    sys.path.insert(0, {root!r})
    import selfsup.owned_dir as od
    kill_at, exchange = int(sys.argv[1]), sys.argv[2] == "exchange"
    step = [0]

    def pinned(name, fn):
        def call(*args, **kwargs):
            for when in ("before", "after"):
                if when == "after":
                    out = fn(*args, **kwargs)
                if step[0] == kill_at:
                    print(name, when, flush=True)
                    os.kill(os.getpid(), signal.SIGKILL)
                step[0] += 1
            return out
        return call

    od.os = type(os)("os_pinned")
    od.os.__dict__.update(os.__dict__)
    od.os.rename = pinned("rename", os.rename)
    od.os.fsync = pinned("fsync", os.fsync)
    od.shutil = type(shutil)("shutil_pinned")
    od.shutil.__dict__.update(shutil.__dict__)
    od.shutil.rmtree = pinned("rmtree", shutil.rmtree)
    od._exchange = pinned("exchange", od._exchange if exchange else (lambda a, b: False))
    with od.replacing(Path(sys.argv[3]), "test") as new:
        (new / "sub").mkdir()
        (new / "a.txt").write_text("a B")
        (new / "sub" / "b.bin").write_bytes(b"B" * 1000)
    print("done", flush=True)
    """
)


@pytest.mark.parametrize("path", ["exchange", "two renames"])
def test_sigkill_at_every_step_of_a_swap_leaves_one_complete_version(tmp_path: Path, path: str) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(root=str(ROOT)))
    kills = 0
    for k in range(200):
        work = tmp_path / f"k{k}"
        work.mkdir()
        public = work / "OUT"
        with replacing(public, "test") as new:
            write_version(new, "A")
        a = tree(public)
        p = subprocess.run([sys.executable, str(script), str(k), path.split()[0], str(public)],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
        b_expected = {"a.txt": hashlib.sha256(b"a B").hexdigest(), "sub/b.bin": hashlib.sha256(b"B" * 1000).hexdigest()}
        if p.returncode == 0:
            assert "done" in p.stdout and tree(public) == b_expected
            assert sorted(x.name for x in work.iterdir()) == ["OUT"]
            break
        assert p.returncode == -9, p.stderr
        kills += 1
        # At the kill: OUT holds A or B whole, or (only between the two renames) nothing, with A
        # complete at .OUT.old; the next run of the same command cleans up, and OUT is whole.
        if public.exists():
            assert tree(public) in (a, b_expected), (k, p.stdout)
        else:
            assert path == "two renames" and tree(work / ".OUT.old") == a, (k, p.stdout)
        recover(public)
        assert tree(public) in (a, b_expected) and sorted(x.name for x in work.iterdir()) == ["OUT"], (k, p.stdout)
    assert kills >= 6, kills  # every rename, exchange, rmtree and fsync of the swap was a kill point


def test_make_shards_refuses_a_users_folder_and_force_replaces_its_own(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]

    make_shards = make_shards_cli
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit) as e:
        make_shards.main(["data=digits", str(mine), "--force"])
    assert e.value.code == 2 and (mine / "notes.txt").read_text() == "mine" and len(list(mine.iterdir())) == 1
    assert "not written by selfsup" in capsys.readouterr().err
    out = tmp_path / "shards"
    assert make_shards.main(["data=digits", str(out), "--chunk-mb", "0.05"]) == 0
    first = tree(out)
    with pytest.raises(SystemExit):
        make_shards.main(["data=digits", str(out)])
    assert "pass --force to replace it" in capsys.readouterr().err and tree(out) == first
    assert make_shards.main(["data=digits", str(out), "--chunk-mb", "0.05", "--force"]) == 0
    assert tree(out).keys() == first.keys() and sorted(p.name for p in tmp_path.iterdir()) == ["mine", "shards"]


@contextlib.contextmanager
def small_disk(tmp_path: Path, size: str = "4m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``tmp_path/disk`` (needs root): a disk that really fills up."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs (a disk that fills up)")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)], capture_output=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_full_disk_names_the_file_and_keeps_what_was_there(tmp_path: Path) -> None:
    with small_disk(tmp_path) as disk:
        atomic_write_text(disk / "results.json", "{}\n")
        with pytest.raises(DiskFullError, match=rf"^disk full writing {disk / 'results.json'} \(\d+ MB free\)$"):
            atomic_write_text(disk / "results.json", "x" * (5 * 2**20))
        assert (disk / "results.json").read_text() == "{}\n"

        ckpt = disk / "checkpoints" / "last.ckpt"
        io = AtomicCheckpointIO()
        io.save_checkpoint({"w": torch.zeros(10)}, ckpt)
        with pytest.raises(DiskFullError, match=rf"^disk full writing {ckpt} \(\d+ MB free\)$"):
            io.save_checkpoint({"w": torch.zeros(2_000_000)}, ckpt)  # 8 MB on a 4 MB disk
        assert torch.equal(torch.load(ckpt)["w"], torch.zeros(10))
        assert sorted(p.name for p in ckpt.parent.iterdir()) == ["last.ckpt"]

        export = disk / "export"
        with replacing(export, "export") as new:
            (new / "model.safetensors").write_bytes(b"old")
        with pytest.raises(DiskFullError, match=r"^disk full writing .*\.export\.new-\d+ \(\d+ MB free\)$"):
            with replacing(export, "export") as new:
                (new / "model.safetensors").write_bytes(b"x" * (5 * 2**20))
        assert (export / "model.safetensors").read_bytes() == b"old"
        assert sorted(p.name for p in disk.iterdir()) == ["checkpoints", "export", "results.json"]


def test_a_run_removes_what_a_killed_attempt_left(composed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A checkpoint's temporaries and an export's new or old version beside export/ go when the run
    starts again; the checkpoints and export/ themselves stay (and are then written anew)."""
    from selfsup.pipeline import run

    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / ".last.ckpt.tmp").write_bytes(b"half")
    (run_dir / "checkpoints" / ".last.ckpt.previous.tmp").write_bytes(b"half")
    (run_dir / ".export.new-4242").mkdir()
    (run_dir / ".export.new-4242" / "model.safetensors").write_bytes(b"half")
    run(composed("eval.baselines=[]", "eval.metrics.enabled=false"), run_dir, loss_choice="ntxent")
    assert not [p for p in run_dir.rglob(".*") if p.name not in (MARKER, ".hydra")], list(run_dir.rglob(".*"))
    assert (run_dir / "export" / MARKER).is_file()


@pytest.mark.parametrize(
    "args,line",
    [
        (["{tmp}/nope", "{tmp}/out"], "image folder {tmp}/nope does not exist"),
        (["{tmp}/images", "{tmp}/out", "data.image_size=8"], "overrides ['data.image_size=8'] apply to data=NAME only"),
        (["{tmp}/images", "{tmp}/out", "--chunk-mb", "0"], "--chunk-mb 0.0: must be greater than 0"),
        (["data=nope", "{tmp}/out"], "data=nope: In 'train': Could not find 'data/nope'"),
        (["data=digits", "{tmp}/out", "data.image_size=-1"], "data.image_size=-1: must be greater than 0"),
        (["data=digits", "{tmp}/out", "data.bogus=1"], "data.bogus"),
    ],
    ids=["no-source", "overrides-for-a-folder", "chunk-size", "unknown-data", "schema", "unknown-key"],
)
def test_make_shards_bad_input_is_one_line_and_writes_nothing(
    tmp_path: Path, args: list[str], line: str, capsys
) -> None:  # type: ignore[no-untyped-def]
    from tests import fake_data

    fake_data.make_image_folder(tmp_path / "images", n=2, size=12)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(SystemExit) as e:
        make_shards_cli.main([a.format(tmp=tmp_path) for a in args])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and line.format(tmp=tmp_path) in err, err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
