"""tests/command_server.py answers as subprocess.run does: status, output, a string exit, a signal,
a timeout, the working directory, the environment and PYTHONPATH."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_python

CODE = """
import os, sys
print("out", os.getcwd(), os.environ.get("PROBE"), file=sys.stdout)
print("err", file=sys.stderr)
import probe_module
print(probe_module.VALUE)
sys.exit(sys.argv[1] if sys.argv[1].isalpha() else int(sys.argv[1]))
"""


@pytest.mark.parametrize("arg", ["0", "3", "boom"])
def test_a_forked_command_answers_as_a_process_does(arg: str, tmp_path: Path) -> None:
    (tmp_path / "probe_module.py").write_text("VALUE = 'imported'\n")
    env = {"PROBE": "seen", "PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    argv = [sys.executable, "-c", CODE, arg]
    want = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    got = run_python(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert (got.returncode, got.stdout, got.stderr) == (want.returncode, want.stdout, want.stderr)
    assert got.stdout.startswith(f"out {tmp_path} seen\n") and "imported" in got.stdout


def test_a_killed_command_and_a_timeout(tmp_path: Path) -> None:
    p = run_python([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
    assert p.returncode == -9
    with pytest.raises(subprocess.TimeoutExpired):
        run_python([sys.executable, "-c", "import time; time.sleep(30)"], timeout=1)
    assert run_python([sys.executable, "-c", "print('after')"]).stdout == "after\n"  # the server goes on
