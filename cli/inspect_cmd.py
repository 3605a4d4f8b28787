"""Looking inside versions and the store: ls, du; and settings: config."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import JsonOpt, app, cwd, open_store, out_json
from .workflow import quote_path


def _rev_and_path(store, rev: str | None, path: str | None) -> tuple[str, str]:
    """REV and the store path to list: one argument is a version if it names one, else a
    path in HEAD (as `git log foo` reads foo)."""
    from objstore.errors import DsError, RevisionNotFound
    from objstore.worktree import to_store_path

    if rev is not None and path is None and store.head() is not None:
        try:
            store.resolve(rev)
        except RevisionNotFound:
            rel = to_store_path(store, rev, cwd())
            if store.meta.lookup(store.head_tree(), rel) is None:
                raise DsError(f"{rev!r} names no version and no path in HEAD; see `ds log` "
                              "and `ds ls`") from None
            return "HEAD", rel
    return rev or "HEAD", to_store_path(store, path, cwd()) if path else ""


@app.command("ls")
def ls(
    rev: Annotated[str | None, typer.Argument(help="Version to list (default HEAD).",
                                              show_default=False)] = None,
    path: Annotated[str | None, typer.Argument(help="A folder or file inside the version.",
                                               show_default=False)] = None,
    recursive: Annotated[bool, typer.Option("-r", "--recursive", help="Every file below, "
                                            "not one level.")] = False,
    long: Annotated[bool, typer.Option("-l", "--long", help="With kind (file, exec, link, "
                                       "external, folder) and size.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """A version's files, one level by default (folders end with /); paths are from the
    version's root."""
    from objstore.listing import FOLDER, list_version

    store = open_store()
    rev_, path_ = _rev_and_path(store, rev, path)
    rows = list_version(store, rev_, path_, recursive)
    if as_json:
        out_json([r.as_json() for r in rows])
        return
    for r in rows:
        name = quote_path(r.path) + ("/" if r.kind == FOLDER else "")
        if long:
            size = "-" if r.size is None else str(r.size)
            typer.echo(f"{r.kind:<8} {size:>12}  {name}")
        else:
            typer.echo(name)


def human(n: int) -> str:
    """Bytes in binary units, as `du -h` reads."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


@app.command()
def du(
    rev: Annotated[str, typer.Argument(help="Version to measure.")] = "HEAD",
    as_json: JsonOpt = False,
) -> None:
    """A version's logical size (its files), stored size (its distinct chunks, as stored)
    and, for each version of its history, the stored bytes it added."""
    from objstore.errors import DsError
    from objstore.usage import disk_usage

    store = open_store()
    if rev == "HEAD" and store.head() is None:
        raise DsError("there is no version yet to measure; `ds commit` one first")
    u = disk_usage(store, rev)
    if as_json:
        out_json(u.as_json())
        return
    where = (f"{u.chunks - u.missing} of {u.chunks} chunks; {u.missing} on a remote only, "
             "not counted") if u.missing else f"{u.chunks} chunks"
    typer.echo(f"version  {u.version[:12]}\nfiles    {u.files}\n"
               f"logical  {human(u.logical)} ({u.logical} bytes)\n"
               f"stored   {human(u.stored)} ({u.stored} bytes in {where})\n\n"
               "what each version adds (stored bytes of chunks no older version uses):")
    for h in u.history:
        first = h.message.splitlines()[0] if h.message else ""
        typer.echo(f"{h.id[:12]}  {human(h.adds):>10}  {h.chunks:>7} chunk(s)  {first}")
