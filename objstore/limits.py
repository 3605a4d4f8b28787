"""Memory bounds shared by the in-memory caches, tunable from the environment.

``DS_CACHE_ROWS`` caps the decoded rows each cache keeps at once (the stat cache's
folders, the metadata store's folders): past it, the least recently used folders are
dropped (and re-read from their compact form when needed). The default, 50,000 rows, costs
~15 MB per cache; a lower value trades some repeated decoding for memory.
"""

from __future__ import annotations

import os


def cache_rows() -> int:
    try:
        return max(1, int(os.environ.get("DS_CACHE_ROWS", "50000")))
    except ValueError:
        return 50_000


CACHE_ROWS = cache_rows()

# The longest chunk any store makes: its config's max_size is at most this (external URLs,
# link targets and delta-coded small files are far shorter). A remote's chunks may come
# from stores with other chunk sizes, so the bound is the format's, not one store's. Kept
# here, not in packs.py, because every command checks its config against it.
MAX_RAW = 16 * 1024 * 1024
