"""The root typer app, shared options, and how errors become one line and an exit code."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Annotated, Any

import click
import typer
from typer.core import TyperCommand, TyperGroup

from .commands import MODULES

# `ds --help` lists the commands by what they are for, as `git help` does; a command
# missing here is listed under the last heading.
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Start a store", ("init", "clone")),
    ("Work on the next version", ("add", "rm", "mv", "restore", "status", "commit")),
    ("Branches and history", ("branch", "switch", "checkout", "log", "reflog", "show", "diff", "ls",
                              "tag", "merge", "squash")),
    ("Share through a remote", ("remote", "push", "fetch", "pull")),
    ("Maintain the store", ("fsck", "gc", "du", "config")),
    ("Other", ("dataset", "ui", "get")),
)
SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")
_AUTO = "auto"  # --show-completion without a SHELL: the one $SHELL names


class _Commands(MutableMapping[str, click.Command]):
    """The root group's commands: every name in ``commands.MODULES`` is known, but a command
    is built (its module imported, typer's conversion run) only when it is looked up, so
    `ds log` neither imports nor builds the other commands."""

    def __init__(self, built: Mapping[str, click.Command]):
        self._built = dict(built)

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._built:
            if name not in MODULES:
                raise KeyError(name)
            self._built[name] = _build(name)
        return self._built[name]

    def __contains__(self, name: object) -> bool:
        return name in self._built or name in MODULES

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*MODULES, *self._built]))

    def __len__(self) -> int:
        return len(dict.fromkeys([*MODULES, *self._built]))

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        del self._built[name]

    def summary(self, name: str) -> click.Command:
        """Command ``name`` as `ds --help` lists it: the command if it is built, else one
        with its help text and no parameters, made from what its module registered
        (converting each command's parameters costs ~1 ms; listing them needs none)."""
        if name in self._built:
            return self._built[name]
        info = _registered(name)
        if info is None:
            return self[name]  # a group (`remote`): built, with its subcommands
        import inspect

        text = inspect.cleandoc(info.help) if info.help is not None else inspect.getdoc(info.callback)
        return click.Command(name, help=text, short_help=info.short_help, hidden=info.hidden,
                             deprecated=info.deprecated)


def _registered(name: str) -> typer.models.CommandInfo | None:
    """What the module of command ``name`` (imported here) registered for it; None for a group."""
    from typer.main import get_command_name

    from .commands import load

    load(name)
    for info in app.registered_commands:
        if info.callback and (info.name or get_command_name(info.callback.__name__)) == name:
            return info
    return None


def _build(name: str) -> click.Command:
    """Import the module of command ``name`` and convert only that command to click."""
    from typer.main import get_command_from_info, get_group_from_info

    info = _registered(name)
    if info is not None:
        return _settings_first(get_command_from_info(
            info, pretty_exceptions_short=app.pretty_exceptions_short, rich_markup_mode=app.rich_markup_mode))
    for group in app.registered_groups:
        if group.name == name:
            return _settings_first(get_group_from_info(
                group, pretty_exceptions_short=app.pretty_exceptions_short,
                rich_markup_mode=app.rich_markup_mode, suggest_commands=app.suggest_commands))
    raise LookupError(f"objstore_cli.{MODULES[name]} registers no command {name!r} (commands.MODULES)")


def _settings_first(command: click.Command) -> click.Command:
    """Export the user's settings (``userconfig.export_env``) just before the command's own
    code runs, after its arguments are parsed: `ds --help`, completion and usage errors
    never read the settings file (nor import platformdirs to find it)."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _settings_first(sub)
    run = command.callback
    if run is not None:
        import functools

        @functools.wraps(run)
        def with_settings(*args: Any, **kwargs: Any) -> Any:
            from objstore.userconfig import export_env

            export_env()
            return run(*args, **kwargs)

        command.callback = with_settings
    return command


class _Sections(TyperGroup):
    """The root group: plain click help (rich's costs start-up time), commands in sections
    and built on first use (``_Commands``), and the completion options (typer's take no SHELL
    when shellingham is installed)."""

    def __init__(self, *args: Any, params: list[click.Parameter] | None = None,
                 commands: Mapping[str, click.Command] | None = None, **kwargs: Any):
        shells = [_shell_option("--show-completion", "Print the shell completion script"),
                  _shell_option("--install-completion", "Install shell completion")]
        built = {name: _settings_first(c) for name, c in (commands or {}).items()}  # modules imported earlier
        super().__init__(*args, params=[*(params or []), *shells], commands=_Commands(built), **kwargs)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # the names only: typer's would build every command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        commands = self.commands
        summaries = {n: commands.summary(n) if isinstance(commands, _Commands) else commands[n]
                     for n in self.list_commands(ctx)}
        names = [n for n, c in summaries.items() if not c.hidden]
        if not names:
            return
        limit = 200  # the whole first sentence: write_dl wraps it (a cut one misled: "Stage files...")
        listed = {n for _, group in SECTIONS for n in group}
        for title, group in SECTIONS:
            rest = [n for n in names if n not in listed] if title == SECTIONS[-1][0] else []
            rows = [(n, summaries[n].get_short_help_str(limit))
                    for n in (*(g for g in group if g in names), *rest)]
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


# Help is click's plain text (rich_markup_mode=None), but typer still escapes "[default: X]"
# for rich whenever rich is installed, so every help showed "\[default: X]": typer's rich
# paths are off here (ds renders no rich markup, errors included).
typer.core.HAS_RICH = False

app = typer.Typer(
    name="ds",
    help="Version folders of data: init, add, commit, log, diff, checkout, get.",
    cls=_Sections,
    no_args_is_help=True,
    add_completion=False,  # --show-completion / --install-completion [SHELL] are ours (_Sections)
    rich_markup_mode=None,
    suggest_commands=False,  # click suggests a near command name itself (typer's repeated it)
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# The convention of every command: a result goes to stdout (with --json, as one JSON document
# that replaces the summary note); notes, warnings and progress go to stderr; -q silences the
# notes and progress, never a warning or an error.
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON document on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No notes or progress (warnings and "
                                        "errors still show).")]


class State:
    directory: str | None = None


state = State()


def _version(value: bool) -> None:
    if value:  # a plain `ds --version` never gets here: main.py answers it before typer loads
        from .main import version_line

        typer.echo(version_line())
        raise typer.Exit()


def _completion(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """Print (or install) the completion script for SHELL, by default the user's $SHELL."""
    if value is None or ctx.resilient_parsing:
        return
    auto = value == _AUTO
    shell = os.path.basename(os.environ.get("SHELL", "")) if auto else value
    if shell not in SHELLS:
        what = (f"{value!r} is not a shell ds completes" if not auto else
                f"$SHELL names {shell}, a shell ds does not complete" if shell else "$SHELL is not set")
        raise click.UsageError(f"{what}; name one of {', '.join(SHELLS)}, as in "
                               f"`ds {param.opts[0]} bash`", ctx=ctx)
    from typer import completion

    run = completion.show_callback if param.name == "show_completion" else completion.install_callback
    run(ctx, param, shell)


def _shell_option(flag: str, what: str) -> click.Option:
    return click.Option([flag], metavar="[SHELL]", is_flag=False, flag_value=_AUTO, expose_value=False,
                        is_eager=True, callback=_completion,
                        help=f"{what} for SHELL ({', '.join(SHELLS)}; default: $SHELL).")


@app.callback()
def _root(
    directory: Annotated[
        str | None, typer.Option("-C", metavar="DIR", help="Run as if started in DIR.", show_default=False)
    ] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print ds's version.")] = False,
) -> None:
    if directory is not None and not os.path.isdir(directory):
        from objstore.errors import DsError

        what = "not a folder" if os.path.lexists(directory) else "no such folder"
        raise DsError(f"-C {directory}: {what}; give the folder to run in (`ds init DIR` creates "
                      "a new store's folder)")
    state.directory = directory


def cwd() -> str:
    return os.path.abspath(state.directory) if state.directory else os.getcwd()


def err(message: str) -> None:
    sys.stderr.write(message + "\n")


def out_json(data: Any) -> None:
    import json

    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def open_store(attach: bool = False):
    """The store of the current folder (or DSSTORE_DIR's); ``attach``: missing chunks come from
    its default remote."""
    from objstore.errors import StoreNotFound
    from objstore.store import Store, locate_store

    try:
        store = Store(locate_store(cwd()))
    except StoreNotFound as e:
        raise StoreNotFound(f"{e}{_user_store_hint()}") from None
    if attach:
        from objstore.remote import attach_default

        attach_default(store)
    return store


def _user_store_hint() -> str:
    """Where the versions scripts made are, when a command finds no store: the SDK falls back
    to a per-user store, a command never does (as git, it works only inside a repository)."""
    import shlex

    from objstore.dataset_store import store_path
    from objstore.paths import STORE_ENV

    if os.environ.get(STORE_ENV):
        return ""
    path = store_path(cwd())
    if not (path / "config").is_file():
        return ""
    return (f"; the datasets scripts made (the SDK's per-user store) are reached with "
            f"{STORE_ENV}={shlex.quote(str(path))} ds COMMAND")


@contextmanager
def progress(label: str, quiet: bool,
             count_files: bool = True) -> Iterator[Callable[[int, int], None] | None]:
    """Files and bytes done (of the totals, once the operation announces them), on stderr.

    A bar with rate and time left on a terminal; otherwise a plain line every few seconds
    (nothing for quick work); nothing with ``--quiet``.
    """
    if quiet:
        yield None
        return
    if not sys.stderr.isatty():
        from objstore.progress import LogProgress

        yield LogProgress(label, emit=err, count_files=count_files)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    text = f"{label} {{task.fields[files]}}{{task.fields[of]}} files" if count_files else label
    # redrawn by the callbacks, not by a thread of rich's: a process with one thread may
    # fork to write many files (materialize.py), which another thread's locks would forbid
    bar = Progress(TextColumn(text), BarColumn(),
                   DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                   console=Console(stderr=True), transient=True, auto_refresh=False)
    task = bar.add_task(label, total=None, files=0, of="")
    import time

    class Bar:
        drawn = 0.0

        def total(self, files: int | None, nbytes: int | None) -> None:
            bar.update(task, total=nbytes, of="" if files is None else f"/{files}")
            self.draw()

        def __call__(self, files: int, nbytes: int) -> None:
            bar.update(task, completed=nbytes, files=files)
            self.draw()

        def draw(self) -> None:
            now = time.monotonic()
            if now - self.drawn >= 0.1:  # ten times a second, as rich's own thread would
                self.drawn = now
                bar.refresh()

    with bar:
        yield Bar()


@contextmanager
def transfer_progress(label: str, quiet: bool) -> Iterator[Callable[[int, int], None] | None]:
    """Bytes done of bytes to move, for remote transfers: a bar, plain lines, or nothing."""
    with progress(label, quiet, count_files=False) as inner:
        if inner is None:
            yield None
            return
        from objstore.progress import as_transfer

        yield as_transfer(inner)


def usage_line(e: click.UsageError) -> str:
    """click's usage error as one line: what is wrong, then where the help is."""
    what = " ".join(e.format_message().split()).rstrip(".")
    if what[:1].isupper() and what[1:2].islower():  # "Missing argument" reads as part of a sentence
        what = what[0].lower() + what[1:]
    where = e.ctx.command_path if e.ctx is not None else "ds"
    return f"Error: {what} (see '{where} --help')"


class PathsAfterDashDash(TyperCommand):
    """git's ``-- PATH...``: click hands what follows ``--`` to the positional arguments
    (REV first), so it is split off here, before click parses the rest."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            i = args.index("--")
            args, ctx.meta[_PATHS] = args[:i], args[i + 1:]
        return super().parse_args(ctx, args)

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return [*super().collect_usage_pieces(ctx), "[-- PATH...]"]


_PATHS = "objstore.paths-after-dashes"


def after_dashes(ctx: click.Context) -> list[str] | None:
    """The paths given after ``--`` (a ``PathsAfterDashDash`` command), None without ``--``."""
    return ctx.meta.get(_PATHS)


def git_shorthands(argv: list[str]) -> list[str]:
    """``ds log -5`` as git's, ``-n 5`` (click has no options made of digits)."""
    at = 2 if argv[:1] == ["-C"] else 1 if argv[:1] and argv[0].startswith("-C") else 0  # -C DIR, -CDIR
    if argv[at:at + 1] != ["log"]:
        return argv
    out = argv[:at + 1]
    for i, arg in enumerate(argv[at + 1:], at + 1):
        if arg == "--":
            return out + argv[i:]
        count = len(arg) > 1 and arg[0] == "-" and arg[1:].isdigit() and out[-1] != "-n"  # -n -1: -n's value
        out += ["-n", arg[1:]] if count else [arg]
    return out


def _run() -> int:
    """Run the command line; the exit code of the command, 0 when it returned."""
    if os.environ.get("_DS_COMPLETE"):  # a shell asks for completions: typer's format
        from typer.completion import completion_init

        completion_init()
    try:
        code = app(args=git_shorthands(sys.argv[1:]), standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as e:  # `ds`, `ds remote`: the help, as a usage error
        typer.echo(e.format_message())
        return 2
    except click.UsageError as e:
        err(usage_line(e))
        return 2
    except click.Abort:  # end of input at a prompt
        err("Error: aborted")
        return 1
    return code if isinstance(code, int) else 0


def main() -> None:
    from objstore.errors import DsError

    from .main import Signals, catch_signals, interrupted

    catch_signals()
    try:
        code = _run()
    except DsError as e:
        if os.environ.get("DS_DEBUG"):
            raise
        err(f"Error: {e}")
        sys.exit(1)
    except KeyboardInterrupt:
        interrupted()
    except OSError as e:
        if os.environ.get("DS_DEBUG"):
            raise
        err(f"Error: {e.strerror or e}: {e.filename or ''}".rstrip(": "))
        sys.exit(1)
    if code == 130 and Signals.received is not None:  # typer turns KeyboardInterrupt into 130
        interrupted()
    sys.exit(code)
