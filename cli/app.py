"""The root typer app, shared options, and how errors become one line and an exit code."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="ds",
    help="Version folders of data: init, add, commit, log, diff, checkout, get.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]


class State:
    directory: str | None = None


state = State()


@app.callback()
def _root(
    directory: Annotated[
        str | None, typer.Option("-C", help="Run as if started in this folder.", show_default=False)
    ] = None,
) -> None:
    state.directory = directory


def cwd() -> str:
    return os.path.abspath(state.directory) if state.directory else os.getcwd()


def err(message: str) -> None:
    sys.stderr.write(message + "\n")


def out_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def open_store(attach: bool = False):
    """The store of the current folder; ``attach``: missing chunks come from its default remote."""
    from objstore.store import Store

    store = Store.open(cwd())
    if attach:
        from objstore.remote import attach_default

        attach_default(store)
    return store


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
    bar = Progress(TextColumn(text), BarColumn(),
                   DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                   console=Console(stderr=True), transient=True)
    task = bar.add_task(label, total=None, files=0, of="")

    class Bar:
        def total(self, files: int | None, nbytes: int | None) -> None:
            bar.update(task, total=nbytes, of="" if files is None else f"/{files}")

        def __call__(self, files: int, nbytes: int) -> None:
            bar.update(task, completed=nbytes, files=files)

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


def main() -> None:
    from objstore.errors import DsError
    from objstore.userconfig import export_env

    export_env()  # user-level settings (user.name, cache.rows) as defaults for unset variables
    from . import commands  # noqa: F401  (registers the commands)
    from .main import Signals, catch_signals, interrupted

    catch_signals()
    try:
        app()
    except SystemExit as e:
        # typer turns KeyboardInterrupt into a silent exit 130
        if Signals.received is not None and e.code == 130:
            interrupted()
        raise
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
