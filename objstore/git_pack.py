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


_OFS_DELTA, _REF_DELTA = 6, 7
_TAG = 4


def index_pack(pack: bytes) -> bytes:
    """The index (v2) of a whole git pack, as ``git index-pack`` writes it: every object is
    inflated, deltas resolved against their bases in this pack, and its id computed, so an
    index lost beside an intact pack is rebuilt from the pack alone. FormatError on a pack
    that is damaged (its checksum, a record, a delta whose base it lacks)."""
    if len(pack) < 32 or pack[:4] != b"PACK" or struct.unpack(">I", pack[4:8])[0] not in (2, 3):
        raise FormatError("not a git pack (no PACK header of version 2 or 3)")
    body, digest = pack[:-20], pack[-20:]
    if hashlib.sha1(body).digest() != digest:
        raise FormatError("the pack's own checksum does not match its content: it is damaged")
    (count,) = struct.unpack(">I", pack[8:12])
    try:
        records = _records(body, count)
    except IndexError:
        raise FormatError(f"the pack ends inside one of its {count} records") from None
    return _finish_index(body, records, digest)


# offset -> (type, where its zlib stream starts and ends, CRC-32 of the record, delta base if any)
_Record = tuple[int, int, int, int, "int | bytes | None"]


def _records(body: bytes, count: int) -> dict[int, _Record]:
    """The ``count`` records of a pack body, each inflated once to find where it ends and
    then let go: the resolution inflates each again when it is reached, so memory holds
    only the bases still awaited, never the whole pack inflated."""
    records: dict[int, _Record] = {}
    pos = 12
    for _ in range(count):
        start = pos
        kind, pos = _record_head(body, pos)
        base: int | bytes | None = None
        if kind == _OFS_DELTA:
            back, pos = _ofs(body, pos)
            base = start - back
        elif kind == _REF_DELTA:
            base, pos = bytes(body[pos : pos + 20]), pos + 20
        elif kind not in (COMMIT, TREE, BLOB, _TAG):
            raise FormatError(f"pack record at {start} has unknown type {kind}")
        data_at = pos
        _data, pos = _inflate(body, pos)
        records[start] = (kind, data_at, pos, zlib.crc32(body[start:pos]), base)
    if pos != len(body):
        raise FormatError(f"the pack holds {len(body) - pos} byte(s) past its {count} records")
    return records


def _finish_index(body: bytes, records: dict[int, _Record], digest: bytes) -> bytes:
    """Resolve the deltas of ``records`` and index every object by its id. A resolved
    object is kept only while a delta still waits for it as its base."""
    awaited: dict[int | bytes, int] = {}  # base (offset or id) -> deltas still to resolve on it
    for _kind, _at, _end, _crc, base in records.values():
        if base is not None:
            awaited[base] = awaited.get(base, 0) + 1
    kept: dict[int, tuple[int, bytes, bytes]] = {}  # offset -> (type, content, id) of bases still awaited
    by_id: dict[bytes, int] = {}
    rows: dict[bytes, tuple[int, int, int]] = {}
    pending = sorted(records)
    while pending:  # bases first: a delta waits until its base is known (by offset or by id)
        waiting = []
        for offset in pending:
            kind, at, _end, crc, base = records[offset]
            if base is not None:
                found = base if isinstance(base, int) else by_id.get(base)
                if found is None or found not in kept:
                    waiting.append(offset)
                    continue
                kind, source, source_id = kept[found]
                data = apply_delta(source, _inflate(body, at)[0])
                awaited[base] -= 1
                if not awaited.get(found) and not awaited.get(source_id):  # awaited by offset or by id
                    del kept[found]
            else:
                data = _inflate(body, at)[0]
            oid = hashlib.sha1(b"%s %d\0" % (_KINDS[kind], len(data)) + data).digest()
            by_id[oid] = offset
            rows[oid] = (offset, crc, kind)
            if awaited.get(offset) or awaited.get(oid):
                kept[offset] = (kind, data, oid)
        if len(waiting) == len(pending):
            raise FormatError(f"{len(waiting)} delta record(s) name a base the pack does not hold")
        pending = waiting
    return _index(rows, digest)


_KINDS = {**_KIND, _TAG: b"tag"}


def _record_head(buf: bytes, pos: int) -> tuple[int, int]:
    """A record's type, and where its size varint ends."""
    byte = buf[pos]
    kind = byte >> 4 & 7
    pos += 1
    while byte & 0x80:
        byte = buf[pos]
        pos += 1
    return kind, pos


def _ofs(buf: bytes, pos: int) -> tuple[int, int]:
    """An OFS_DELTA's distance back to its base (git's offset encoding)."""
    byte = buf[pos]
    value = byte & 0x7F
    pos += 1
    while byte & 0x80:
        byte = buf[pos]
        pos += 1
        value = (value + 1) << 7 | byte & 0x7F
    return value, pos


def _inflate(buf: bytes, pos: int) -> tuple[bytes, int]:
    """One zlib stream from ``pos``: its content and where it ends."""
    d = zlib.decompressobj()
    out, at, step = [], pos, 1 << 16
    view = memoryview(buf)
    while not d.eof:
        if at >= len(buf):
            raise FormatError(f"pack record at {pos} is cut short")
        piece = view[at : at + step]
        try:
            out.append(d.decompress(piece))
        except zlib.error as e:
            raise FormatError(f"pack record at {pos} does not inflate ({e})") from None
        at += len(piece)
    return b"".join(out), at - len(d.unused_data)


def apply_delta(source: bytes, delta: bytes) -> bytes:
    """git's delta: the sizes of source and result, then copies from ``source`` and inserts."""
    def size(pos: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            byte = delta[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value, pos

    src_len, pos = size(0)
    dst_len, pos = size(pos)
    if src_len != len(source):
        raise FormatError("a delta names a base of another length than its base has")
    out = bytearray()
    try:
        while pos < len(delta):
            op = delta[pos]
            pos += 1
            if op & 0x80:  # copy: offset and size bytes present per bit
                offset = length = 0
                for i in range(4):
                    if op & 1 << i:
                        offset |= delta[pos] << 8 * i
                        pos += 1
                for i in range(3):
                    if op & 1 << (4 + i):
                        length |= delta[pos] << 8 * i
                        pos += 1
                length = length or 0x10000
                if offset + length > len(source):
                    raise FormatError("a delta copies past the end of its base")
                out += source[offset : offset + length]
            elif op:
                out += delta[pos : pos + op]
                pos += op
            else:
                raise FormatError("a delta holds the reserved instruction 0")
    except IndexError:
        raise FormatError("a delta is cut short") from None
    if len(out) != dst_len:
        raise FormatError("a delta gives another length than it names")
    return bytes(out)
