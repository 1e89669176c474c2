"""selfsup/optional.py: an option whose package is absent stops in one line naming both; the table
of optional options agrees with configs/ and pyproject.toml's extras. A package is made absent
here by setting its module to None in sys.modules (what an uninstalled one looks like to
importlib); tests/test_offline_install.py runs them in a venv where they are really absent."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from selfsup.cli import make_shards as make_shards_cli
from selfsup.cli import train as train_cli
from selfsup.errors import MissingPackageError
from selfsup.optional import FLAGS, OPTIONAL, check_choices, check_command_line, installed, require
from tests.conftest import CONFIGS, ROOT, TINY, launch


def _absent(monkeypatch: pytest.MonkeyPatch, option: str) -> None:
    monkeypatch.setitem(sys.modules, OPTIONAL[option].module, None)


def _error(option: str) -> str:
    """The line a user reads, spelled out here rather than taken from selfsup/optional.py."""
    package, extra = OPTIONAL[option].package, OPTIONAL[option].extra
    return f"{option} needs the package {package}: pip install {package} (or selfsup[{extra}])"


def test_every_optional_option_is_a_config_and_its_package_an_extra() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for option, needs in OPTIONAL.items():
        group, name = option.split("=")
        assert (CONFIGS / group / f"{name}.yaml").is_file(), option
        assert [r.split(">")[0] for r in extras[needs.extra]] == [needs.package], (option, extras[needs.extra])
        assert installed(needs.module), f"{needs.package} is not installed here: `make install` installs every extra"
    for flag, needed in FLAGS.items():  # a script's flag: its packages, one extra
        (extra,) = {n.extra for n in needed}
        assert [r.split(">")[0] for r in extras[extra]] == [n.package for n in needed], (flag, extras[extra])
        assert all(installed(n.module) for n in needed), f"{flag}: `make install` installs every extra"
    flag_extras = [n[0].extra for n in FLAGS.values()]
    optional_extras = {e for e in extras if e not in ("all", "dev", "docs")}  # docs: `make docs`, no option
    assert optional_extras == {n.extra for n in OPTIONAL.values()} | set(flag_extras)
    assert extras["all"] == [f"selfsup[{','.join([n.extra for n in OPTIONAL.values()] + flag_extras)}]"]
    assert "selfsup[all]" in extras["dev"]  # make install: the tests run every option
    assert "selfsup[docs]" in extras["dev"]  # and `make docs` builds the site


@pytest.mark.parametrize("option", list(OPTIONAL))
def test_an_absent_package_is_one_line_naming_the_option_and_the_package(
    option: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    want = _error(option)
    check_command_line([option])  # installed: nothing to say
    _absent(monkeypatch, option)
    assert not installed(OPTIONAL[option].module)
    group, name = option.split("=")
    for argv in ([option], ["-m", f"+{option}"], ["-m", f"{group}=other,{name}"]):
        with pytest.raises(MissingPackageError) as e:
            check_command_line(argv)
        assert str(e.value) == want
    with pytest.raises(MissingPackageError, match=want.split(":")[0]):
        check_choices({group: name, "loss": "ntxent"})
    with pytest.raises(MissingPackageError, match=want.split(":")[0]):
        require(option)


def test_options_not_chosen_need_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    for option in OPTIONAL:
        _absent(monkeypatch, option)
    check_command_line(["logger=csv", "data=digits", "-m", "seed=0,1", "hydra.run.dir=x=y", "--cfg", "job"])
    check_choices({"logger": "csv", "data": "digits", "sweeper": None, "launcher": "local"})


@pytest.mark.parametrize("option", ["logger=wandb", "data=shards"])
def test_train_py_refuses_before_the_run_directory_exists(
    option: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """The config check (selfsup/preflight.py) refuses an option chosen in the composed config,
    whichever way it was chosen, before Hydra makes the run directory."""
    _absent(monkeypatch, option)
    run_dir = tmp_path / "run"
    extra = ["data.path=/no/such/shards"] if option == "data=shards" else []
    argv = [option, *extra, *TINY, f"hydra.run.dir={run_dir}"]
    code, out = launch(train_cli.main, argv, monkeypatch, capfd)
    assert code == 2, out
    assert out.strip().splitlines()[-1] == f"error: {_error(option)}"
    assert not run_dir.exists()


def test_make_shards_without_litdata_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd) -> None:  # type: ignore[no-untyped-def]
    _absent(monkeypatch, "data=shards")
    with pytest.raises(SystemExit) as e:
        make_shards_cli.main(["data=digits", str(tmp_path / "shards")])
    assert e.value.code == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert err == [f"error: {_error('data=shards')}"]
    assert not (tmp_path / "shards").exists()
