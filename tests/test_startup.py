"""Start-up: a command imports only what it uses.

Not a timing test: each command runs in a fresh process and the test reads which modules
it left in ``sys.modules``. A command pays for pygit2 (~50 ms), rich, fsspec or zstandard
only when it uses them; ``--version``, ``--help``, a clean ``status``, ``init`` and usage errors
use none, and the commands that only read versions (``log``, ``ls``, ``diff``, ``show``,
``branch``, ``tag``) no pygit2;
only the module of the command being run is imported (``benchmarks/startup.py`` has the times).
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from .conftest import ds, write

PROBE = (
    "import sys\n"
    "from objstore_cli.main import main\n"
    "sys.argv = ['ds', *sys.argv[1:]]\n"
    "try:\n"
    "    main()\n"
    "except SystemExit:\n"
    "    pass\n"
    "sys.stdout.flush()\n"
    "sys.stderr.write('\\nMODULES ' + ' '.join(sorted(sys.modules)) + '\\n')\n"
)
HEAVY = {"pygit2", "fsspec", "rich", "zstandard", "pyfastcdc", "blake3", "ssl", "platformdirs"}
BYTES = {"fsspec", "rich", "zstandard", "pyfastcdc", "objstore.chunkstore", "objstore.index",
         "objstore.packs", "platformdirs"}
COMMAND_MODULES = {f"objstore_cli.{m}" for m in ("admin", "branches", "dataset_cmd", "history",
                                                  "inspect_cmd", "remotes", "ui_cmd", "workflow")}


# A full `ds status` whose stat cache says it was written 10 s from now: every file is then
# older than the cache by more than a timestamp tick, so the next plain `ds status` is answered
# from stat data alone, however fast the machine ran the set-up (no sleep racing the clock).
FULL_STATUS_LATER = (
    "import sys, time, types\n"
    "import objstore.quickconfig as qc, objstore.statcache as sc\n"
    "sc.time = qc.time = types.SimpleNamespace(time_ns=lambda: time.time_ns() + 10**10)\n"
    "from objstore_cli.app import main\n"
    "sys.argv = ['ds', 'status']\n"
    "try:\n"
    "    main()\n"
    "finally:\n"
    "    qc.config_facts('.dsstore')  # the config's values kept: the next status parses no TOML\n"
)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two versions of a few files; a plain `ds status` is answered from the stat cache."""
    w = tmp_path_factory.mktemp("startup") / "w"
    ds("init", str(w), cwd=w.parent)
    for i in range(6):
        write(w, f"d{i % 2}/f{i}.txt", f"file {i}\n")
    ds("add", ".", cwd=w)
    ds("commit", "-m", "one", cwd=w)
    write(w, "d0/f0.txt", "changed\n")
    ds("add", "-A", cwd=w)
    ds("commit", "-m", "two", cwd=w)
    env = {k: v for k, v in os.environ.items() if k != "DSSTORE_DIR"}
    p = subprocess.run([sys.executable, "-c", FULL_STATUS_LATER], cwd=w, env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.stdout.endswith("Nothing changed.\n"), p.stderr
    return w


def imported(repo: Path, *args: str) -> set[str]:
    """Modules a fresh `ds ARGS` leaves imported (user settings in an empty home, so their
    usual place is looked up, as on a user's machine)."""
    drop = ("DSSTORE_DIR", "DS_CONFIG_HOME", "XDG_CONFIG_HOME")
    env = {k: v for k, v in os.environ.items() if k not in drop} | {"HOME": str(repo.parent / "home")}
    p = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=repo, capture_output=True, text=True,
                       env=env, timeout=120)
    line = p.stderr.rsplit("\nMODULES ", 1)
    assert len(line) == 2, p.stderr
    return set(line[1].split())


def tops(modules: set[str]) -> set[str]:
    """Each module and the packages above it: "pygit2.enums" also counts as "pygit2"."""
    return {".".join(m.split(".")[:i]) for m in modules for i in range(1, m.count(".") + 2)}


CASES = [
    # (arguments, modules that must stay unimported, command modules it may import)
    (("--version",), HEAVY | {"typer", "click", "importlib.metadata", "objstore_cli.app"}, set()),
    (("--help",), HEAVY | {"json", "objstore.store", "objstore.config"}, COMMAND_MODULES),
    # a no-op status: no TOML parser, no typing, no enums (the editable install's start-up
    # imports pathlib and re itself, so only an installed copy can show those stay out too)
    (("status",), HEAVY | {"typer", "click", "objstore_cli.app", "tomllib", "typing", "datetime",
                           "array", "signal", "collections.abc"}, set()),
    (("bogus",), HEAVY | {"objstore.store"}, set()),
    (("init", "../fresh"), HEAVY | {"objstore.meta"}, {"workflow"}),  # the bare repository: git_layout
    (("log", "-n", "x"), HEAVY | {"objstore.store"}, {"history", "workflow"}),
    # commands that only read the metadata database read it without libgit2 (git_read)
    (("log", "-n", "1"), BYTES | {"pygit2"}, {"history", "workflow"}),
    (("log", "--oneline", "HEAD~1"), BYTES | {"pygit2"}, {"history", "workflow"}),
    (("ls",), BYTES | {"pygit2"}, {"inspect_cmd", "workflow"}),
    (("diff",), BYTES | {"pygit2"}, {"history", "workflow"}),
    (("diff", "HEAD~1", "HEAD"), BYTES | {"pygit2"}, {"history", "workflow"}),
    (("show",), BYTES | {"pygit2"}, {"history", "workflow"}),
    (("branch",), BYTES | {"pygit2"}, {"branches", "workflow"}),
    (("tag",), BYTES | {"pygit2"}, {"history", "workflow"}),
    (("commit", "-m", "x"), BYTES, {"workflow"}),
    (("dataset", "search"), {"rich", "fsspec", "zstandard"}, {"dataset_cmd"}),
]


@pytest.mark.parametrize("args,absent,cli", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_command_imports_only_what_it_uses(repo: Path, args: tuple[str, ...], absent: set[str],
                                           cli: set[str]) -> None:
    modules = tops(imported(repo, *args))
    assert not modules & absent, f"ds {' '.join(args)} imported {sorted(modules & absent)}"
    allowed = {m if m.startswith("objstore_cli.") else f"objstore_cli.{m}" for m in cli}
    extra = (modules & COMMAND_MODULES) - allowed
    assert not extra, f"ds {' '.join(args)} imported other commands' modules: {sorted(extra)}"


def test_version_is_the_installed_one() -> None:
    """`ds --version` reads objstore.__version__ (importlib.metadata costs ~25 ms to import):
    it must be the version the package is installed as."""
    import objstore

    assert objstore.__version__ == version("objstore")


def test_the_command_table_names_where_each_command_is_registered() -> None:
    """`commands.MODULES` is how a run finds a command without importing the others: it must
    name every command the modules register, each in the module that registers it."""
    from objstore_cli.app import app
    from objstore_cli.commands import MODULES, load_all
    from typer.main import get_command_name

    load_all()
    where = {(c.name or get_command_name(c.callback.__name__)): c.callback.__module__
             for c in app.registered_commands}
    where |= {g.name: g.typer_instance.registered_commands[0].callback.__module__
              for g in app.registered_groups}
    assert where == {name: f"objstore_cli.{module}" for name, module in MODULES.items()}


def test_every_command_builds_and_has_its_help(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Built one at a time on first use, every command (and `remote`'s subcommands) still
    parses and prints its help."""
    monkeypatch.setenv("DS_CONFIG_HOME", str(tmp_path))  # `ds dataset` runs: no user settings exported here
    from click.testing import CliRunner
    from objstore_cli.app import app
    from objstore_cli.commands import MODULES
    from typer.main import get_command

    root = get_command(app)
    runner = CliRunner()
    for name in MODULES:
        result = runner.invoke(root, [name, "--help"])
        usage = result.output.lower()  # argparse, behind `ds dataset`, says "usage:"
        assert result.exit_code == 0 and usage.startswith(f"usage: ds {name} "), (name, result.output)
    for sub in ("add", "list", "remove", "rename", "set-url"):
        result = runner.invoke(root, ["remote", sub, "--help"])
        assert result.exit_code == 0 and f"Usage: ds remote {sub} " in result.output, (sub, result.output)


def test_unknown_command_still_suggests_the_near_one(repo: Path) -> None:
    p = ds("stauts", cwd=repo, check=False)
    assert (p.returncode, p.stderr) == (2, "Error: no such command 'stauts'. Did you mean 'status'? "
                                           "(see 'ds --help')\n")


@pytest.mark.skipif(sys.platform != "linux", reason="the XDG rule is used on Linux only")
@pytest.mark.parametrize("xdg", [None, "", "  ", "/elsewhere/conf", "/elsewhere/conf/", "relative/conf"])
@pytest.mark.parametrize("home", ["/home/someone", "/home/someone/"])
def test_user_settings_are_where_platformdirs_puts_them(monkeypatch: pytest.MonkeyPatch, xdg: str | None,
                                                       home: str) -> None:
    """The settings file is found without importing platformdirs, in the folder it names."""
    import platformdirs

    from objstore import userconfig

    monkeypatch.delenv("DS_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", home)
    if xdg is None:
        monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CONFIG_HOME", xdg)
    assert userconfig.config_path() == platformdirs.user_config_path("objstore") / "config.toml"


def test_help_lists_each_command_as_the_command_itself_says() -> None:
    """`ds --help` lists commands from what their modules registered, without building them:
    the line must be the one the built command gives."""
    from objstore_cli.app import app
    from objstore_cli.commands import MODULES
    from typer.main import get_command

    commands = get_command(app).commands
    for name in MODULES:
        listed, built = commands.summary(name), commands[name]
        assert (listed.get_short_help_str(45), listed.hidden) == (built.get_short_help_str(45), built.hidden)
