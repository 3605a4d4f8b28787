"""Where the SDK's store and default remote are, read afresh at every call.

Store: ``DSSTORE_DIR`` (the path of a ``.dsstore`` folder, created if missing); else
the nearest ``.dsstore`` at or above the current folder; else a per-user default store
(``platformdirs.user_data_path("objstore")/.dsstore``, created on first use).
Default remote: ``Store.default_remote(sdk=True)`` (its docstring states the rule).
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import StoreNotFound
from .paths import STORE_ENV
from .store import Store, find_store


def store_path(start: str | None = None) -> Path:
    """Where the store is (it may not exist yet); ``start``: the folder to look up from."""
    env = os.environ.get(STORE_ENV)
    if env:
        return Path(env).expanduser().absolute()
    try:
        return find_store(start or os.getcwd())
    except StoreNotFound:
        import platformdirs

        return platformdirs.user_data_path("objstore") / ".dsstore"


def open_sdk_store(path: Path | None = None) -> Store:
    """The SDK's store (``path``, else ``store_path()``; created when missing), able to fetch
    missing chunks from the SDK's default remote when one is set. (The CLI opens its own,
    never the per-user one: ``objstore_cli.app.open_store``.)"""
    path = path or store_path()
    store = Store.create(path) if not (path / "config").is_file() else Store(path)
    remote = default_remote(store)
    if remote:
        from .remote import attach_default

        attach_default(store, remote)
    return store


def default_remote(store: Store) -> str | None:
    """The SDK's default remote: ``store.default_remote(sdk=True)``."""
    return store.default_remote(sdk=True)
