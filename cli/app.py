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
             total: int | None = None) -> Iterator[Callable[[int, int], None] | None]:
    """A progress callback drawn on stderr when it is a terminal; None otherwise."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    bar = Progress(TextColumn(f"{label} {{task.fields[files]}} files"), BarColumn(), DownloadColumn(),
                   TransferSpeedColumn(), console=Console(stderr=True), transient=True)
    task = bar.add_task(label, total=total, files=0)
    with bar:
        yield lambda files, nbytes: bar.update(task, completed=nbytes, files=files)


@contextmanager
def transfer_progress(label: str, quiet: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A bytes-done / bytes-total bar on stderr for remote transfers (terminals only)."""
    if quiet or not sys.stderr.isatty():
        yield None
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

    bar = Progress(TextColumn(label), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   TimeRemainingColumn(), console=Console(stderr=True), transient=True)
    task = bar.add_task(label, total=None)
    with bar:
        yield lambda done, total: bar.update(task, completed=done, total=total)


def main() -> None:
    from objstore.errors import DsError

    from . import commands  # noqa: F401  (registers the commands)

    try:
        app()
    except DsError as e:
        if os.environ.get("DS_DEBUG"):
            raise
        err(f"Error: {e}")
        sys.exit(1)
    except KeyboardInterrupt:
        err("Interrupted.")
        sys.exit(130)
    except OSError as e:
        if os.environ.get("DS_DEBUG"):
            raise
        err(f"Error: {e.strerror or e}: {e.filename or ''}".rstrip(": "))
        sys.exit(1)
