"""The worked examples of docs/extending.md work as written: their files are written into a copy of
the project, and their commands run there (a training run shortened by ``debug=fast``, and each
example's tests, its own and the registry's).

A titled code block of that page is the file of its title; a title that names a file of the
project shows lines of it to change (each replaces the line that sets the same key). A ``bash``
block titled ``try it`` holds the commands. tests/test_readme.py leaves titled blocks to this test.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, TINY

PAGE = ROOT / "docs" / "extending.md"
TITLED = re.compile(r'^```(\w+)[ \t]+title="([^"]+)"[ \t]*\n(.*?)^```', flags=re.S | re.M)
KEY = re.compile(r"^(\s*[\w.-]+:)")


def titled_blocks() -> list[tuple[str, str, str]]:
    """(language, title, text) of every titled block of the page, in order."""
    return TITLED.findall(PAGE.read_text())


def _change_lines(path: Path, text: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    for new in text.splitlines(keepends=True):
        key = KEY.match(new)
        assert key, f"{path.name}: a changed line sets no key: {new!r}"
        at = [i for i, old in enumerate(lines) if old.startswith(key.group(1))]
        assert len(at) == 1, f"{path.name}: expected one line setting {key.group(1).strip()!r}, found {len(at)}"
        lines[at[0]] = new
    path.write_text("".join(lines))


def _copy_project(dest: Path) -> None:
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_symlink():  # selfsup/configs -> ../configs
            (dest / name).symlink_to(os.readlink(ROOT / name))
        elif (ROOT / name).is_file():
            shutil.copy2(ROOT / name, dest / name)


def test_the_page_has_the_four_worked_examples() -> None:
    files = [title for lang, title, _ in titled_blocks() if lang != "bash"]
    for part in ("selfsup/losses/", "selfsup/augment/", "selfsup/methods/", "configs/method/"):
        assert any(f.startswith(part) for f in files), f"docs/extending.md has no worked example under {part}"
    assert sum(lang == "bash" for lang, _, _ in titled_blocks()) == 4


@pytest.mark.readme
def test_the_worked_examples_work_in_a_copy_of_the_project(tmp_path: Path) -> None:
    project = tmp_path / "project"
    _copy_project(project)
    commands = []
    for lang, title, text in titled_blocks():
        if lang == "bash":
            assert title == "try it", f"docs/extending.md: a bash block titled {title!r}"
            commands += [line for line in text.splitlines() if line.strip()]
        elif (project / title).exists():
            _change_lines(project / title, text)
        else:
            (project / title).parent.mkdir(parents=True, exist_ok=True)
            (project / title).write_text(text)
    written = [title for lang, title, _ in titled_blocks() if lang == "python"]
    ruff = str(Path(sys.executable).parent / "ruff")
    for check in ([ruff, "check", *written], [ruff, "format", "--check", *written]):  # as `make lint` would
        p = subprocess.run(check, cwd=project, capture_output=True, text=True)
        assert p.returncode == 0, p.stdout + p.stderr
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for k, cmd in enumerate(commands):
        argv = shlex.split(cmd)
        assert argv[0] == "python", cmd
        argv[0] = sys.executable
        if argv[1] == "train.py":
            argv += [*TINY, f"hydra.run.dir={tmp_path / f'run{k}'}"]
        p = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=900)
        assert p.returncode == 0, f"{cmd}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
        if argv[1] == "-m":  # pytest: the example's tests ran, none skipped
            summary = p.stdout.strip().splitlines()[-1]
            assert re.search(r"\d+ passed", summary) and "skipped" not in summary, f"{cmd}: {summary}"
