"""Where the SDK's store and default remote are, read afresh at every call.

Store: ``DSSTORE_DIR`` (the path of a ``.dsstore`` folder, created if missing); else
the nearest ``.dsstore`` at or above the current folder; else a per-user default store
(``platformdirs.user_data_path("objstore")/.dsstore``, created on first use).
Default remote: ``DSSTORE_REMOTE``; else the store's configured ``remote`` (none yet).
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


def open_store(path: Path | None = None) -> Store:
    """The store, able to fetch missing chunks from the default remote when one is set."""
    path = path or store_path()
    store = Store.create(path) if not (path / "config").is_file() else Store(path)
    remote = default_remote(store)
    if remote:
        from .remote import attach_default

        attach_default(store, remote)
    return store


def default_remote(store: Store) -> str | None:
    return os.environ.get("DSSTORE_REMOTE") or store.config_remote()
