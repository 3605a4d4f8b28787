"""The few config values a no-op `ds status` reads, without parsing TOML each time.

Importing tomllib (with the typing, datetime and re modules it pulls in) cost more than
the rest of a no-op status's imports. So the values the quick path reads (the store's
format, the checked-out part, the branches' upstreams) are kept in ``cache/config-quick``
with the config file's stat data (inode, size, mtime_ns, ctime_ns), and used while those
still match. Every write to the config moves its ctime, which no program can set; the
values are kept only once the config is older than a timestamp tick (``statcache.racy``),
so a write within the tick of the read can never pass for the file that was read. It is a
cache: missing, damaged or from another Python, it is rebuilt from the config.
"""

from __future__ import annotations

import marshal
import os
import sys
import time

from .statcache import racy

CACHE_NAME = "config-quick"
_TAG = f"dsconfq1-{sys.implementation.cache_tag}"  # a new tag whenever the tables kept change


def config_facts(store: str) -> dict | None:
    """The config's ``store``, ``worktree`` and ``branch`` tables as parsed from TOML (only
    those), or None if the config cannot be read or parsed."""
    path = os.path.join(store, "config")
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    cached = os.path.join(store, "cache", CACHE_NAME)
    try:
        with open(cached, "rb") as f:
            tag, seen, facts = marshal.loads(f.read())
        if tag == _TAG and seen == key and isinstance(facts, dict):
            return facts
    except (OSError, ValueError, EOFError, TypeError):
        pass  # none yet, or not ours: parse the config
    facts = _parse(path)
    if facts is not None and not racy(st.st_mtime_ns, st.st_ctime_ns, time.time_ns()):
        _keep(cached, (_TAG, key, facts))
    return facts


def _parse(path: str) -> dict | None:
    import tomllib

    try:
        with open(path, "rb") as f:
            config = tomllib.load(f)
    except (OSError, ValueError):
        return None
    return {name: config[name] for name in ("store", "worktree", "branch") if name in config}


def _keep(cached: str, value: tuple) -> None:
    """Write the cache beside its final name and rename it into place; best effort (a
    read-only store, a value marshal cannot write: the next run parses again). Not
    ``fsutil.atomic_write``: it imports pathlib and tempfile, and a cache needs no fsync."""
    tmp = f"{cached}.tmp-{os.getpid()}"
    try:
        data = marshal.dumps(value)
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, cached)
    except (OSError, ValueError):
        try:
            os.unlink(tmp)
        except OSError:
            pass
