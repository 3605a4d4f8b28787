"""The stat cache: path -> (size, mtime_ns, inode, content hash), local to one machine.

It lets ``ds status`` on an unchanged folder read no file content. An entry is trusted
only while size, mtime_ns and inode all match, and only if the file's mtime is older
than the moment the cache was written by more than ``RACY_NS`` (2 s on filesystems with
whole-second times): a file changed again within the same timestamp tick would
otherwise look unchanged. It is a cache: a missing, old-format or damaged file is
simply ignored and rebuilt.
"""

from __future__ import annotations

import marshal
import sys
import time
from pathlib import Path

from .fsutil import atomic_write
from .scan import Stat

RACY_NS = 100_000_000
_TAG = f"dsstat1-{sys.implementation.cache_tag}"


class StatCache:
    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[str, tuple[int, int, int, bytes]] = {}
        self.written_ns = 0
        self.changed = False
        try:
            tag, written, entries = marshal.loads(path.read_bytes())
            if tag == _TAG and isinstance(entries, dict):
                self.entries, self.written_ns = entries, written
        except (OSError, ValueError, EOFError, TypeError):
            pass

    def get(self, path: str, st: Stat) -> bytes | None:
        row = self.entries.get(path)
        if row is None or row[0] != st.size or row[1] != st.mtime_ns or row[2] != st.ino:
            return None
        # whole-second mtimes mean a coarse filesystem (FAT, HFS+): widen the window
        window = RACY_NS if st.mtime_ns % 1_000_000_000 else 2_000_000_000
        if st.mtime_ns >= self.written_ns - window:
            self.changed = True  # re-verified now; saving moves the racy window on
            return None
        return row[3]

    def put(self, path: str, st: Stat, digest: bytes) -> None:
        row = (st.size, st.mtime_ns, st.ino, digest)
        if self.entries.get(path) != row:
            self.entries[path] = row
            self.changed = True

    def drop(self, path: str) -> None:
        if self.entries.pop(path, None) is not None:
            self.changed = True

    def keep_only(self, paths: set[str] | dict) -> None:
        stale = [p for p in self.entries if p not in paths]
        for p in stale:
            del self.entries[p]
        self.changed = self.changed or bool(stale)

    def save(self) -> None:
        if not self.changed:
            return
        now = time.time_ns()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, marshal.dumps((_TAG, now, self.entries)), durable=False)
        self.written_ns = now
        self.changed = False
