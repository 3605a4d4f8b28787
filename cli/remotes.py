"""Sharing versions: ds remote add/list/remove, push, fetch, pull, clone, merge."""

from __future__ import annotations

from typing import Annotated

import typer

from objstore.errors import DsError

from .app import JsonOpt, QuietOpt, app, cwd, err, open_store, out_json, transfer_progress


def _quiet_storage_loggers() -> None:
    """Storage SDKs log failed requests with tracebacks (gcsfs: one per attempt, six
    attempts per request) through Python's last-resort handler; the CLI reports the
    outcome as one line instead. ``DS_DEBUG=1`` keeps them."""
    import logging
    import os

    if os.environ.get("DS_DEBUG"):
        return
    for name in ("gcsfs", "s3fs", "adlfs", "azure", "aiobotocore", "botocore", "google", "fsspec"):
        logging.getLogger(name).addHandler(logging.NullHandler())


_quiet_storage_loggers()

remote_app = typer.Typer(help="Configure remotes (any fsspec URL: folder, s3://, gs://, az://); "
                         "alone, list them, as git's `remote`.")
app.add_typer(remote_app, name="remote")


@remote_app.callback(invoke_without_command=True)
def remote_main(ctx: typer.Context, verbose: Annotated[bool, typer.Option(
        "-v", "--verbose", help="Accepted as git's: the list always shows each URL.")] = False) -> None:
    if ctx.invoked_subcommand is None:
        remote_list()


def _parse_options(pairs: list[str] | None) -> dict:
    out: dict = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise DsError(f"--option takes key=value, got {pair!r}")
        low = value.lower()
        out[key] = True if low == "true" else False if low == "false" else (
            int(value) if value.lstrip("-").isdigit() else value)
    return out


def _save(store, **changes) -> None:
    from dataclasses import replace

    store.set_config(replace(store.config, **changes))


@remote_app.command("add")
def remote_add(
    name: Annotated[str, typer.Argument(help="Short name, e.g. origin.")],
    url: Annotated[str, typer.Argument(help="Folder path or URL (s3://bucket/prefix, ...).")],
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-o", help="Storage option key=value (endpoint_url, profile, ...).")] = None,
    default: Annotated[bool, typer.Option("--default", help="Make it the default remote.")] = False,
) -> None:
    """Add a remote (the first one becomes the default)."""
    from objstore.remote import check_url
    from objstore.remote_names import check_remote_name

    store = open_store()
    check_remote_name(name)
    if name in store.config.remotes:
        raise DsError(f"remote {name!r} exists; `ds remote remove {name}` first")
    url = check_url(url, store, base=cwd())
    remotes = dict(store.config.remotes)
    remotes[name] = {"url": url, "options": _parse_options(option)} if option else {"url": url}
    _save(store, remotes=remotes, remote=name if default or not store.config.remote else store.config.remote)
    err(f"Added remote {name} -> {url}")


@remote_app.command("list")
def remote_list(as_json: JsonOpt = False) -> None:
    """List remotes (the default one is marked *)."""
    store = open_store()
    if as_json:
        out_json({"default": store.config.remote, "remotes": store.config.remotes})
        return
    for name, r in sorted(store.config.remotes.items()):
        typer.echo(f"{'*' if name == store.config.remote else ' '} {name}\t{r['url']}")


@remote_app.command("rm", hidden=True)  # git's other name for it
@remote_app.command("remove")
def remote_remove(name: Annotated[str, typer.Argument(help="Remote to forget.")]) -> None:
    """Forget a remote (nothing on it is deleted)."""
    from objstore.remote_names import remove_remote

    remove_remote(open_store(), name)
    err(f"Removed remote {name}")


@remote_app.command("rename")
def remote_rename(
    old: Annotated[str, typer.Argument(help="Current name.")],
    new: Annotated[str, typer.Argument(help="New name.")],
    quiet: QuietOpt = False,
) -> None:
    """Rename a remote: its tracking refs, cache, upstreams and default follow."""
    from objstore.remote_names import rename_remote

    rename_remote(open_store(), old, new)
    if not quiet:
        err(f"Renamed remote {old} to {new}")


@remote_app.command("set-url")
def remote_set_url(
    name: Annotated[str, typer.Argument(help="Remote to point elsewhere.")],
    url: Annotated[str, typer.Argument(help="Its new folder path or URL.")],
    quiet: QuietOpt = False,
) -> None:
    """Point a remote at another URL (its options and upstreams stay; `ds fetch` reads it anew)."""
    from objstore.remote_names import set_remote_url

    url = set_remote_url(open_store(), name, url, base=cwd())
    if not quiet:
        err(f"Remote {name} -> {url}")


def remote_target(store, remote: str | None) -> str | None:
    """A remote name as given; a folder given directly, made absolute against ``-C``'s folder."""
    from objstore.remote import check_url

    if remote is None or remote in store.config.remotes:
        return remote
    if not remote.strip() or remote.startswith((".", "~", "file://")) or (
            "://" not in remote and "/" in remote):
        return check_url(remote, store, base=cwd())
    return remote


VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Also the requests, packs and chunks.")]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _summary(verb: str, t, nbytes: int, where: str, files: bool = True) -> str:
    """One line: versions, files, bytes (binary units, as `ds du`) and time."""
    from .inspect_cmd import human

    parts = [_plural(t.versions, "version")] + ([_plural(t.files, "file")] if files else [])
    return f"{verb} {', '.join(parts)}, {human(nbytes)} {where} in {t.seconds:.1f} s"


def _short(ref: str | None) -> str:
    return ref.split("/", 2)[2] if ref and ref.startswith("refs/") and ref.count("/") >= 2 else (ref or "")


def _update_lines(t, fetched: bool) -> list[str]:
    """git's ref lines: `   old..new  src -> dst`, ` * [new branch]`, ` + old...new (forced update)`,
    ` - [deleted]  NAME` (push --delete) or ` - [deleted]  (none) -> origin/NAME` (fetch --prune)."""
    rows = []
    for u in t.updates:
        tag = u["ref"].startswith("refs/tags/")
        if u["new"] is None:
            gone = u["local"].removeprefix("refs/remotes/").removeprefix("refs/tags/") if fetched \
                else _short(u["ref"])
            rows.append(("-", "[deleted]", f"(none) -> {gone}" if fetched else gone))
            continue
        if fetched:
            src, dst = _short(u["ref"]), u["local"].removeprefix("refs/remotes/").removeprefix("refs/tags/")
        else:
            src, dst = _short(u["local"]) or u["new"][:12], _short(u["ref"])
        if u["old"] is None:
            what, flag = f"[new {'tag' if tag else 'branch'}]", "*"
        elif u["forced"]:
            what, flag = f"{u['old'][:12]}...{u['new'][:12]}", "+"
        else:
            what, flag = f"{u['old'][:12]}..{u['new'][:12]}", " "
        forced = " (forced update)" if u["old"] and u["forced"] else ""
        rows.append((flag, what, f"{src} -> {dst}{forced}"))
    width = max((len(w) for _f, w, _n in rows), default=0)
    return [f" {flag} {what:<{width}}  {names}" for flag, what, names in rows]


def _report(t, as_json: bool, verbose: bool, lines: list[str], quiet: bool = False) -> None:
    """Warnings, then the human lines (stderr, as git; none with -q), or the JSON (stdout)
    with every counter."""
    for warning in t.warnings:  # what the remote held that was skipped as invalid
        err(f"Warning: {warning}")
    if as_json:
        out_json(t.as_json())
        return
    if quiet:
        return
    for line in lines:
        err(line)
    if verbose:
        from .inspect_cmd import human

        err(f"{_plural(t.requests, 'request')}; {_plural(t.packs, 'pack')} ({_plural(t.chunks, 'chunk')}) "
            f"and {_plural(t.meta_packs, 'metadata pack')}; {human(t.bytes_sent)} sent, "
            f"{human(t.bytes_received)} received")
    for hint in t.hints:
        err(f"hint: {hint}")


@app.command()
def push(
    remote: Annotated[str | None, typer.Argument(
        help="Remote name or URL (default: the branch's upstream, else the default remote).")] = None,
    refs: Annotated[list[str] | None, typer.Argument(
        help="Branches or tags, or SRC:DST (+SRC:DST forces that one; :DST deletes DST); default: "
             "the current branch, to its upstream.")] = None,
    set_upstream: Annotated[bool, typer.Option(
        "--set-upstream", "-u", help="Make each branch pushed follow the remote's branch "
        "(then `ds push`, `ds pull` and `ds status` use it).")] = False,
    all_: Annotated[bool, typer.Option("--all", help="Every branch and tag.")] = False,
    tags: Annotated[bool, typer.Option("--tags", help="Every tag (with any refs named).")] = False,
    force: Annotated[bool, typer.Option(
        "--force", "-f", help="Move remote branches even if they diverged; with --delete, delete "
        "the remote's default branch too.")] = False,
    delete: Annotated[bool, typer.Option(
        "--delete", "-d", help="Delete these branches or tags on the remote (and the local "
        "REMOTE/NAME, kept in its reflog).")] = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Send versions and the bytes the remote lacks; refs move last, by compare-and-swap."""
    from objstore.remote import push as do_push

    store = open_store()
    with transfer_progress("pushing", quiet) as cb:
        t = do_push(store, remote_target(store, remote), refs or None, all_refs=all_, tags=tags,
                    force=force, set_upstream=set_upstream, progress=cb, delete=delete)
    if t.updates and len(t.deleted) == len(t.updates):  # deletions only: git's two lines
        lines = [f"To {t.url}", *_update_lines(t, fetched=False)]
    elif t.updates:
        lines = [_summary("Pushed", t, t.bytes_sent, f"to {t.remote}"), f"To {t.url}",
                 *_update_lines(t, fetched=False)]
    else:
        lines = ["Everything up-to-date"]
    lines += [f"branch '{b}' set up to track '{up}'." for b, up in t.upstreams.items()]
    _report(t, as_json, verbose, lines, quiet)


@app.command()
def fetch(
    remote: Annotated[str | None, typer.Argument(
        help="Remote name or URL (default: the branch's upstream, else the default remote).")] = None,
    prune: Annotated[bool, typer.Option(
        "--prune", "-p", help="Delete the REMOTE/BRANCH refs of branches the remote no longer has "
        "(each kept in its reflog).")] = False,
    prune_tags: Annotated[bool, typer.Option(
        "--prune-tags", "-P", help="With --prune: also delete the tags here that the remote does not "
        "have, your own included (each kept in its reflog: `ds tag NAME NAME@{1}` restores one).")] = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Bring a remote's branches (as REMOTE/BRANCH), tags and metadata; bytes come on demand."""
    from objstore.branches import upstream
    from objstore.remote import Remote

    store = open_store()
    if remote is None and (branch := store.head_branch()) and (up := upstream(store, branch)):
        remote = up.remote
    with transfer_progress("fetching", quiet) as cb:
        t = Remote(store, remote_target(store, remote), progress=cb).fetch(prune=prune, prune_tags=prune_tags)
    lines = ([_summary("Fetched", t, t.bytes_received, f"from {t.remote}", files=False), f"From {t.url}",
              *_update_lines(t, fetched=True)] if t.updates else [f"Nothing new on {t.remote}"])
    _report(t, as_json, verbose, lines, quiet)


@app.command()
def pull(
    remote: Annotated[str | None, typer.Argument(
        help="Remote name or URL (default: the branch's upstream).")] = None,
    branch: Annotated[str | None, typer.Argument(
        help="Branch of that remote (default: the upstream's, else the current branch's name).")] = None,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
    unrelated: Annotated[bool, typer.Option(
        "--allow-unrelated-histories", help="Merge a lineage that shares no version with HEAD.")] = False,
) -> None:
    """Fetch, then update the current branch and working folder from its upstream
    (fast-forward, or a merge when both moved)."""
    from objstore.remote import pull as do_pull

    store = open_store()
    with transfer_progress("pulling", quiet) as cb:
        t, info = do_pull(store, remote_target(store, remote), branch, progress=cb,
                          allow_unrelated=unrelated)
    current, changed = store.head_branch(), _plural(t.files, "file")
    now = info.id[:12] if info else ""
    outcome = {"fast-forward": f"Fast-forward {current} to {now} ({changed} changed)",
               "merge": f"Merged {t.pulled} into {current}: {now} ({changed} changed)",
               }.get(t.outcome, "Already up to date.")
    if t.versions or t.updates or info is not None:
        lines = [_summary("Pulled", t, t.bytes_received, f"from {t.remote}"),
                 *([f"From {t.url}", *_update_lines(t, fetched=True)] if t.updates else []), outcome]
    else:  # nothing came and nothing moved: git's one line
        lines = [outcome]
    _report(t, as_json, verbose, lines, quiet)


@app.command()
def clone(
    url: Annotated[str, typer.Argument(help="Remote URL or folder.")],
    directory: Annotated[str | None, typer.Argument(
        help="New folder (default: the URL's last part).")] = None,
    rev: Annotated[str | None, typer.Option(
        "--rev", "--branch", "-b", help="Branch to check out (as a local branch following the remote's), "
        "or a tag or id (HEAD detached there); default: the remote's HEAD, else main.")] = None,
    include: Annotated[list[str] | None, typer.Option("--include", help="Only paths matching GLOB "
                                                      "(a sparse working folder).")] = None,
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-o", help="Storage option key=value, kept in the new store's config.")] = None,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Make a new store and working folder from a remote, downloading only what is checked out."""
    import os

    from objstore.remote import check_url
    from objstore.remote import clone as do_clone

    url = check_url(url, base=cwd())
    target = directory or url.rstrip("/").rsplit("/", 1)[-1] or "clone"
    with transfer_progress("cloning", quiet) as cb:
        store, t = do_clone(url, os.path.join(cwd(), target), rev=rev, include=include,
                            options=_parse_options(option) or None, progress=cb)
    head, branch = store.head(), store.head_branch()
    if branch is not None:
        where = f"Checked out branch '{branch}' into {target}"
    else:
        where = (f"HEAD detached at {head[:12]} ({rev}) in {target}: `ds switch -c NAME` keeps new "
                 "versions on a branch")
    lines = [_summary("Cloned", t, t.bytes_received, f"from {url}"), where]
    lines += [f"branch '{b}' set up to track '{up}'." for b, up in t.upstreams.items()]
    _report(t, as_json, verbose, lines, quiet)


@app.command()
def merge(
    rev: Annotated[str, typer.Argument(help="Version to merge, e.g. origin/main.")],
    ours: Annotated[bool, typer.Option("--ours", help="On conflicts keep this side.")] = False,
    theirs: Annotated[bool, typer.Option("--theirs", help="On conflicts take REV's side.")] = False,
    message: Annotated[str | None, typer.Option("-m", "--message")] = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
    unrelated: Annotated[bool, typer.Option(
        "--allow-unrelated-histories", help="Merge a lineage that shares no version with HEAD.")] = False,
) -> None:
    """Join a diverged lineage: a version whose parents are HEAD and REV."""
    from objstore.branches import ref_of
    from objstore.merge import merge as do_merge

    store = open_store(attach=True)
    info = do_merge(store, ref_of(store, rev), ours=ours, theirs=theirs, message=message,
                    allow_unrelated=unrelated)
    if as_json:
        out_json(info.as_json() | {"merged": True} if info else {"id": store.head(), "merged": False})
    elif info:
        typer.echo(info.id)
    elif not quiet:
        err("Already up to date")
