"""The stat cache: path -> (size, mtime_ns, ctime_ns, inode, hash), local to one machine.

It lets ``ds status`` on an unchanged folder read no file content. An entry is trusted
only while size, mtime_ns, ctime_ns and inode all match (ctime catches a rewrite that
restores the old mtime, as ``cp -p`` or ``rsync -t`` do), and only if the file's times are older
than the moment the cache was written by more than ``RACY_NS`` (2 s on filesystems with
whole-second times): a file changed again within the same timestamp tick would
otherwise look unchanged. It is a cache: a missing, unknown-format or damaged file is
simply ignored and rebuilt; one in the previous format (``dsstat4``, a marshalled dict
per folder) is read as it is and written in the current one by the next save.

Rows are kept per folder in a packed form, and only the folders in use are decoded (a
bounded number at a time): a million rows as Python tuples would take ~300 MB, packed
~60 MB, and loading the file stays a single read that builds three objects per folder.
A folder's packed form is its sorted names joined by "/" (a name never holds one), its
numbers as one machine-order int64 array of four columns (every row's size, then every
mtime_ns, every ctime_ns, every inode), and its hashes end to end: the no-op
``ds status`` (``quickstatus``) compares a folder's names and numbers with those of the
files on disk as two whole values, with no Python object per row.
"""

from __future__ import annotations

import marshal
import os
import struct
import sys
import time

from .limits import CACHE_ROWS

TYPE_CHECKING = False  # typing, pathlib and collections stay out of a no-op `ds status`
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path

    from .scan import Stat

RACY_NS = 100_000_000
_OPEN_ROWS = CACHE_ROWS  # decoded rows kept at once; past it the least recently used folders are re-encoded
_TAG = f"dsstat5-{sys.implementation.cache_tag}-{sys.byteorder}"  # packed numbers are machine-order
_OLD_TAG = f"dsstat4-{sys.implementation.cache_tag}"  # per-folder marshalled dicts: read, then rewritten

Row = tuple[int, int, int, int, bytes]
# names joined by "/"; numbers in four columns as int64 bytes (a tuple of ints past 2**63);
# hashes end to end (a tuple if their lengths differ)
Packed = tuple[str, bytes | tuple[int, ...], bytes | tuple[bytes, ...]]



def clean_key(head: str, sparse: list[str] | None) -> str:
    """What a clean mark names: HEAD, and the checked-out part when the folder is sparse (a
    part changed since must not pass for clean)."""
    if not sparse:
        return head
    import hashlib

    return f"{head}:{hashlib.sha256(chr(10).join(sparse).encode()).hexdigest()[:16]}"

class StatCache:
    def __init__(self, path: str | Path):
        self.path = path
        self._blobs: dict[str, Packed | bytes] = {}  # folder -> packed rows (bytes: the old format's)
        self._open: dict[str, dict[str, Row]] = {}  # decoded folders, least recently used first
        self._open_rows = 0
        self._dirty: set[str] = set()  # open folders changed since they were decoded
        self.written_ns = 0
        self.changed = False
        # the commit the whole working folder was proved equal to, with the rows holding
        # exactly its files: lets `ds status` answer "nothing changed" from stat data alone.
        # A folder whose rows changed since is named in ``off_head``: every other folder's
        # rows are still that commit's files, so after a change `ds status` compares only
        # the folders whose stat data differ, and these (``quickstatus.changed_folders``)
        self.clean_head: str | None = None
        self.off_head: set[str] = set()
        self.upgraded = False  # read from the old format: the next save writes the new one
        try:
            with open(path, "rb") as f:
                tag, written, blobs, clean_head = marshal.loads(f.read())
            if tag in (_TAG, _OLD_TAG) and isinstance(blobs, dict) and isinstance(written, int):
                self._blobs, self.written_ns = blobs, written
                if isinstance(clean_head, tuple) and len(clean_head) == 2:  # (mark, folders off it)
                    clean_head, off = clean_head
                    if isinstance(off, list) and all(isinstance(f, str) for f in off):
                        self.off_head = set(off)
                    else:  # not as written: no folder can be vouched for
                        clean_head = None
                self.clean_head = clean_head if isinstance(clean_head, str) else None
                self.upgraded = self.changed = tag == _OLD_TAG
        except (OSError, ValueError, EOFError, TypeError):
            pass

    # -- folders ----------------------------------------------------------------------
    def folders(self) -> list[str]:
        """Folders that have rows: the open ones by their rows, the others by their blob
        (a stored blob is never empty)."""
        return [f for f in {*self._blobs, *self._open} if f not in self._open or self._open[f]]

    def rows(self, folder: str) -> dict[str, Row]:
        """The rows of one folder, by file name (decoded on first use; do not keep it long)."""
        rows = self._open.get(folder)
        if rows is not None:
            self._open[folder] = self._open.pop(folder)  # now the most recently used
            return rows
        blob = self._blobs.get(folder)
        rows = _unpack(blob) if blob is not None else {}
        self._open[folder] = rows
        self._open_rows += len(rows)
        while self._open_rows > _OPEN_ROWS and len(self._open) > 1:
            self._close(next(iter(self._open)))
        return rows

    def _close(self, folder: str, now: int | None = None) -> None:
        rows = self._open.pop(folder)
        self._open_rows -= len(rows)
        if folder in self._dirty:
            self._dirty.discard(folder)
            self._drop_racy(folder, rows, time.time_ns() if now is None else now)
            if rows:
                self._blobs[folder] = _pack(rows)
            else:
                self._blobs.pop(folder, None)

    def _drop_racy(self, folder: str, rows: dict[str, Row], now: int) -> None:
        """Leave out rows still inside the racy window at ``now`` (see ``save``). Checked
        whenever a changed folder is encoded, on saving or on leaving memory early: a
        row encoded unchecked would be trusted after the next save."""
        inside = [n for n, row in rows.items() if racy(row[1], row[2], now)]
        for n in inside:
            del rows[n]
        if inside:
            self._off(folder)

    def _changed(self, folder: str) -> None:
        self._dirty.add(folder)
        self.changed = True
        self._off(folder)

    def _off(self, folder: str) -> None:
        """``folder``'s rows may no longer be the clean mark's files."""
        if self.clean_head is not None:
            self.off_head.add(folder)

    def row_count(self) -> int:
        return sum(self.row_counts().values())

    def row_counts(self) -> dict[str, int]:
        """Rows per folder that has any, counted without decoding a packed folder."""
        out = {}
        for folder in self.folders():
            rows = self._open.get(folder)
            if rows is not None:
                out[folder] = len(rows)
            else:
                blob = self._blobs[folder]
                out[folder] = blob[0].count("/") + 1 if _well_formed(blob) else len(self.rows(folder))
        return out

    def packed(self, folder: str) -> tuple[str, bytes | tuple[int, ...]] | None:
        """One folder's names (sorted, joined by "/") and numbers (the sizes, then the
        mtime_ns, the ctime_ns and the inodes, in the names' order: int64 bytes, or a tuple
        of ints past 2**63), or None when it has no rows or they cannot be read: what the
        no-op status compares, undecoded."""
        rows = self._open.get(folder)
        blob = _pack(rows) if rows else self._blobs.get(folder) if rows is None else None
        if isinstance(blob, bytes):  # the old format: unpacked, then packed
            blob = _pack(_unpack(blob))
        if not _well_formed(blob):
            return None
        return blob[0], blob[1]

    def paths(self) -> Iterator[str]:
        for folder in self.folders():
            for name in self.rows(folder):
                yield f"{folder}/{name}" if folder else name

    # -- rows -------------------------------------------------------------------------
    def mark_clean(self, head: str) -> None:
        self.clean_head, self.off_head = head, set()
        self.changed = True

    def move_mark(self, head: str, off: Iterable[str]) -> None:
        """The mark now names ``head``, whose files differ from the marked commit's in the
        folders ``off`` only (and the working folder was not touched): those are listed
        off the mark with the others already there."""
        self.clean_head = head
        self.off_head.update(off)
        self.changed = True

    def get(self, path: str, st: Stat) -> bytes | None:
        folder, _, name = path.rpartition("/")
        row = self.rows(folder).get(name)
        if row is None or row[:4] != (st.size, st.mtime_ns, st.ctime_ns, st.ino):
            return None
        if racy(st.mtime_ns, st.ctime_ns, self.written_ns):
            return None
        return row[4]

    def put(self, path: str, st: Stat, digest: bytes, name: str | None = None) -> None:
        """``name``: the path's last part, when the caller has it as a string already
        (the row then shares it instead of holding a copy: ~60 bytes a file)."""
        if name is None:
            folder, _, name = path.rpartition("/")
        else:
            folder = path[: len(path) - len(name) - 1] if len(path) > len(name) else ""
        rows = self.rows(folder)
        row = (st.size, st.mtime_ns, st.ctime_ns, st.ino, digest)
        if rows.get(name) != row:
            if name not in rows:
                self._open_rows += 1
            rows[name] = row
            self._changed(folder)

    def drop(self, path: str) -> None:
        folder, _, name = path.rpartition("/")
        rows = self.rows(folder)
        if rows.pop(name, None) is not None:
            self._open_rows -= 1
            self._changed(folder)

    def keep_names(self, folder: str, names: Iterable[str] | dict) -> None:
        """Drop the folder's rows for files not in ``names``."""
        rows = self.rows(folder)
        keep = names if isinstance(names, (set, dict, frozenset)) else set(names)
        stale = [n for n in rows if n not in keep]
        for n in stale:
            del rows[n]
        if stale:
            self._open_rows -= len(stale)
            self._changed(folder)

    def keep_folders(self, folders: set[str] | dict) -> None:
        """Drop every folder not in ``folders``."""
        for folder in [f for f in {*self._blobs, *self._open} if f not in folders]:
            rows = self._open.pop(folder, None)
            if rows is not None:
                self._open_rows -= len(rows)
                self._dirty.discard(folder)
            if self._blobs.pop(folder, None) is not None or rows:
                self.changed = True
                self._off(folder)

    def save(self) -> None:
        """Write the cache, leaving out entries still inside the racy window.

        An entry hashed while its file's mtime was within one timestamp tick of now could
        be followed by a change that keeps the same mtime; it is dropped, and hashed again
        next time (git's "racily clean" rule, applied per entry). Only folders changed
        since loading can hold such rows: every other row was checked when last saved.
        """
        if not self.changed:
            return
        now = time.time_ns()
        for folder in list(self._open):
            self._close(folder, now)
        for folder, blob in list(self._blobs.items()):
            if not _well_formed(blob):  # the old format, or damaged: rewritten as read
                rows = _unpack(blob)
                if rows:
                    self._blobs[folder] = _pack(rows)
                else:
                    del self._blobs[folder]
        from .fsutil import atomic_write

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        mark = self.clean_head
        if mark is not None and self.off_head:
            mark = (mark, sorted(self.off_head))
        atomic_write(self.path, marshal.dumps((_TAG, now, self._blobs, mark)), durable=False)
        self.written_ns = now
        self.changed = self.upgraded = False


def racy(mtime_ns: int, ctime_ns: int, written_ns: int) -> bool:
    """Changed too close to ``written_ns`` for a later change to be told apart by its times."""
    # whole-second times mean a coarse filesystem (FAT, HFS+): widen the window
    window = RACY_NS if mtime_ns % 1_000_000_000 else 2_000_000_000
    return max(mtime_ns, ctime_ns) >= written_ns - window


def _pack(rows: dict[str, Row]) -> Packed:
    """A folder's rows as three values (see the module's docstring), sorted by name."""
    names = sorted(rows)
    ordered = [rows[n] for n in names]
    flat = [row[column] for column in range(4) for row in ordered]
    try:
        numbers: bytes | tuple[int, ...] = struct.pack(f"{len(flat)}q", *flat)
    except struct.error:  # a time or an inode past 2**63: plain ints
        numbers = tuple(flat)
    digests = tuple(row[4] for row in ordered)
    width = len(digests[0]) if digests else 0
    same = width > 0 and all(len(d) == width for d in digests)
    return "/".join(names), numbers, b"".join(digests) if same else digests


def _well_formed(blob: object) -> bool:
    """A packed folder whose parts agree on its number of rows (anything else is unread)."""
    if not (isinstance(blob, tuple) and len(blob) == 3 and isinstance(blob[0], str) and blob[0]):
        return False
    names, numbers, digests = blob
    count = names.count("/") + 1
    if isinstance(numbers, bytes):
        if len(numbers) != 32 * count:
            return False
    elif not (isinstance(numbers, tuple) and len(numbers) == 4 * count):
        return False
    if isinstance(digests, bytes):
        return len(digests) % count == 0 and len(digests) > 0
    return isinstance(digests, tuple) and len(digests) == count


def _unpack(blob: object) -> dict[str, Row]:
    """A folder's rows from their packed form (or the old format's marshalled dict); an
    unreadable one has none."""
    if isinstance(blob, bytes):
        try:
            rows = marshal.loads(blob)
        except (ValueError, EOFError, TypeError):
            return {}
        return rows if isinstance(rows, dict) else {}
    if not _well_formed(blob):
        return {}
    names_joined, numbers, digests = blob
    names = names_joined.split("/")
    values = memoryview(numbers).cast("q").tolist() if isinstance(numbers, bytes) else numbers
    if isinstance(digests, bytes):
        width = len(digests) // len(names)
        digests = [digests[i : i + width] for i in range(0, len(digests), width)]
    n = len(names)
    columns = (values[0:n], values[n : 2 * n], values[2 * n : 3 * n], values[3 * n :])
    return dict(zip(names, zip(*columns, digests, strict=True), strict=True))
