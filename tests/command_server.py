"""Run the project's Python commands as forks of one process that has imported them once.

A command such as ``python train.py ...`` spends its first seconds importing torch, Lightning and
selfsup; the tests start dozens of them. ``python -m tests.command_server FD`` does those imports
once, then reads requests on stdin, one JSON object per line (``argv``, ``cwd``, ``env``, and the
files ``out`` and ``err`` for its output), and for each forks a child that runs ``argv`` as
``python ARGV[1:]`` would: a script path (run as ``__main__``, its folder first on ``sys.path``),
``-m MODULE`` or ``-c CODE``, in that working directory with that environment (``PYTHONPATH``
entries go on ``sys.path``) and stdin from /dev/null. It writes ``pid N`` on FD when a child
starts and ``exit RC`` when it ends (``-9``: killed by SIGKILL, as ``subprocess`` reports it).

The server computes nothing itself beyond parsing the configs' YAML once (tests/yaml_memo.py), so a
child starts without threads and with nothing composed or configured: what the command does after
its imports is its own, as in a fresh process. Use it through :func:`run` (``tests/conftest.py``'s
``run_python``), which falls back to a real subprocess for anything that is not ``python ...``.
"""

from __future__ import annotations

import atexit
import json
import os
import runpy
import select
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _child(req: dict[str, Any], base_path: list[str]) -> None:
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, req["out"], os.O_WRONLY), (2, req["err"], os.O_WRONLY)):
        opened = os.open(path, flags)
        os.dup2(opened, fd)
        os.close(opened)
    extra = [p for p in req["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    args = req["argv"][1:]
    code = 0
    try:
        if args[0] == "-m":
            sys.path[:] = [req["cwd"], *extra, *base_path]
            sys.argv = [args[1], *args[2:]]
            runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        elif args[0] == "-c":
            sys.path[:] = ["", *extra, *base_path]
            sys.argv = ["-c", *args[2:]]
            exec(compile(args[1], "<string>", "exec"), {"__name__": "__main__"})
        else:
            sys.path[:] = [os.path.dirname(os.path.abspath(args[0])), *extra, *base_path]
            sys.argv = list(args)
            runpy.run_path(args[0], run_name="__main__")
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:  # as the interpreter does: the message on stderr, status 1
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve(response_fd: int) -> None:
    import hydra  # the imports every command makes, done once
    import lightning  # noqa: F401
    import timm  # noqa: F401
    import torch  # noqa: F401
    import torchvision  # noqa: F401

    import selfsup.build  # noqa: F401
    import selfsup.cli.collect  # noqa: F401
    import selfsup.cli.train  # noqa: F401
    import selfsup.pipeline  # noqa: F401
    from tests import yaml_memo

    yaml_memo.install()  # the configs' YAML parsed once, here (tests/yaml_memo.py)
    yaml_memo.warm(ROOT / "configs", Path(hydra.__file__).parent / "conf")

    base_path = [p for p in sys.path if p not in ("", str(ROOT), os.getcwd())]
    respond = os.fdopen(response_fd, "w", buffering=1)
    for line in sys.stdin:
        req = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            respond.close()
            _child(req, base_path)
        respond.write(f"pid {pid}\n")
        _, status = os.waitpid(pid, 0)
        respond.write(f"exit {os.waitstatus_to_exitcode(status)}\n")


class Server:
    """The client side: one server process, started on first use."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.responses: Any = None

    def _start(self) -> None:
        r, w = os.pipe()
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.command_server", str(w)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            pass_fds=(w,),
            env=env,
            text=True,
        )
        os.close(w)
        self.responses = os.fdopen(r)

    def _line(self, timeout: float | None) -> str:
        ready, _, _ = select.select([self.responses], [], [], timeout)
        if not ready:
            raise TimeoutError
        line = self.responses.readline()
        assert line, "the command server ended"
        return line.strip()

    def run(
        self, argv: list[str], cwd: Path | str = ROOT, env: dict[str, str] | None = None, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        assert self.proc is not None and self.proc.stdin is not None
        with tempfile.TemporaryDirectory() as tmp:
            out, err = Path(tmp, "out"), Path(tmp, "err")
            out.touch()
            err.touch()
            req = {"argv": [str(a) for a in argv], "cwd": str(cwd), "env": dict(os.environ if env is None else env),
                   "out": str(out), "err": str(err)}  # fmt: skip
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
            pid = int(self._line(60).split()[1])
            try:
                rc = int(self._line(timeout).split()[1])
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                self._line(60)
                raise subprocess.TimeoutExpired(argv, timeout or 0, out.read_text(), err.read_text()) from None
            stdout, stderr = out.read_text(errors="replace"), err.read_text(errors="replace")
            return subprocess.CompletedProcess(argv, rc, stdout, stderr)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


SERVER = Server()


def run(
    argv: list[str],
    cwd: Path | str = ROOT,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    capture_output: bool = True,
    text: bool = True,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    check=check)``, forked from the server when ``argv`` is ``python ...`` (this interpreter)."""
    assert capture_output and text, "the output comes back as text"
    if not (argv and str(argv[0]) == sys.executable):
        return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=check)
    p = SERVER.run(argv, cwd, env, timeout)
    if check and p.returncode != 0:
        raise subprocess.CalledProcessError(p.returncode, argv, p.stdout, p.stderr)
    return p


if __name__ == "__main__":
    serve(int(sys.argv[1]))
