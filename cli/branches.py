"""Branches: list, create, delete, rename (ds branch), and moving HEAD (ds switch)."""

from __future__ import annotations

from typing import Annotated

import click
import typer

from .app import JsonOpt, QuietOpt, app, open_store, out_json
from .workflow import say, switch_and_report


@app.command()
def branch(
    name: Annotated[str | None, typer.Argument(help="New branch name (omit to list branches).")] = None,
    rev: Annotated[str | None, typer.Argument(help="Version the new branch starts at (default HEAD); "
                                              "with -m: the new name.", show_default=False)] = None,
    delete: Annotated[str | None, typer.Option(
        "-d", "--delete", help="Delete branch NAME (refused if its versions are on no other ref).",
        show_default=False)] = None,
    force_delete: Annotated[str | None, typer.Option(
        "-D", help="Delete branch NAME even if its versions are on no other ref.",
        show_default=False)] = None,
    move: Annotated[bool, typer.Option(
        "-m", "--move", help="Rename: `-m NEW` the current branch (HEAD follows), `-m OLD NEW` "
        "any branch.")] = False,
    move_force: Annotated[bool, typer.Option("-M", help="As -m, replacing a branch named NEW.")] = False,
    force: Annotated[bool, typer.Option("--force", "-f", help="Move an existing branch to REV; with -m, "
                                        "replace NEW.")] = False,
    set_upstream_to: Annotated[str | None, typer.Option(
        "--set-upstream-to", "-u", help="Make branch NAME (default: the current one) follow "
        "REMOTE/BRANCH, as last fetched.", show_default=False)] = None,
    unset_upstream: Annotated[bool, typer.Option(
        "--unset-upstream", help="Make branch NAME (default: the current one) follow nothing.")] = False,
    remotes: Annotated[bool, typer.Option("--remotes", "-r", help="List the remotes' branches (as "
                                          "last fetched).")] = False,
    all_: Annotated[bool, typer.Option("--all", "-a", help="List local and remote branches.")] = False,
    verbose: Annotated[int, typer.Option(
        "--verbose", "-v", count=True, help="List with each tip's message and ahead/behind; "
        "-vv: and the upstream's name.")] = 0,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """List branches, or create, delete (-d/-D), rename (-m) one or set its upstream (-u)."""
    from objstore import branches as b

    move, force = move or move_force, force or move_force
    if sum(x is not None for x in (name, delete, force_delete)) > 1 or (move and (delete or force_delete)):
        raise click.UsageError("give one of: NAME [REV], -d NAME, -D NAME, -m OLD NEW")
    if (remotes or all_) and (name is not None or delete or force_delete or move or set_upstream_to
                              or unset_upstream):
        raise click.UsageError("-r and -a list branches; they take no NAME and no other action")
    if (set_upstream_to is not None or unset_upstream) and (delete or force_delete or move
                                                            or rev not in (None, "HEAD")):
        raise click.UsageError("--set-upstream-to and --unset-upstream take at most a branch NAME")
    store = open_store()
    if set_upstream_to is not None or unset_upstream:
        _upstream(store, name, set_upstream_to, as_json, quiet)
        return
    if delete or force_delete:
        target = delete or force_delete
        tip = b.delete_branch(store, target, force=force_delete is not None)
        say(as_json, quiet, {"branch": target, "id": tip, "deleted": True},
            f"Deleted branch {target} (was {tip[:12]}; `ds branch {target} {tip[:12]}` brings it back)")
        return
    if move:
        _rename(store, name, rev, force, as_json, quiet)
        return
    if name is not None:
        cid = b.create_branch(store, name, rev or "HEAD", force=force)
        say(as_json, quiet, {"branch": name, "id": cid}, f"Branch {name} at {cid[:12]}")
        return
    rows = [] if remotes else b.list_branches(store)
    others = b.remote_branches(store) if remotes or all_ else []
    ups = b.tracking_all(store) if as_json or verbose else {}  # ahead/behind only where shown
    if as_json:
        out_json([r.as_json() | _upstream_json(ups.get(r.name)) for r in rows]
                 + [r.as_json() | {"remote": True} for r in others])
        return
    if store.head_branch() is None and store.head() and not remotes:
        typer.echo(f"* (HEAD detached at {store.head()[:12]})")
    width = max((len(r.name) for r in rows), default=0)
    for r in rows:
        line = f"{'*' if r.current else ' '} {r.name}\t{r.id[:12]}"
        if verbose:
            relation = _relation(ups.get(r.name), named=verbose > 1)
            subject = store.info(r.id).message.partition("\n")[0]
            line = f"{'*' if r.current else ' '} {r.name:{width}} {r.id[:12]} {relation}{subject}"
        typer.echo(line)
    for r in others:  # git: `remotes/origin/main` beside local ones (-a), `origin/main` alone (-r)
        typer.echo(f"  {'remotes/' if all_ else ''}{r.name}\t{r.id[:12]}")


def _rename(store, name: str | None, rev: str | None, force: bool, as_json: bool, quiet: bool) -> None:
    """``ds branch -m [OLD] NEW``: with one name, the current branch is renamed (git's)."""
    from objstore import branches as b
    from objstore.errors import DsError

    if name is None:
        raise click.UsageError("-m renames a branch: `ds branch -m NEW` (the current one) or "
                               "`ds branch -m OLD NEW`")
    if rev is None:
        old, new = store.head_branch(), name
        if old is None:
            raise DsError("cannot rename the current branch while not on any branch (HEAD is detached); "
                          f"`ds branch -m OLD {new}` renames another, `ds switch -c {new}` starts one here")
    else:
        old, new = name, rev
    tip = b.rename_branch(store, old, new, force=force)
    say(as_json, quiet, {"branch": new, "id": tip, "renamed_from": old}, f"Renamed branch {old} to {new}")


def _upstream_json(t: dict | None) -> dict:
    if t is None:
        return {"upstream": None}
    return {"upstream": t["upstream"], "ahead": t["ahead"], "behind": t["behind"], "gone": t["gone"]}


def _relation(t: dict | None, named: bool) -> str:
    """git's ``[origin/main: ahead 1, behind 2]`` (``-vv``) or ``[ahead 1]`` (``-v``)."""
    if t is None:
        return ""
    parts = ["gone"] if t["gone"] else [f"{k} {t[k]}" for k in ("ahead", "behind") if t[k]]
    if named:
        return f"[{t['upstream']}{': ' + ', '.join(parts) if parts else ''}] "
    return f"[{', '.join(parts)}] " if parts else ""


def _upstream(store, name: str | None, to: str | None, as_json: bool, quiet: bool) -> None:
    """``ds branch --set-upstream-to REMOTE/BRANCH [NAME]`` and ``--unset-upstream [NAME]``."""
    from objstore import branches as b
    from objstore.errors import DsError

    branch = name or store.head_branch()
    if branch is None:
        raise DsError("HEAD is detached: name the branch (`ds branch -u REMOTE/BRANCH NAME`)")
    if branch not in {i.name for i in b.list_branches(store)}:
        raise DsError(f"no branch named {branch!r}; see `ds branch`")
    if to is None:
        if b.upstream(store, branch) is None:
            raise DsError(f"branch {branch!r} has no upstream to unset")
        b.unset_upstream(store, branch)
        say(as_json, quiet, {"branch": branch, "upstream": None}, f"Branch {branch} follows no upstream now")
        return
    up = b.follow(store, branch, to)
    say(as_json, quiet, {"branch": branch, "upstream": up.name},
        f"branch '{branch}' set up to track '{up.name}'.")


@app.command()
def switch(
    name: Annotated[str, typer.Argument(help="Branch to switch to (or to create, with -c).")],
    rev: Annotated[str | None, typer.Argument(
        help="With -c or -C: the version it starts at (default HEAD).")] = None,
    create: Annotated[bool, typer.Option("-c", "--create", help="Create the branch first.")] = False,
    force_create: Annotated[bool, typer.Option(
        "-C", "--force-create", help="Create the branch, or move it to REV if it exists (its reflog "
        "keeps where it was), then switch to it.")] = False,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Go to NAME's version on no branch "
                                         "(NAME may be any version).")] = False,
    force: Annotated[bool, typer.Option("--force", "-f", help="Discard uncommitted changes.")] = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Put HEAD on a branch and make the working folder match it (`-` or @{-N}: a previous
    branch)."""
    if create and force_create:
        raise click.UsageError("-c and -C both create the branch: give one of them")
    switch_and_report(open_store(attach=True), name, create=create or force_create, rev=rev, force=force,
                      quiet=quiet, as_json=as_json, detach=detach, reset=force_create)
