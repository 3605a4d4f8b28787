"""Looking inside versions and the store (ls, du), and settings (config)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from objstore.errors import DsError, RevisionNotFound, StoreNotFound

from .app import JsonOpt, QuietOpt, app, cwd, err, open_store, out_json
from .workflow import quote_path


def _rev_and_path(store, rev: str | None, path: str | None,
                  base: str | None = None) -> tuple[str, str | None]:
    """REV and the store path to list (None: none given): one argument is a version if it
    names one, else a path in HEAD (as `git log foo` reads foo). Paths are read from
    ``base`` (default: the current folder)."""
    from objstore.listing import holds
    from objstore.worktree import to_store_path

    base = base or cwd()

    if rev is not None and path is None and store.head() is not None:
        try:
            store.resolve(rev)
        except RevisionNotFound:
            rel = to_store_path(store, rev, base)
            if not holds(store, "HEAD", rel):
                raise DsError(f"{rev!r} names no version and no path in HEAD; see `ds log` "
                              "and `ds ls`") from None
            return "HEAD", rel
    return rev or "HEAD", to_store_path(store, path, base) if path else None


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
    full_name: Annotated[bool, typer.Option("--full-name", help="Paths from the version's root, "
                                            "not from this folder.")] = False,
    full_tree: Annotated[bool, typer.Option("--full-tree", help="The whole version wherever you are "
                                            "(implies --full-name).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """A version's files, one level by default (folders end with /). As git's ls-tree: in a
    subfolder, that folder's part and paths from there (--json: from the root)."""
    from objstore.listing import FOLDER, holds, list_version
    from objstore.worktree import to_store_path

    from .workflow import relative_to

    store = open_store()
    # --full-tree: the root is where paths start, as git's
    rev_, path_ = _rev_and_path(store, rev, path, str(store.worktree) if full_tree else None)
    try:
        here = "" if full_tree else to_store_path(store, os.path.realpath(cwd()))
    except DsError:  # outside the working folder (DSSTORE_DIR), or in .dsstore: from the root
        here = ""
    if path_ is None and here and not holds(store, rev_, here, folder=True):
        rows = []  # in a folder the version does not hold (or holds as a file): nothing, as git's
    else:
        rows = list(list_version(store, rev_, here if path_ is None else path_, recursive))
    if as_json:
        out_json([r.as_json() for r in rows])
        return
    shown = relative_to("" if full_name or full_tree else here)
    for r in rows:
        name = quote_path(shown(r.path)) + ("/" if r.kind == FOLDER else "")
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


def _store_or_none():
    try:
        return open_store()
    except StoreNotFound:
        return None


def _show(value: object) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)


@app.command()
def config(
    key: Annotated[str | None, typer.Argument(help="Setting name, e.g. user.name.",
                                              show_default=False)] = None,
    value: Annotated[str | None, typer.Argument(help="New value (omit to print the value).",
                                                show_default=False)] = None,
    global_: Annotated[bool, typer.Option("--global", help="The user's settings file, not "
                                          "this store's .dsstore/config.")] = False,
    list_: Annotated[bool, typer.Option("--list", "-l", help="Print every setting with a value.")] = False,
    unset: Annotated[bool, typer.Option("--unset", help="Remove KEY.")] = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Read or change settings. User settings (--global; file in the user config folder, or
    $DS_CONFIG_HOME): user.name (DS_AUTHOR wins), cache.rows (DS_CACHE_ROWS wins),
    remote.default. Store settings (.dsstore/config): store.zstd_level, store.pack_target,
    remote.default; store.format, store.hash, chunking.* and worktree.sparse are shown only."""
    from objstore import userconfig as uc
    from objstore.config import STORE_KEYS, store_get, store_items, store_set

    store = None if global_ else _store_or_none()
    if list_:
        if key is not None or unset:
            raise DsError("--list takes no KEY and no --unset: `ds config --list`")
        data = {"global": uc.load()} | ({"store": store_items(store.config)} if store else {})
        if as_json:
            out_json(data)
        for scope in data.values():
            for k, v in ([] if as_json else sorted(scope.items())):
                typer.echo(f"{k}={_show(v)}")
        return
    if key is None:
        raise DsError(f"give a KEY (or --list); user settings: {uc.known_keys()}; "
                      f"store settings: {', '.join(STORE_KEYS)}")
    is_user, is_store = key in uc.SETTINGS, key in STORE_KEYS or key.startswith(("remotes.", "branch."))
    if not (is_user or is_store):
        raise DsError(f"unknown setting {key!r}; user settings (--global): {uc.known_keys()}; "
                      f"store settings: {', '.join(STORE_KEYS)}")
    if unset and value is not None:
        raise DsError("--unset takes a KEY and no VALUE")
    if global_ and not is_user:
        raise DsError(f"{key} is a store setting (in .dsstore/config); drop --global")
    changing = value is not None or unset
    user_scope = global_ or not is_store
    if changing and user_scope and not global_:
        raise DsError(f"{key} is a user setting: `ds config --global {key} VALUE`")
    if changing:
        if user_scope:
            if unset:
                if not uc.unset(key):
                    raise DsError(f"{key} is not set in {uc.config_path()}")
            else:
                uc.set_value(key, value)
                env = uc.SETTINGS[key].env
                if env and os.environ.get(env) and not quiet:
                    err(f"Note: {env} is set in this environment and wins over {key}")
            return
        if store is None:
            if is_user:
                raise DsError(f"not in a store, so no store's {key} to set; use --global for "
                              "the user's default")
            open_store()  # the store's own error: not in a store
        store.set_config(store_set(store.config, key, None if unset else value))
        return
    if user_scope:
        found = uc.load().get(key) if global_ else uc.effective(key)[0]
    else:
        if store is None and not is_user:
            open_store()  # the store's own error: not in a store
        found = store_get(store.config, key) if store is not None else None
        if found is None and is_user:  # remote.default: the user's, for a store that sets none
            found = uc.effective(key)[0]
    if found is None:
        err(f"{key} is not set")
        raise typer.Exit(1)
    if as_json:
        out_json(found)
    else:
        typer.echo(_show(found))
