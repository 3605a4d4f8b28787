"""Looking at versions: log, reflog, show, diff, tag, squash."""

from __future__ import annotations

from typing import Annotated

import typer

from objstore.errors import DsError

from .app import JsonOpt, PathsAfterDashDash, QuietOpt, after_dashes, app, cwd, err, open_store, out_json
from .workflow import quote_path, say


@app.command(cls=PathsAfterDashDash)
def log(
    ctx: typer.Context,
    rev: Annotated[str, typer.Argument(help="Start from this version.")] = "HEAD",
    as_json: JsonOpt = False,
    graph: Annotated[bool, typer.Option("--graph", help="Draw the lineage graph.")] = False,
    limit: Annotated[int | None, typer.Option("-n", help="Show at most N versions.")] = None,
    oneline: Annotated[bool, typer.Option("--oneline", help="One line per version: id, names, "
                                          "first line of the message.")] = False,
    all_refs: Annotated[bool, typer.Option("--all", help="From every branch, tag, remote branch and "
                                           "dataset, not only REV.")] = False,
) -> None:
    """Versions, newest first; after `--`, only those that changed one of the PATHs."""
    from objstore.history import dataset_commits, decorations

    store = open_store()
    if all_refs and rev != "HEAD":
        raise DsError("give either REV or --all, not both")
    dashed = after_dashes(ctx)
    paths = dashed or None
    if dashed is None and rev != "HEAD" and _is_path_not_version(store, rev):
        paths, rev = [rev], "HEAD"  # git's `log PATH`: a file on disk that names no version
    if paths is not None:
        from objstore.worktree import to_store_path

        if graph:
            raise DsError("--graph draws whole lineages; drop it or the paths after --")

        paths = [to_store_path(store, p, cwd()) for p in paths]
    entries = store.log(rev, limit, paths, all_refs=all_refs)
    if not entries and not all_refs and rev == "HEAD" and store.head() is None:
        datasets = dataset_commits(store)
        if datasets:
            err(f"No versions on this branch yet; the store holds {len(datasets)} dataset version(s): "
                "ds log --all shows them (ds dataset search lists the datasets)")
        elif not as_json:  # as git's: an error, not an empty history
            raise DsError(f"your current branch {store.head_branch() or 'HEAD'!r} has no versions yet; "
                          "`ds add PATH` and `ds commit -m MESSAGE` make the first")
    if as_json:
        out_json([e.as_json() for e in entries])
        return
    tags = decorations(store, {e.id for e in entries})
    if graph:
        from .graph import draw

        for line in draw(entries, tags):
            typer.echo(line)
        return
    for e in entries:
        names = f" ({', '.join(tags[e.id])})" if e.id in tags else ""
        if oneline:
            typer.echo(f"{e.id[:12]}{names} {e.message.splitlines()[0] if e.message else ''}")
        else:
            typer.echo(f"{e.id[:12]}{names}  {e.created}  {e.author}\n{_indented(e.message)}\n")


@app.command()
def reflog(
    name: Annotated[str, typer.Argument(help="HEAD, a branch, a tag or a remote's branch.")] = "HEAD",
    limit: Annotated[int | None, typer.Option("-n", help="Show at most N entries.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Where HEAD (or a branch) has been, newest first; NAME@{N} names each entry's version."""
    from objstore.history import reflog as moves

    entries = moves(open_store(), name, limit)
    if as_json:
        out_json([e.as_json() for e in entries])
        return
    for e in entries:
        typer.echo(f"{e.id[:12]} {e.selector}: {e.message}")


@app.command()
def show(rev: Annotated[str, typer.Argument(help="Version to describe.")] = "HEAD",
         as_json: JsonOpt = False) -> None:
    """One version: its id, parents, message and what it changed."""
    from objstore.history import describe

    shown = describe(open_store(), rev)
    info, d, files = shown.info, shown.changes, shown.files
    if as_json:
        out_json(info.as_json() | {"files": files, "changes": d.as_json(), "stat": d.stat()})
        return
    typer.echo(f"version {info.id}\nparents {' '.join(info.parents) or '-'}\n"
               f"created {info.created}\nauthor  {info.author}\nfiles   {files}\n\n"
               f"{_indented(info.message)}\n")
    _print_diff(d.as_json())


def _is_path_not_version(store, arg: str) -> bool:
    """True when ``arg`` names no version but a path in the working folder (git's rule: `--`
    is needed only when an argument could be both)."""
    import os

    from objstore.errors import RevisionNotFound

    if not os.path.lexists(os.path.join(cwd(), arg)):
        return False
    try:
        store.resolve(arg)
    except RevisionNotFound:
        return True
    except DsError:
        return False
    raise DsError(f"{arg!r} is both a version and a path here; write `ds log {arg} --` for the "
                  f"version or `ds log -- {arg}` for the path")


def _indented(message: str) -> str:
    """A version's message as git prints it: every line four spaces in (blank lines stay blank)."""
    return "\n".join(f"    {line}" if line else "" for line in message.splitlines() or [""])


def _print_diff(data: dict) -> None:
    for key, mark in (("added", "A"), ("modified", "M"), ("removed", "D")):
        for p in data[key]:
            typer.echo(f"{mark}  {quote_path(p)}")
    for r in data["renamed"]:
        typer.echo(f"R  {quote_path(r['from'])} -> {quote_path(r['to'])}")


@app.command(cls=PathsAfterDashDash)
def diff(
    ctx: typer.Context,
    a: Annotated[str | None, typer.Argument(help="Old version (default: latest).")] = None,
    b: Annotated[str | None, typer.Argument(help="New version (default: the working folder).")] = None,
    as_json: JsonOpt = False,
    stat: Annotated[bool, typer.Option("--stat", help="Counts and bytes only.")] = False,
    cached: Annotated[bool, typer.Option("--cached", "--staged",
                                         help="What is staged, against the latest version (or A).")] = False,
) -> None:
    """Compare two versions, or a version with the working folder (or, with --cached, with
    what is staged); after `--`, only the PATHs."""
    from objstore.diff import diff_staged, diff_versions
    from objstore.store import split_range
    from objstore.worktree import to_store_path, working_diff, worktree_diff

    store = open_store()
    if a is not None and b is None and (span := split_range(a)) is not None:  # git's A..B, A...B
        a, b = span[0], span[1]
        if span[2]:  # from where B's history left A's
            a = store.merge_base(a, b)
    if cached and b is not None:
        raise DsError("--cached compares what is staged with one version; give at most one")
    if cached:
        d = diff_staged(store, a)
    elif b is None and a is None:
        d = working_diff(store)
    elif b is None:
        d, _, _ = worktree_diff(store, store.tree(a), renames=True)
    else:
        d = diff_versions(store, a or "HEAD", b)
    paths = after_dashes(ctx)
    if paths is not None:
        d = d.only([to_store_path(store, p, cwd()) for p in paths])
    data = d.stat() if stat else d.as_json()
    if as_json:
        out_json(data)
    elif stat:
        typer.echo(", ".join(f"{v} {k.replace('_', ' ')}" for k, v in data.items()))
    else:
        _print_diff(data)


@app.command()
def tag(
    name: Annotated[str | None, typer.Argument(help="Tag name (omit to list tags); with -l: a PATTERN.",
                                               show_default=False)] = None,
    rev: Annotated[str | None, typer.Argument(help="Version to tag (default HEAD); with -l: another "
                                              "PATTERN.", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Move an existing tag.")] = False,
    delete: Annotated[bool, typer.Option("--delete", "-d", help="Delete tag NAME (its reflog is "
                                         "kept, so gc keeps its version for the grace period).")] = False,
    list_: Annotated[bool, typer.Option("--list", "-l", help="List the tags, only those matching "
                                        "PATTERN if given (a glob: * ? [...], as git's).")] = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Name a version, delete a name (-d), or list the names (-l [PATTERN...])."""
    if list_ and (delete or force):
        raise DsError("-l lists tags; it takes patterns only, no -d or -f: `ds tag -l [PATTERN]`")
    store = open_store()
    if delete:
        from objstore.tags import delete_tag

        if name is None or rev is not None or force:
            raise DsError("-d takes one tag name and nothing else: `ds tag -d NAME`")
        tip = delete_tag(store, name)
        say(as_json, quiet, {"tag": name, "id": tip, "deleted": True},
            f"Deleted tag {name} (was {tip[:12]}; `ds tag {name} {tip[:12]}` brings it back)")
        return
    if name is None or list_:
        from fnmatch import fnmatchcase

        patterns = [p for p in (name, rev) if p is not None]  # as git's: a tag matching any of them
        tags = {t: cid for t, cid in sorted(store.tags().items())
                if not patterns or any(fnmatchcase(t, p) for p in patterns)}
        if as_json:
            out_json(tags)
            return
        for t, cid in tags.items():
            typer.echo(f"{t}\t{cid}")
        return
    commit_id = store.tag(name, rev or "HEAD", force)
    say(as_json, quiet, {"tag": name, "id": commit_id}, f"Tagged {commit_id[:12]} as {name}")


@app.command()
def squash(
    revs: Annotated[list[str], typer.Argument(help="Versions to merge, oldest first: for a lineage the "
                                              "result holds what the last one holds; unrelated "
                                              "versions give their union, later ones winning.")],
    message: Annotated[str, typer.Option("-m", "--message", help="Message of the new version.")],
    branch: Annotated[str | None, typer.Option("--branch", help="Put it on this new branch instead of "
                                                "moving the current one.")] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Discard uncommitted changes; with "
                                        "--branch, move an existing branch.")] = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Replace a lineage by one new root version with the merged content (its id on stdout)."""
    from objstore.squash import squash as do_squash

    store = open_store(attach=True)
    info = do_squash(store, revs, message, branch=branch, force=force)
    moved = branch or store.head_branch()
    if as_json:
        out_json(info.as_json() | {"branch": moved})
        return
    typer.echo(info.id)
    if not quiet:
        err(f"{f'Branch {moved}' if moved else 'HEAD'} is now at root version {info.id[:12]}, "
            f"the merged content of {', '.join(revs)}")
