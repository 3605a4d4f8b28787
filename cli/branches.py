"""Branches: list, create, delete, rename (ds branch), and moving HEAD (ds switch)."""

from __future__ import annotations

from typing import Annotated

import click
import typer

from .app import JsonOpt, QuietOpt, app, err, open_store, out_json
from .workflow import switch_and_report


@app.command()
def branch(
    name: Annotated[str | None, typer.Argument(help="New branch name (omit to list branches).")] = None,
    rev: Annotated[str, typer.Argument(help="Version the new branch starts at.")] = "HEAD",
    delete: Annotated[str | None, typer.Option(
        "-d", "--delete", help="Delete branch NAME (refused if its versions are on no other ref).",
        show_default=False)] = None,
    force_delete: Annotated[str | None, typer.Option(
        "-D", help="Delete branch NAME even if its versions are on no other ref.",
        show_default=False)] = None,
    move: Annotated[tuple[str, str] | None, typer.Option(
        "-m", "--move", help="Rename branch OLD to NEW.", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Move an existing branch to REV; with -m, "
                                        "replace NEW.")] = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """List branches, or create, delete (-d/-D) or rename (-m) one."""
    from objstore import branches as b

    if sum(x is not None for x in (name, delete, force_delete, move)) > 1:
        raise click.UsageError("give one of: NAME [REV], -d NAME, -D NAME, -m OLD NEW")
    store = open_store()
    if delete or force_delete:
        target = delete or force_delete
        tip = b.delete_branch(store, target, force=force_delete is not None)
        if as_json:
            out_json({"branch": target, "id": tip, "deleted": True})
        elif not quiet:
            err(f"Deleted branch {target} (was {tip[:12]}; `ds branch {target} {tip[:12]}` brings it back)")
        return
    if move is not None:
        b.rename_branch(store, move[0], move[1], force=force)
        if as_json:
            out_json({"branch": move[1], "id": store.meta.branches()[move[1]], "renamed_from": move[0]})
        elif not quiet:
            err(f"Renamed branch {move[0]} to {move[1]}")
        return
    if name is not None:
        cid = b.create_branch(store, name, rev, force=force)
        if as_json:
            out_json({"branch": name, "id": cid})
        elif not quiet:
            err(f"Branch {name} at {cid[:12]}")
        return
    rows = b.list_branches(store)
    if as_json:
        out_json([r.as_json() for r in rows])
        return
    if store.meta.head_branch() is None and store.head():
        typer.echo(f"* (HEAD detached at {store.head()[:12]})")
    for r in rows:
        typer.echo(f"{'*' if r.current else ' '} {r.name}\t{r.id[:12]}")


@app.command()
def switch(
    name: Annotated[str, typer.Argument(help="Branch to switch to (or to create, with -c).")],
    rev: Annotated[str | None, typer.Argument(
        help="With -c: the version it starts at (default HEAD).")] = None,
    create: Annotated[bool, typer.Option("-c", "--create", help="Create the branch first.")] = False,
    force: Annotated[bool, typer.Option("--force", "-f", help="Discard uncommitted changes.")] = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Put HEAD on a branch and make the working folder match it."""
    switch_and_report(open_store(attach=True), name, create=create, rev=rev, force=force, quiet=quiet,
                      as_json=as_json)
