"""objstore: a Git-like, content-addressed version store for datasets.

The library never prints: operations return reports and take progress callbacks.
Names are imported on first use so that `ds` starts quickly.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: `ds status` has no other use for it
if TYPE_CHECKING:
    from typing import Any

    from .dataset import Dataset
    from .errors import DsError
    from .store import Store, find_store

__all__ = ["Dataset", "DsError", "Store", "find_store"]
__version__ = "0.1.0"  # what `ds --version` prints; pyproject.toml's version (tests/test_startup.py)

_HOMES = {"Dataset": ".dataset", "DsError": ".errors", "Store": ".store", "find_store": ".store"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name], __name__), name)
    raise AttributeError(f"module 'objstore' has no attribute {name!r}")
