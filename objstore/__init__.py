"""objstore: a Git-like, content-addressed version store for datasets.

The library never prints: operations return reports and take progress callbacks.
"""

from .errors import DsError
from .store import Store, find_store

__all__ = ["DsError", "Store", "find_store"]
__version__ = "0.1.0"
