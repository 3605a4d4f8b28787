"""Renaming a remote, pointing it elsewhere and forgetting it (``ds remote rename`` /
``set-url`` / ``remove``).

What the store knows of a remote hangs off its name in three places: the config (its
URL, options, the default remote, branch upstreams), the tracking refs
``refs/remotes/NAME/*`` and the cache ``.dsstore/remotes/NAME/``. A rename moves all
three, as git does; a new URL keeps the name and upstreams but forgets the refs and the
cache, which described another place.
"""

from __future__ import annotations

from dataclasses import replace

from .errors import DsError
from .meta import valid_ref_name
from .remote import check_url, forget_remote
from .store import Store


def _known(store: Store, name: str) -> dict:
    remote = store.config.remotes.get(name)
    if remote is None:
        raise DsError(f"no remote named {name!r}; see `ds remote list`")
    return remote


def check_remote_name(name: str) -> str:
    """``name`` if it can name a remote: git's rules for ``refs/remotes/NAME/...``, no ``/``,
    no leading ``-`` (it would read as an option)."""
    if not name or name.startswith("-") or "/" in name or not valid_ref_name(f"refs/remotes/{name}/x"):
        raise DsError(f"{name!r} is not a valid remote name (as in git: no spaces, no '/', no leading "
                      "'-', none of ~^:?*[\\ or '..'); e.g. origin")
    return name


def rename_remote(store: Store, old: str, new: str) -> None:
    """Rename remote ``old`` to ``new``: config, default, upstreams, tracking refs, cache."""
    with store.locked():
        _known(store, old)
        if new in store.config.remotes:
            raise DsError(f"remote {new!r} already exists; choose another name")
        check_remote_name(new)
        remotes = {(new if k == old else k): v for k, v in store.config.remotes.items()}
        branches = {b: (dict(v, remote=new) if v.get("remote") == old else v)
                    for b, v in store.config.branches.items()}
        default = new if store.config.remote == old else store.config.remote
        store.set_config(replace(store.config, remotes=remotes, branches=branches, remote=default))
        meta = store.meta
        prefix = f"refs/remotes/{old}/"
        for name, commit_id in meta.refs().items():
            if name.startswith(prefix):
                meta.set_ref(f"refs/remotes/{new}/{name[len(prefix):]}", commit_id, force=True)
                meta.drop_ref(name)
        cache = store.path / "remotes" / old
        if cache.is_dir():
            cache.rename(store.path / "remotes" / new)


def remove_remote(store: Store, name: str) -> None:
    """Forget remote ``name``: its config, the upstreams that name it (as git), its tracking
    refs and cache. Nothing on the remote itself is touched."""
    with store.locked():
        _known(store, name)
        remotes = {k: v for k, v in store.config.remotes.items() if k != name}
        branches = {k: v for k, v in store.config.branches.items() if v.get("remote") != name}
        default = None if store.config.remote == name else store.config.remote
        store.set_config(replace(store.config, remotes=remotes, branches=branches, remote=default))
        forget_remote(store, name)


def set_remote_url(store: Store, name: str, url: str, base: str | None = None) -> str:
    """Point remote ``name`` at ``url`` (checked as ``ds remote add`` checks it); what the
    store remembered of the old place (tracking refs, cache) is forgotten."""
    with store.locked():
        remote = _known(store, name)
        url = check_url(url, store, base=base)
        remotes = dict(store.config.remotes)
        remotes[name] = dict(remote, url=url)
        store.set_config(replace(store.config, remotes=remotes))
        forget_remote(store, name)
    return url
