#!/usr/bin/env python
"""Download as wheels what a machine without internet lacks to run selfsup (``make wheelhouse``).

    python scripts/wheelhouse.py --out wheelhouse --have scripts/gpu_image.txt \\
        --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 ...
    python scripts/wheelhouse.py --out wheelhouse --have have.txt --extras wandb,sweep
    python scripts/wheelhouse.py --out wheelhouse-bench --have scripts/gpu_image.txt --have wheelhouse lightly

The target (a GPU node, a cluster's compute node) already has PyTorch, Lightning, timm and more.
``--have`` names what it has: a text file with a distribution a line (``pip list --format=freeze``
output as it is: a pinned version is kept to where pip can), or a folder of wheels (another
wheelhouse). pip resolves selfsup's runtime requirements (pyproject.toml; ``--extras`` adds
optional ones), plus any REQUIREMENTS given, for the target's Python and platform from the
packages' metadata, without installing or downloading them; every distribution of that
resolution the target lacks and needs is downloaded as a wheel into OUT, with selfsup's own
wheel unless ``--have`` names selfsup. Wheels in OUT that the resolution no longer holds are
removed, so OUT holds one version of each. On the target: ``bash scripts/offline_install.sh OUT``.

Without ``--python-version``/``--platform`` the target is this interpreter and machine.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pip's own copy of the same parser
    from pip._vendor import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "selfsup"
# Requirements published only as a source archive, which `--only-binary=:all:` cannot take: built
# here into pure-Python (py3-none-any) wheels, which install on any target. antlr4: omegaconf's parser.
SOURCE_ONLY = ["antlr4-python3-runtime==4.9.*"]


def canonical(name: str) -> str:
    """A distribution's name as pip compares them (PEP 503): ``PyYAML``, ``pyyaml`` -> ``pyyaml``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(req: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
    if match is None:
        raise SystemExit(f"error: cannot read a distribution name in {req!r}")
    return canonical(match.group(1))


def have_names(paths: list[Path]) -> set[str]:
    """The distributions the target has: names from text files, and from the wheels of folders."""
    names: set[str] = set()
    for path in paths:
        if path.is_dir():
            names |= {canonical(w.name.split("-")[0]) for w in path.glob("*.whl")}
        elif path.is_file():
            lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
            names |= {requirement_name(line) for line in lines if line and not line.startswith("-")}
        else:
            raise SystemExit(f"error: --have {path}: no such file or folder")
    return names


def have_pins(paths: list[Path]) -> list[str]:
    """``name==version`` for each line of the ``--have`` files that pins one (``pip list
    --format=freeze``), its local label dropped (``torch==2.11.0+cu130`` -> ``torch==2.11.0``): the
    resolution keeps to the target's versions, so what the bundle adds works with what it has."""
    pins = []
    for path in (p for p in paths if p.is_file()):
        for line in path.read_text().splitlines():
            match = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s+;#]+)(\+\S*)?\s*", line)
            if match:
                pins.append(f"{match.group(1)}=={match.group(2)}")
    return pins


def project_requirements(extras: list[str]) -> list[str]:
    """pyproject.toml's runtime dependencies plus those of ``extras`` (an extra naming
    ``selfsup[other]`` brings ``other``'s)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    reqs, todo, seen = list(project["dependencies"]), list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        if extra not in optional:
            raise SystemExit(f"error: --extras {extra}: pyproject.toml has the extras {', '.join(optional)}")
        seen.add(extra)
        for req in optional[extra]:
            inner = re.fullmatch(rf"{PROJECT}\[(.*)\]", req.replace(" ", ""))
            if inner:
                todo += inner.group(1).split(",")
            else:
                reqs.append(req)
    return reqs


class PipFailed(Exception):
    """pip said why above."""


def pip(*args: str) -> None:
    if subprocess.run([sys.executable, "-m", "pip", *args]).returncode != 0:
        raise PipFailed(f"pip {args[0]} failed (pip's message is above)")


def resolve(reqs: list[str], pins: list[str], target: list[str], find_links: Path) -> list[dict]:
    """pip's resolution of ``reqs`` under the constraints ``pins`` for the target, from the packages'
    metadata alone: one entry per distribution (``metadata``: name, version, requirements;
    ``download_info``: the file's URL)."""
    with tempfile.TemporaryDirectory() as tmp:
        report, constraints = Path(tmp) / "report.json", Path(tmp) / "constraints.txt"
        constraints.write_text("".join(f"{pin}\n" for pin in pins))
        where = ["--target", str(Path(tmp) / "site"), "--find-links", str(find_links), "--report", str(report)]
        pip("install", "--dry-run", "--quiet", "--ignore-installed", "--only-binary=:all:", *target, *where,
            "--constraint", str(constraints), *reqs)  # fmt: skip
        return json.loads(report.read_text())["install"]


def lacking(resolved: list[dict], have: set[str]) -> list[dict]:
    """The resolved distributions the target lacks and needs: reached from the requested ones
    without passing through one it has, which brings its own requirements (the CUDA libraries of
    another torch build than its own, say, are none of the bundle's business). An extra of one it
    has is followed, though: ``lightning`` needs ``fsspec[http]``, and a target with fsspec may
    lack aiohttp."""
    by_name = {canonical(d["metadata"]["name"]): d for d in resolved}
    todo: list[tuple[str, str | None]] = []  # (distribution, one of its extras, or None: its own requirements)
    for name, d in by_name.items():
        if d.get("requested"):
            todo += [(name, None), *((name, canonical(e)) for e in d.get("requested_extras") or [])]
    needed: set[str] = set()
    seen: set[tuple[str, str | None]] = set()
    while todo:
        name, extra = todo.pop()
        if (name, extra) in seen or (extra is None and name in have):
            continue
        seen.add((name, extra))
        needed |= {name} - have
        for req in by_name[name]["metadata"].get("requires_dist", []):
            marker = re.search(r"""extra\s*==\s*["']([^"']+)["']""", req)
            dep = requirement_name(req)
            if (canonical(marker.group(1)) if marker else None) != extra or dep not in by_name:
                continue  # another extra's, or one whose marker pip found false for the target
            todo.append((dep, None))
            brackets = re.match(r"\s*[A-Za-z0-9._-]+\s*\[([^\]]*)\]", req)
            todo += [(dep, canonical(e.strip())) for e in brackets.group(1).split(",") if e.strip()] if brackets else []
    return [d for n, d in by_name.items() if n in needed]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("requirements", nargs="*", help="more requirements to bundle (the benchmark's peers, say)")
    ap.add_argument("--out", type=Path, required=True, help="the wheelhouse folder (created)")
    ap.add_argument("--have", type=Path, action="append", default=[], help="what the target has (file or folder)")
    ap.add_argument("--extras", default="", help="pyproject.toml extras to bundle too, comma-separated")
    ap.add_argument("--python-version", help="the target's Python, e.g. 3.12 (default: this one)")
    ap.add_argument("--implementation", help="the target's Python implementation, e.g. cp")
    ap.add_argument("--platform", action="append", default=[], help="a platform tag the target takes (repeat)")
    args = ap.parse_args(argv)

    target = [f"--platform={p}" for p in args.platform]
    target += [f"--python-version={args.python_version}"] if args.python_version else []
    target += [f"--implementation={args.implementation}"] if args.implementation else []
    have = have_names(args.have)
    extras = [e.strip() for e in args.extras.split(",") if e.strip()]
    # What the target has is left out before resolving, too: pip then reads no metadata of torch's
    # CUDA libraries unless a requirement that stays needs torch.
    reqs = [r for r in [*project_requirements(extras), *args.requirements] if requirement_name(r) not in have]
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        built = Path(tmp)
        pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(built), *SOURCE_ONLY)
        pins = have_pins(args.have)
        try:
            resolved = resolve(reqs, pins, target, built)
        except PipFailed:
            if not pins:
                raise
            # The target's own versions conflict, or are not on the index (a locally built torch):
            # the newest versions that fit instead; pip checks them against the target's on install.
            print("wheelhouse: no resolution keeps to the versions --have pins (above); resolving without them")
            resolved = resolve(reqs, [], target, built)
        urls = [d["download_info"]["url"] for d in lacking(resolved, have)]
        local = [Path(unquote(urlparse(u).path)) for u in urls if u.startswith("file:")]
        remote = [u for u in urls if not u.startswith("file:")]
        for wheel in local:  # built above, or a local mirror's copy
            shutil.copy2(wheel, args.out / wheel.name)
        if remote:  # the exact files pip chose; those already in OUT are not fetched again
            pip("download", "--quiet", "--no-deps", "--only-binary=:all:", *target, "--dest", str(args.out), *remote)
    names = [Path(unquote(urlparse(u).path)).name for u in urls]
    if PROJECT not in have:
        for old in args.out.glob(f"{PROJECT}-*.whl"):  # built from this checkout again, whatever changed
            old.unlink()
        with tempfile.TemporaryDirectory() as tmp:  # a copy: setuptools leaves build/ where it builds
            for part in ("pyproject.toml", "README.md"):
                shutil.copy2(ROOT / part, Path(tmp) / part)
            shutil.copytree(ROOT / PROJECT, Path(tmp) / PROJECT, ignore=shutil.ignore_patterns("__pycache__"))
            pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(args.out), tmp)
        names += [w.name for w in args.out.glob(f"{PROJECT}-*.whl")]
    for stale in sorted(set(args.out.glob("*.whl")) - {args.out / n for n in names}):
        stale.unlink()
    wheels = sorted(args.out / n for n in set(names))
    size = sum(w.stat().st_size for w in wheels) / 1e6
    for w in wheels:
        print(f"  {w.name}  ({w.stat().st_size / 1e6:.1f} MB)")
    print(f"{args.out}: {len(wheels)} wheels, {size:.1f} MB (left out: the {len(have)} distributions the target has)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PipFailed as e:
        sys.exit(f"error: {e}")
