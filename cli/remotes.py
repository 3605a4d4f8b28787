"""Sharing versions: ds remote add/list/remove, push, fetch, pull, clone, merge."""

from __future__ import annotations

from typing import Annotated

import typer

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

remote_app = typer.Typer(help="Configure remotes (any fsspec URL: folder, s3://, gs://, az://).",
                         no_args_is_help=True)
app.add_typer(remote_app, name="remote")


def _parse_options(pairs: list[str] | None) -> dict:
    from objstore.errors import DsError

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
    from objstore.errors import DsError
    from objstore.remote import check_url

    store = open_store()
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


@remote_app.command("remove")
def remote_remove(name: Annotated[str, typer.Argument(help="Remote to forget.")]) -> None:
    """Forget a remote (nothing on it is deleted)."""
    from objstore.errors import DsError

    store = open_store()
    if name not in store.config.remotes:
        raise DsError(f"no remote named {name!r}; see `ds remote list`")
    from objstore.remote import forget_remote

    remotes = {k: v for k, v in store.config.remotes.items() if k != name}
    _save(store, remotes=remotes, remote=None if store.config.remote == name else store.config.remote)
    with store.locked():
        forget_remote(store, name)
    err(f"Removed remote {name}")


def remote_target(store, remote: str | None) -> str | None:
    """A remote name as given; a folder given directly, made absolute against ``-C``'s folder."""
    from objstore.remote import check_url

    if remote is None or remote in store.config.remotes:
        return remote
    if not remote.strip() or remote.startswith((".", "~", "file://")) or (
            "://" not in remote and "/" in remote):
        return check_url(remote, store, base=cwd())
    return remote


def _report(verb: str, t, as_json: bool) -> None:
    for warning in t.warnings:  # what the remote held that was skipped as invalid
        err(f"Warning: {warning}")
    if as_json:
        out_json(t.as_json())
    else:
        err(f"{verb}: {t.chunks} chunk(s) in {t.packs} pack(s), {t.meta_packs} metadata pack(s), "
            f"refs {', '.join(t.refs) or '-'}; {t.bytes_sent} bytes sent, {t.bytes_received} received, "
            f"{t.requests} requests")


@app.command()
def push(
    remote: Annotated[str | None, typer.Argument(help="Remote name or URL (default: the default).")] = None,
    refs: Annotated[list[str] | None, typer.Argument(
        help="Branches or tags (default: the current branch).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every branch and tag.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Move remote branches even if they diverged.")] = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Send versions and the bytes the remote lacks; refs move last, by compare-and-swap."""
    from objstore.remote import Remote

    store = open_store()
    with transfer_progress("pushing", quiet) as cb:
        t = Remote(store, remote_target(store, remote), progress=cb).push(refs or None, all_refs=all_,
                                                                          force=force)
    _report("Pushed", t, as_json)


@app.command()
def fetch(
    remote: Annotated[str | None, typer.Argument(help="Remote name or URL.")] = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Bring a remote's branches (as REMOTE/BRANCH), tags and metadata; bytes come on demand."""
    from objstore.remote import Remote

    store = open_store()
    with transfer_progress("fetching", quiet) as cb:
        t = Remote(store, remote_target(store, remote), progress=cb).fetch()
    _report("Fetched", t, as_json)


@app.command()
def pull(
    remote: Annotated[str | None, typer.Argument(help="Remote name or URL.")] = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Fetch, then update the current branch and working folder (merging if they diverged)."""
    from objstore.remote import pull as do_pull

    store = open_store()
    with transfer_progress("pulling", quiet) as cb:
        t, info = do_pull(store, remote_target(store, remote), progress=cb)
    _report("Pulled", t, as_json)
    if not as_json:
        err(f"Now at {info.id[:12]}" if info else "Already up to date")


@app.command()
def clone(
    url: Annotated[str, typer.Argument(help="Remote URL or folder.")],
    directory: Annotated[str | None, typer.Argument(
        help="New folder (default: the URL's last part).")] = None,
    rev: Annotated[str | None, typer.Option("--rev", help="Branch, tag or id to check out.")] = None,
    include: Annotated[list[str] | None, typer.Option("--include", help="Only paths matching GLOB "
                                                      "(a sparse working folder).")] = None,
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-o", help="Storage option key=value, kept in the new store's config.")] = None,
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
    _report("Cloned", t, as_json)
    if not as_json:
        err(f"Checked out {store.head()[:12]} into {target}")


@app.command()
def merge(
    rev: Annotated[str, typer.Argument(help="Version to merge, e.g. origin/main.")],
    ours: Annotated[bool, typer.Option("--ours", help="On conflicts keep this side.")] = False,
    theirs: Annotated[bool, typer.Option("--theirs", help="On conflicts take REV's side.")] = False,
    message: Annotated[str | None, typer.Option("-m", "--message")] = None,
) -> None:
    """Join a diverged lineage: a version whose parents are HEAD and REV."""
    from objstore.merge import merge as do_merge

    store = open_store(attach=True)
    ref = rev if rev in store.meta.repo.references else (
        f"refs/remotes/{rev}" if f"refs/remotes/{rev}" in store.meta.repo.references else rev)
    info = do_merge(store, ref, ours=ours, theirs=theirs, message=message)
    typer.echo(info.id if info else "Already up to date")
