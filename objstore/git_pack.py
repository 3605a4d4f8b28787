"""New git objects hashed here and written straight into one git pack (pack and index v2).

libgit2 writes each new object as a loose file: a temp file, a link, and a rescan of the
pack folder on the lookup before it. A stage of 20,000 files in 200 folders spent about
0.3 s there, and packing those files again cost another 0.15 s. The folders of one write
are new together, so they are hashed here and appended to one pack file as they come:
one file written and synced. ``MetaStore`` reads every object back through libgit2,
which checks each against its id, before the pack is published.

No pygit2 here: the format only (git's ``Documentation/gitformat-pack.txt``).
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterable
from typing import BinaryIO

from .errors import FormatError

COMMIT, TREE, BLOB = 1, 2, 3
_KIND = {COMMIT: b"commit", TREE: b"tree", BLOB: b"blob"}
_BIG = 0x80000000  # an index offset at or past this goes in the 8-byte table


def object_id(kind: int, data: bytes) -> bytes:
    """The git id (SHA-1) of an object of ``kind`` holding ``data``."""
    h = hashlib.sha1(b"%s %d\0" % (_KIND[kind], len(data)))
    h.update(data)
    return h.digest()


def tree_body(entries: Iterable[tuple[str, bytes, bool]]) -> bytes:
    """A git tree of (name, id, is a tree) entries, in git's order: by name, a subtree's name
    compared as if it ended in '/'. A name must be one path component without a backslash;
    git's other refusals (``.git`` and its NTFS and HFS spellings) are the caller's to avoid
    (``meta.encode_dir`` escapes them, and ``paths.check_name`` refuses a backslash first)."""
    rows = []
    for name, oid, is_tree in entries:
        raw = name.encode()
        if not raw or raw in (b".", b"..") or any(c in raw for c in b"/\\\0") or len(oid) != 20:
            raise FormatError(f"refusing git tree entry {name!r}: not a single path component")
        rows.append((raw + b"/" if is_tree else raw, raw, oid, is_tree))
    if len({row[1] for row in rows}) != len(rows):
        raise FormatError("refusing a git tree with two entries of one name")
    rows.sort()
    return b"".join((b"40000 " if is_tree else b"100644 ") + raw + b"\0" + oid
                    for _key, raw, oid, is_tree in rows)


class GitPackWriter:
    """A git pack written to ``f`` one object at a time; ``finish`` gives its index.

    An object already in this pack is not written again (two folders alike are one tree)."""

    def __init__(self, f: BinaryIO):
        self._f = f
        f.write(b"PACK" + struct.pack(">II", 2, 0))  # the count is written at the end
        self._end = 12
        self._rows: dict[bytes, tuple[int, int, int]] = {}  # id -> (offset, CRC-32 of its record, kind)

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def kinds(self) -> dict[bytes, int]:
        """The kind of every object written, by id."""
        return {oid: row[2] for oid, row in self._rows.items()}

    def add(self, kind: int, data: bytes, oid: bytes | None = None) -> bytes:
        """Append an object (unless this pack has it); returns its id."""
        oid = oid or object_id(kind, data)
        if oid in self._rows:
            return oid
        size, head = len(data), bytearray()
        byte = kind << 4 | size & 15
        size >>= 4
        while size:
            head.append(byte | 0x80)
            byte, size = size & 0x7F, size >> 7
        head.append(byte)
        record = bytes(head) + zlib.compress(data)
        self._f.write(record)
        self._rows[oid] = (self._end, zlib.crc32(record), kind)
        self._end += len(record)
        return oid

    def finish(self) -> tuple[bytes, bytes]:
        """Write the count and the checksum; returns (the pack's checksum, its index file)."""
        f = self._f
        f.seek(8)
        f.write(struct.pack(">I", len(self._rows)))
        f.flush()
        f.seek(0)
        digest = hashlib.file_digest(f, "sha1").digest()  # type: ignore[arg-type]
        f.seek(0, 2)
        f.write(digest)
        f.flush()
        return digest, _index(self._rows, digest)


def _index(rows: dict[bytes, tuple[int, int, int]], pack_sum: bytes) -> bytes:
    ids = sorted(rows)
    fanout = [0] * 256
    for oid in ids:
        fanout[oid[0]] += 1
    for i in range(1, 256):
        fanout[i] += fanout[i - 1]
    small, large = [], []
    for oid in ids:
        offset = rows[oid][0]
        if offset < _BIG:
            small.append(offset)
        else:
            small.append(_BIG | len(large))
            large.append(offset)
    n = len(ids)
    body = b"".join([
        b"\xfftOc", struct.pack(">I", 2), struct.pack(">256I", *fanout), *ids,
        struct.pack(f">{n}I", *(rows[oid][1] for oid in ids)),
        struct.pack(f">{n}I", *small), struct.pack(f">{len(large)}Q", *large), pack_sum,
    ])
    return body + hashlib.sha1(body).digest()
