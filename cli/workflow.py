"""Everyday commands: init, add, rm, status, commit, checkout, get."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Annotated

import click
import typer

from objstore.errors import DsError, NothingToCommit

from .app import (
    JsonOpt,
    PathsAfterDashDash,
    QuietOpt,
    after_dashes,
    app,
    cwd,
    err,
    open_store,
    out_json,
    progress,
    state,
)


def say(as_json: bool, quiet: bool, data: object, note: str) -> None:
    """A command's outcome: ``data`` as JSON on stdout with --json, else ``note`` on stderr unless -q."""
    if as_json:
        out_json(data)
    elif not quiet:
        err(note)


def quote_path(path: str) -> str:
    """A path as one printable line: one with control characters (a newline) or an
    undecodable byte is shown quoted with escapes, as git does."""
    if path.isprintable() and "\ufffd" not in path:
        return path
    import json

    return json.dumps(path)


def init_folder(directory: str | None, quiet: bool) -> str:
    """The folder ``ds init`` makes a store for: DIR, else DSSTORE_DIR's folder (as ``git init``
    honours GIT_DIR), else here; a note when DSSTORE_DIR will send later commands elsewhere."""
    from pathlib import Path

    from objstore.paths import STORE_DIR, STORE_ENV

    env = os.environ.get(STORE_ENV)
    if directory is None and env and Path(env).expanduser().absolute().name != STORE_DIR:
        raise DsError(f"DSSTORE_DIR is {env}, but a store folder must be named {STORE_DIR}; "
                      f"set DSSTORE_DIR=/path/{STORE_DIR}, or give ds init a folder")
    if directory is None:
        return str(Path(env).expanduser().absolute().parent) if env else cwd()
    folder = os.path.join(cwd(), directory)
    if env and Path(env).expanduser().absolute() != Path(folder).absolute() / STORE_DIR and not quiet:
        err(f"Note: DSSTORE_DIR is {env}, so other ds commands will use that store, not this one")
    return folder


@app.command()
def init(
    directory: Annotated[str | None, typer.Argument(
        help="Folder to version (created if missing); default: DSSTORE_DIR's folder if set, else here.",
        show_default=False)] = None,
    hash: Annotated[
        str, typer.Option("--hash", help="Content hash: xxh3-128 (fast) or blake3.")
    ] = "xxh3-128",
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Create DIR/.dsstore: an empty store for the folder."""
    from objstore.store import Store

    store = Store.init(init_folder(directory, quiet), hash=hash)
    say(as_json, quiet, {"store": str(store.path), "folder": str(store.worktree), "hash": store.config.hash},
        f"Initialized empty store in {store.path} ({store.config.hash})")


@app.command()
def add(
    paths: Annotated[list[str] | None, typer.Argument(
        help="Files or folders to stage (folders recurse), or one URL (s3://, gs://, az://, ...).",
        show_default=False)] = None,
    all_: Annotated[bool, typer.Option("-A", "--all", help="Stage every change in the working folder, "
                                       "as git's add -A.")] = False,
    update: Annotated[bool, typer.Option("-u", "--update", help="Stage changes and removals of tracked "
                                         "files only (under PATHS, else everywhere), as git's add -u; "
                                         "new files stay untracked.")] = False,
    force: Annotated[bool, typer.Option("--force", "-f", help="Stage files the .dsignore rules hide too, "
                                        "as git's add -f.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="Only print what would be staged "
                                          "(`add 'PATH'`, `remove 'PATH'`), as git's add -n.")] = False,
    to: Annotated[str | None, typer.Option("--to", help="With a URL: the folder its objects become "
                                           "(default: the URL's last name).", show_default=False)] = None,
    dask: Annotated[str | None, typer.Option("--dask", help="With a URL: read on a Dask cluster, "
                                             "local:N worker processes or a scheduler's address.")] = None,
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-o", help="With a URL: storage option key=value (endpoint_url, profile, ...).")] = None,
    into_remote: Annotated[str | None, typer.Option(
        "--into-remote", help="With a URL: write the packs straight to this remote (name or URL), "
        "none to this machine's disk; `ds push` then sends only the version.")] = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Stage files for the next commit; removals of tracked files under a folder too.

    A URL's objects are streamed into the store without a copy in the working folder: its
    folder (--to) is versioned but not checked out; `ds get REV DIR --include 'PATH/**'`
    copies it out."""

    if not (all_ or update or paths):
        raise click.UsageError("name the files or folders to stage, or give -A for all of them "
                               "(-u for the tracked ones)")
    if all_ and update:
        raise click.UsageError("-A and -u differ on new files: give one of them")
    from objstore.worktree import add as do_add

    paths = paths or [str(open_store().worktree)]
    if any("://" in p for p in paths):
        if update or force or dry_run:
            raise click.UsageError("-u, -f and -n are for files in the working folder; a URL is read whole")
        return _add_url(paths, to, dask, option, into_remote, quiet, as_json)
    if to is not None or dask is not None or option or into_remote is not None:
        raise click.UsageError("--to, --dask, --option and --into-remote go with a URL "
                               "(s3://..., gs://..., az://...)")
    store = open_store()
    if dry_run:
        return _add_dry_run(do_add(store, paths, cwd=cwd(), update=update, force=force, dry_run=True),
                            as_json)
    with progress("adding", quiet) as cb:
        report = do_add(store, paths, cb, cwd=cwd(), update=update, force=force)
    for a, b in report.case_collisions:
        err(f"Warning: {quote_path(a)} and {quote_path(b)} differ only in case; they collide on "
            "case-insensitive disks")
    from objstore.worktree import skip_reason

    for p in report.skipped:
        err(f"Warning: skipped {quote_path(p)}: {skip_reason(p)}")
    for p in report.reread:
        err(f"Warning: {quote_path(p)} changed while it was read; it was read again")
    say(as_json, quiet, {"staged": report.staged, "removed": report.removed, "bytes_read": report.bytes_read,
                         "bytes_new": report.bytes_new, "skipped": report.skipped, "reread": report.reread,
                         "ignored": [p for p, _ in report.ignored],
                         "case_collisions": [list(pair) for pair in report.case_collisions]},
        f"Staged {report.staged} file(s), {report.removed} removal(s); {report.bytes_new} new bytes stored")
    _refuse_ignored(report)


def _refuse_ignored(report) -> None:
    """As git's: a path named and not staged is an error (the others are staged)."""
    if report.ignored:
        named = ", ".join(f"{quote_path(p)} (by {quote_path(os.path.relpath(r, cwd()))})"
                          for p, r in report.ignored)
        raise DsError(f"not staged, ignored by .dsignore rules: {named}; `ds add -f PATH` stages them "
                      "anyway (or remove the matching rule)")


def _add_dry_run(report, as_json: bool) -> None:
    """`ds add -n`: git's ``add 'PATH'`` / ``remove 'PATH'`` lines on stdout, by path (they
    are the result, so -q keeps them); nothing was stored or staged."""
    from objstore.worktree import skip_reason

    for p in report.skipped:
        err(f"Warning: skipped {quote_path(p)}: {skip_reason(p)}")
    if as_json:
        out_json({"dry_run": True, "add": report.would_add, "remove": report.would_remove,
                  "skipped": report.skipped, "ignored": [p for p, _ in report.ignored]})
    else:
        lines = [(p, f"add '{quote_path(p)}'") for p in report.would_add]
        lines += [(p, f"remove '{quote_path(p)}'") for p in report.would_remove]
        for _, line in sorted(lines):
            typer.echo(line)
    _refuse_ignored(report)


def _add_url(paths: list[str], to: str | None, dask: str | None, option: list[str] | None,
             into_remote: str | None, quiet: bool, as_json: bool) -> None:
    from objstore.url_ingest import add_url

    from .remotes import _parse_options

    if len(paths) != 1:
        raise click.UsageError("give one URL at a time (each becomes its own folder with --to)")
    from objstore.worktree import to_store_path

    url = paths[0]
    store = open_store()
    # --to is a path as `ds add` takes one (from the current folder); by default the URL's last name
    folder = to_store_path(store, to if to is not None else url.rstrip("/").rpartition("/")[2], cwd())
    with progress("adding", quiet) as cb:
        report = add_url(store, url, folder, _parse_options(option), cb, dask, remote=into_remote)
    for p in report.reread:
        err(f"Warning: {quote_path(p)} changed while it was read; it was read again")
    say(as_json, quiet, {"url": url, "folder": folder, "into_remote": into_remote, "objects": report.objects,
                         "staged": report.staged, "removed": report.removed, "bytes_read": report.bytes_read,
                         "bytes_new": report.bytes_new, "unchanged": report.unchanged, "tasks": report.tasks,
                         "reread": report.reread},
        f"Staged {report.staged} file(s), {report.removed} removal(s) from {report.objects} object(s) "
        f"under {url} as {folder}/ ({report.unchanged} unchanged since the last add, not read); "
        f"{report.bytes_new} new bytes stored. {folder}/ is not checked out: "
        f"`ds get HEAD DIR --include '{folder}/**'` copies it after the commit")


@app.command()
def rm(
    paths: Annotated[list[str], typer.Argument(help="Files or folders to stop versioning.")],
    keep: Annotated[bool, typer.Option("--keep", "--cached",
                                       help="Leave the files in the working folder.")] = False,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Delete files with unstaged changes too.")
    ] = False,
    recursive: Annotated[bool, typer.Option("-r", "--recursive", help="Accepted as git's: a folder is always "
                                            "removed with all it holds.")] = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Stage the removal of files or folders (and delete them unless --keep)."""
    from objstore.worktree import rm as do_rm

    removed = do_rm(open_store(), paths, keep=keep, force=force, cwd=cwd())
    say(as_json, quiet, {"removed": removed, "kept": keep},
        f"Removed {len(removed)} file(s) from the next version")


@app.command()
def status(
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Accepted for scripts; status prints only "
                                        "what it finds.")] = False,
    short: Annotated[bool, typer.Option("--short", "-s", help="One line a path, as git's: XY PATH (X: "
                                        "staged, Y: working folder; ?? not versioned).")] = False,
    porcelain: Annotated[bool, typer.Option("--porcelain", help="As --short, a format kept stable for "
                                            "scripts.")] = False,
    branch: Annotated[bool, typer.Option("--branch", "-b", help="With -s or --porcelain: first the "
                                         "branch and its upstream, as git's `## main...origin/main "
                                         "[ahead 1]`.")] = False,
) -> None:
    """The working folder against the latest version, and what is staged."""
    from objstore.quicktrack import quick_tracking

    from .headline import branch_lines, head_json
    from .main import quick_look

    quick = quick_tracking(cwd())  # the branch line, if files alone settle it
    clean, walked = quick_look(cwd())  # and the folders that may differ from HEAD
    if quick is not None and clean:  # proved unchanged from stat data alone
        if (short or porcelain) and not as_json:
            if branch:
                typer.echo(short_branch_line(quick))
            return
        if as_json:
            out_json({"added": [], "modified": [], "removed": [], "renamed": [], "skipped": [],
                      "staged": {"added": [], "modified": [], "removed": [], "renamed": []}}
                     | head_json(quick))
        else:
            typer.echo("\n".join([*branch_lines(quick), "Nothing changed."]))
        return
    from objstore.branches import tracking
    from objstore.worktree import status as do_status

    store = open_store()
    st = do_status(store, walked)
    head = tracking(store)
    if as_json:
        out_json(st.as_json() | head_json(head))
        return
    # as git's: paths from the folder the command runs in, but --porcelain's from the root
    shown = (lambda p: p) if porcelain else from_here(str(store.worktree.resolve()))
    if short or porcelain:
        for line in [*([short_branch_line(head)] if branch else []), *_short_lines(st.as_json(), shown)]:
            typer.echo(line)
        return
    for line in branch_lines(head):  # "On branch main" and its upstream, or "HEAD detached at"
        typer.echo(line)
    found = st.as_json()
    for title, changes in (("Staged for the next commit:", found["staged"]),
                           ("Working folder against the latest version:", found)):
        if any(changes[key] for key in ("added", "modified", "removed", "renamed")):
            typer.echo(title)
            for key in ("added", "modified", "removed"):
                for p in changes[key]:
                    typer.echo(f"  {key:9} {quote_path(shown(p))}")
            for r in changes["renamed"]:
                typer.echo(f"  renamed   {quote_path(shown(r['from']))} -> {quote_path(shown(r['to']))}")
    if st.skipped or st.bad_names:
        from objstore.worktree import bad_name_reason, skip_reason

        typer.echo("Not versioned:")
        for p in st.skipped:
            typer.echo(f"  {quote_path(shown(p))}: {skip_reason(p)}")
        for p in st.bad_names:
            typer.echo(f"  {quote_path(shown(p))}: the {bad_name_reason(p).removeprefix('file ')} "
                       "(rename it to version it)")
    if st.clean:
        typer.echo("Nothing changed.")


def short_branch_line(tr: dict) -> str:
    """git's ``status -sb`` header from ``branches.tracking``'s answer: ``## main``,
    ``## main...origin/main [ahead 1, behind 2]`` (``[gone]`` when the last fetch did not
    find it), ``## No commits yet on main``, ``## HEAD (no branch)``."""
    if tr["branch"] is None:
        return "## HEAD (no branch)"
    line = f"## {'No commits yet on ' if tr['head'] is None else ''}{tr['branch']}"
    if tr["upstream"] is None:
        return line
    line += f"...{tr['upstream']}"
    ahead, behind = tr["ahead"], tr["behind"]
    parts = ["gone"] if tr["gone"] else [f"{k} {n}" for k, n in (("ahead", ahead), ("behind", behind)) if n]
    return f"{line} [{', '.join(parts)}]" if parts else line


def from_here(worktree: str) -> Callable[[str], str]:
    """A stored path as git's status shows it (``status.relativePaths``): from the folder the
    command runs in (``../top.txt`` from ``a/``); as stored when that is the root or lies
    outside the working folder (``DSSTORE_DIR``)."""
    from objstore.paths import STORE_DIR

    here = os.path.relpath(os.path.realpath(cwd()), worktree)
    if here == "." or here == ".." or here.startswith(".." + os.sep) or os.path.isabs(here) \
            or here.split(os.sep)[0] == STORE_DIR:  # in the store: no folder of the version
        return lambda p: p
    shown = relative_to(here.replace(os.sep, "/"))
    return lambda p: "./" if (r := shown(p)) == "." else r  # a file where this folder is now


def relative_to(folder: str) -> Callable[[str], str]:
    """A stored path as seen from stored folder ``folder`` ("" is the root)."""
    if not folder:
        return lambda p: p
    import posixpath

    return lambda p: posixpath.relpath(p, folder)


def _short_lines(found: dict, shown: Callable[[str], str] = lambda p: p) -> list[str]:
    """git's short status: XY PATH with X the stage against HEAD and Y the working folder
    against the stage, by path; then a ``?? PATH`` line for each file not in the stage (a
    rename in the working folder is `` D`` and ``??``, as git shows it). ``shown``: how a
    path is printed (``from_here``)."""
    marks: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    untracked = list(found["added"]) + [r["to"] for r in found["renamed"]]
    for key, code in (("added", "A"), ("modified", "M"), ("removed", "D")):
        for p in found["staged"][key]:
            marks.setdefault(p, [" ", " "])[0] = code
    for r in found["staged"]["renamed"]:
        marks.setdefault(r["to"], [" ", " "])[0] = "R"
        names[r["to"]] = f"{_git_quote(shown(r['from']))} -> {_git_quote(shown(r['to']))}"
    for key, code in (("modified", "M"), ("removed", "D")):
        for p in found[key]:
            marks.setdefault(p, [" ", " "])[1] = code
    for r in found["renamed"]:
        marks.setdefault(r["from"], [" ", " "])[1] = "D"
    lines = [f"{x}{y} {names.get(p) or _git_quote(shown(p))}" for p, (x, y) in sorted(marks.items())]
    return lines + [f"?? {_git_quote(shown(p))}" for p in sorted(untracked)]


def _git_quote(path: str) -> str:
    """A path as git prints it in a short status: in double quotes with C escapes (octal
    for bytes outside printable ASCII) when it holds any, or a space, a quote or a backslash."""
    data = os.fsencode(path)
    if all(0x20 < b < 0x7F and b not in b'"\\' for b in data):
        return path
    named = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r",
             0x22: '\\"', 0x5C: "\\\\"}
    return '"' + "".join(named.get(b) or (chr(b) if 0x20 <= b < 0x7F else f"\\{b:03o}") for b in data) + '"'


@app.command()
def commit(
    ctx: typer.Context,
    message: Annotated[str | None, typer.Option("-m", "--message", help="What this version is (with "
                                                "--amend: default, the old message).",
                                                show_default=False)] = None,
    all_: Annotated[bool, typer.Option(
        "-a", "--all", help="Stage changes and removals of tracked files first, as git's commit -a "
        "(new files: `ds add` them).")] = False,
    amend: Annotated[bool, typer.Option("--amend", help="Replace the latest version by one with the "
                                        "staged content, its parents and author (and its message "
                                        "unless -m); the old one stays in the reflog.")] = False,
    allow_empty: Annotated[bool, typer.Option("--allow-empty", help="Record a version even if it "
                                              "holds what its parent holds.")] = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Record the staged files as a new version (author: DS_AUTHOR, else `ds config --global
    user.name`, else the login name)."""
    from objstore.userconfig import user_name

    if message is None and not amend:  # git opens an editor; ds asks for -m, as click would
        param = next(p for p in ctx.command.params if p.name == "message")
        raise click.MissingParameter(ctx=ctx, param=param)
    store = open_store()
    author = user_name()
    replaced: str | None = None  # the version --amend replaces
    if amend:
        replaced = store.check_amend(message)  # before -a stages anything
    else:
        store.check_commit(message, author)  # -a stages nothing when the commit cannot be made
    if all_:
        from objstore.worktree import add as do_add

        with progress("adding", quiet) as cb:
            do_add(store, [str(store.worktree)], cb, update=True)
    try:
        info = (store.amend(message, allow_empty=allow_empty) if amend
                else store.commit(message, author, allow_empty=allow_empty))
    except NothingToCommit as e:
        if amend:
            raise
        raise NothingToCommit(_nothing_to_commit(store, all_) or str(e)) from None
    if as_json:
        out_json(info.as_json() | ({"replaces": replaced} if amend else {}))
    elif not quiet:
        typer.echo(info.id)
    if store.head_branch() is None and not quiet:
        err(f"Committed on a detached HEAD: {info.id[:12]} is on no branch; "
            f"keep it with `ds switch -c NAME` (or `ds branch NAME {info.id[:12]}`)")


def _nothing_to_commit(store, all_: bool) -> str | None:
    """git's words for a commit with nothing to record, from what the working folder holds:
    changes to tracked files (-a would take them), new files only, or nothing at all. None
    if the folder cannot be compared (the plain message stands)."""
    from objstore.worktree import status as do_status

    try:
        st = do_status(store)
    except DsError:
        return None
    if (st.modified or st.removed or st.renamed) and not all_:
        return "no changes added to commit: `ds add PATH` (or `ds add -u`), or commit with -a"
    if st.added or st.renamed:
        return ("nothing added to commit but new files are present: `ds add PATH` (or `ds add -A`) "
                "to track them")
    if store.head() is None:
        return "nothing to commit: create or copy files here, then `ds add PATH`"
    return "nothing to commit: the working folder matches the latest version"


@app.command(cls=PathsAfterDashDash)
def checkout(
    ctx: typer.Context,
    rev: Annotated[str | None, typer.Argument(
        help="Version: id or prefix, tag, branch, HEAD~N; `-` or @{-N} a previous branch.",
        show_default=False)] = None,
    paths: Annotated[list[str] | None, typer.Argument(help="Only restore these paths.")] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Discard uncommitted changes.")] = False,
    new_branch: Annotated[str | None, typer.Option(
        "-b", help="Create branch NAME at REV (default HEAD) and switch to it.", show_default=False)] = None,
    reset_branch: Annotated[str | None, typer.Option(
        "-B", help="As -b, but a branch NAME that exists is moved to REV (its reflog keeps where it "
        "was).", show_default=False)] = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Set the working folder to a version (a branch puts HEAD on it, any other version
    detaches HEAD there).

    With paths, set those files and their stage entries to REV's, as git's; `ds checkout --
    PATH...` puts files back as staged (`ds restore PATH`)."""
    from objstore.branches import previous_branch_name
    from objstore.worktree import checkout as do_checkout

    dashed = after_dashes(ctx)
    paths = [*(paths or []), *(dashed or [])]
    if new_branch is not None and reset_branch is not None:
        raise click.UsageError("-b and -B both name the branch: give one of them")
    if new_branch is not None or reset_branch is not None:
        flag = "-b" if new_branch is not None else "-B"
        if paths:
            raise click.UsageError(f"{flag} takes no paths: `ds checkout {flag} NAME [REV]`")
        switch_and_report(open_store(attach=True), new_branch or reset_branch, create=True, rev=rev,
                          force=force, quiet=quiet, as_json=as_json, reset=reset_branch is not None)
        return
    if rev is None and not paths:
        raise click.UsageError("name a version or branch, or the paths after `--` to restore from the stage")
    store = open_store(attach=True)
    if rev is None:  # git's checkout -- PATH: from the stage
        from objstore.worktree import restore as do_restore

        with progress("writing", quiet) as cb:
            restored = do_restore(store, paths, progress=cb, cwd=cwd())
        for p in restored.links_refused:
            err(f"Warning: link {quote_path(p)} points outside the folder; not created")
        say(as_json, quiet, {"restored": restored.restored, "links_refused": restored.links_refused},
            f"Restored {len(restored.restored)} file(s) from the stage")
        return
    if not paths and (branch := previous_branch_name(store, rev)) is not None:
        switch_and_report(store, branch, create=False, rev=None, force=force, quiet=quiet, as_json=as_json)
        return
    rev = "@{-1}" if rev == "-" else rev  # the previous checkout was of a version: detached again
    if not paths:
        _no_version_but_a_path(store, rev)
    with progress("writing", quiet) as cb:
        report = do_checkout(store, rev, paths or None, force=force, progress=cb, cwd=cwd())
        if paths:  # as git's: the stage takes REV's entries too
            from objstore.worktree import restore as do_restore

            do_restore(store, paths, staged=True, source=rev, cwd=cwd(), overlay=True)
    report_move(report, quiet)
    if as_json:
        out_json(moved_json(store, report, rev=rev, paths=paths or None))
    elif not quiet:
        err(f"Checked out {rev} ({report.count} file(s) written)")
    if getattr(report, "detached", None) and not quiet:
        err(f"HEAD is now detached at {report.detached[:12]}: versions you commit here are on no "
            "branch. To keep them, create one: `ds switch -c NAME` (or `ds branch NAME`).")


def _no_version_but_a_path(store, rev: str) -> None:
    """``ds checkout FILE``: git restores the file (dropping its changes unasked); ds names
    the commands that do it knowingly when REV names no version but a path here."""
    import shlex

    from objstore.errors import RevisionNotFound
    from objstore.worktree import staged_path

    try:
        store.resolve(rev)
    except RevisionNotFound as e:
        if not staged_path(store, rev, cwd()):  # a file the stage holds, here or deleted here
            raise
        ds = "ds" if state.directory is None else f"ds -C {shlex.quote(cwd())}"  # as typed: from -C's folder
        name = shlex.quote(rev)
        raise RevisionNotFound(f"{e}; {rev!r} is a path: `{ds} restore {name}` (or `{ds} checkout -- "
                               f"{name}`) sets it back from the stage, dropping its changes") from None


def moved_json(store, report, rev: str | None = None, paths: list[str] | None = None,
               branch: str | None = None) -> dict:
    """What checkout and switch did, for --json: the version now in place (REV's, for a
    checkout of paths; else HEAD's), HEAD's branch, files written, links refused, and a
    detached version left behind."""
    return {
        "id": store.resolve(rev) if paths else store.head(),
        "branch": branch or store.head_branch(),
        "paths": paths,
        "files_written": getattr(report, "count", 0),
        "links_refused": list(getattr(report, "links_refused", [])),
        "left_behind": getattr(report, "left_behind", None),
    }


def switch_and_report(store, name: str, create: bool, rev: str | None, force: bool, quiet: bool,
                      as_json: bool, detach: bool = False, reset: bool = False) -> None:
    """`ds switch [-c|-C|--detach]` and `ds checkout -b|-B`: move HEAD onto the branch, then
    say so (a branch -C/-B moved: where it was, as its reflog keeps it)."""
    from objstore.branches import list_branches
    from objstore.branches import switch as do_switch

    was = {b.name: b for b in list_branches(store)}.get(name) if reset else None
    before = store.head_branch()
    with progress("writing", quiet) as cb:
        report = do_switch(store, name, create=create, rev=rev, force=force, progress=cb, detach=detach,
                           reset=reset)
    report_move(report, quiet)
    if as_json:
        out_json(moved_json(store, report, branch=store.head_branch())
                 | ({"reset_from": was.id if was else None} if reset else {}))
    elif quiet:
        return
    elif detach:
        err(f"HEAD is now at {store.head()[:12]}, on no branch (`ds switch -c NAME` keeps what you commit)")
    elif was is not None:  # git's words, and where the branch was (NAME@{1} in its reflog)
        what = "Reset branch" if was.current else "Switched to and reset branch"
        err(f"{what} '{name}' (was {was.id[:12]}; `ds reflog {name}` keeps it as {name}@{{1}})")
    elif not create and before is not None and store.head_branch() == before:
        err(f"Already on '{before}'")
    else:  # `-` names the previous branch
        err(f"Switched to {'a new ' if create or reset else ''}branch '{store.head_branch() or name}'")


def report_move(report, quiet: bool) -> None:
    """Warnings every command that moves HEAD gives: refused links, work left behind."""
    if report is None:
        return
    for p in report.links_refused:
        err(f"Warning: link {p} points outside the folder; not created")
    behind = getattr(report, "left_behind", None)
    if behind:
        err(f"Warning: you are leaving version {behind[:12]} behind, not on any branch. "
            f"To keep it: `ds branch NAME {behind}` (gc keeps it for the reflog's 14 days).")


@app.command()
def get(
    rev: Annotated[str, typer.Argument(help="Version to copy.")],
    directory: Annotated[str, typer.Argument(help="Destination folder (new or empty).")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a non-empty folder.")] = False,
    include: Annotated[list[str] | None, typer.Option("--include", help="Only paths matching GLOB.")] = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Copy a version into a folder as plain, writable files."""

    from objstore.get import get_copy

    store = open_store(attach=True)
    dest = os.path.join(cwd(), directory)
    with progress("writing", quiet) as cb:
        report = get_copy(store, rev, dest, overwrite=overwrite, include=include, progress=cb)
    for p in report.links_refused:
        err(f"Warning: link {p} points outside the folder; not created")
    if as_json:
        out_json({"id": store.resolve(rev), "folder": os.path.abspath(dest), "files_written": report.count,
                  "links_refused": report.links_refused})
    elif not quiet:
        err(f"Wrote {report.count} file(s) to {directory}")


@app.command()
def restore(
    paths: Annotated[list[str], typer.Argument(help="Files or folders to restore (`.` for all).")],
    staged: Annotated[bool, typer.Option("--staged", "-S", help="Unstage: the stage entries go "
                                         "back to HEAD's (or --source's); working files untouched.")] = False,
    source: Annotated[str | None, typer.Option("--source", "-s", help="Take the content from this "
                                               "version instead of the stage.", show_default=False)] = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Put working files back as staged (or as in --source), or unstage paths (--staged)."""
    from objstore.worktree import restore as do_restore

    store = open_store(attach=True)
    with progress("writing", quiet) as cb:
        report = do_restore(store, paths, staged=staged, source=source, progress=cb, cwd=cwd())
    for p in report.links_refused:
        err(f"Warning: link {quote_path(p)} points outside the folder; not created")
    if as_json:
        out_json({"restored": report.restored, "removed": report.removed,
                  "links_refused": report.links_refused, "staged": staged})
    if quiet or as_json:
        return
    if staged:
        err(f"Unstaged {len(report.restored) + len(report.removed)} file(s): the stage now matches "
            f"{source or 'HEAD'} there")
    else:
        gone = f", removed {len(report.removed)} not in {source}" if report.removed else ""
        err(f"Restored {len(report.restored)} file(s) from {source or 'the stage'}{gone}")


@app.command()
def mv(
    src: Annotated[str, typer.Argument(help="A versioned file or folder.")],
    dst: Annotated[str, typer.Argument(help="New path (or an existing folder to move it into).")],
    force: Annotated[bool, typer.Option("--force", "-f", help="Replace a file (or link) at DST, as "
                                        "git's mv -f; a folder is never overwritten.")] = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Move or rename a versioned file or folder and stage the move."""
    from objstore.worktree import move

    report = move(open_store(), src, dst, cwd=cwd(), force=force)
    data = {"from": report.src, "to": report.dst, "files": [list(f) for f in report.files]}
    replaced = f"; replaced {quote_path(report.overwritten)}" if report.overwritten else ""
    say(as_json, quiet, data | ({"overwritten": report.overwritten} if force else {}),
        f"Moved {quote_path(report.src)} -> {quote_path(report.dst)} "
        f"({len(report.files)} versioned file(s), staged{replaced})")
