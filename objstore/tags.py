"""Deleting tags, with the same safety net as branches: the reflog is kept.

A deleted tag's reflog stays, ended by the deletion, so gc's reflog grace period still
covers the version it named (``ds branch``/``ds tag`` can bring it back by id).
"""

from __future__ import annotations

from .errors import DsError
from .store import Store


def delete_tag(store: Store, name: str) -> str:
    """Delete tag ``name``; returns the version id it named."""
    with store.locked():
        if name not in store.meta.tags():
            raise DsError(f"no tag named {name!r}; see `ds tag`")
        return store.meta.delete_ref(f"refs/tags/{name}", store.author(), f"tag: deleted {name}")
