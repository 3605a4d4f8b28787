"""File entries and the per-folder manifest blob that holds them.

A folder's files are not one git object each: they are rows of one manifest blob
(split into buckets for very large folders). Byte layout (little-endian)::

    header  4s b"DSMF" | u8 version (1) | u8 hash size | 2x | u32 entry count
    entry   u16 name length | name (UTF-8) | u8 kind | u64 size | hash
            | u32 chunk count | chunk count x ( chunk id | u32 chunk length )

``kind``: 0 regular file, 1 executable file, 2 symlink (its content is the link
target). ``hash`` is the whole content's id. A chunk count of 0 with size > 0 means the
file is one chunk whose id is ``hash`` (the usual case for small files; saves space).
Entries are sorted by name; a duplicate or unsafe name, or chunk lengths that do not
add up to the size, make the manifest invalid.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import FormatError
from .paths import check_name

MAGIC = b"DSMF"
HEAD = struct.Struct("<4sBB2xI")
ROW = struct.Struct("<BQ")
U16 = struct.Struct("<H")
U32 = struct.Struct("<I")
MAX_CHUNK = 16 * 1024 * 1024

FILE, EXEC, LINK = 0, 1, 2
KIND_NAMES = {FILE: "file", EXEC: "exec", LINK: "link"}


@dataclass(frozen=True, slots=True)
class FileEntry:
    name: str
    kind: int
    size: int
    hash: bytes
    chunks: tuple[tuple[bytes, int], ...] = ()  # empty: one chunk == hash (or no chunk)

    def chunk_list(self) -> tuple[tuple[bytes, int], ...]:
        if self.chunks or not self.size:
            return self.chunks
        return ((self.hash, self.size),)

    def same_content(self, other: FileEntry) -> bool:
        return self.hash == other.hash and self.kind == other.kind and self.size == other.size


def encode_manifest(entries: list[FileEntry], hash_size: int) -> bytes:
    entries = sorted(entries, key=lambda e: e.name.encode("utf-8"))
    parts = [HEAD.pack(MAGIC, 1, hash_size, len(entries))]
    for e in entries:
        name = e.name.encode("utf-8")
        chunks = e.chunks
        if len(chunks) == 1 and chunks[0] == (e.hash, e.size):
            chunks = ()
        parts.append(U16.pack(len(name)))
        parts.append(name)
        parts.append(ROW.pack(e.kind, e.size))
        parts.append(e.hash)
        parts.append(U32.pack(len(chunks)))
        for cid, clen in chunks:
            parts.append(cid)
            parts.append(U32.pack(clen))
    return b"".join(parts)


def decode_manifest(data: bytes, hash_size: int, where: str) -> list[FileEntry]:
    try:
        return _decode(data, hash_size, where)
    except struct.error:
        raise FormatError(f"{where}: manifest is truncated") from None


def _decode(data: bytes, hash_size: int, where: str) -> list[FileEntry]:
    magic, version, hs, count = HEAD.unpack_from(data, 0)
    if magic != MAGIC or version != 1:
        raise FormatError(f"{where}: not a version-1 manifest")
    if hs != hash_size:
        raise FormatError(f"{where}: manifest ids are {hs} bytes, the store uses {hash_size}")
    pos = HEAD.size
    out: list[FileEntry] = []
    prev = b""
    n = len(data)
    for _ in range(count):
        (nlen,) = U16.unpack_from(data, pos)
        pos += 2
        raw_name = data[pos : pos + nlen]
        pos += nlen
        if len(raw_name) != nlen:
            raise FormatError(f"{where}: manifest is truncated")
        if raw_name <= prev and out:
            raise FormatError(f"{where}: manifest names are duplicated or out of order")
        prev = raw_name
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(f"{where}: a manifest name is not UTF-8") from None
        check_name(name, where)
        kind, size = ROW.unpack_from(data, pos)
        pos += ROW.size
        if kind not in KIND_NAMES:
            raise FormatError(f"{where}: entry {name!r} has unknown kind {kind}")
        fhash = data[pos : pos + hash_size]
        pos += hash_size
        (nchunks,) = U32.unpack_from(data, pos)
        pos += 4
        if pos + nchunks * (hash_size + 4) > n:
            raise FormatError(f"{where}: manifest is truncated")
        chunks = []
        total = 0
        for _c in range(nchunks):
            cid = data[pos : pos + hash_size]
            (clen,) = U32.unpack_from(data, pos + hash_size)
            pos += hash_size + 4
            if not 0 < clen <= MAX_CHUNK:
                raise FormatError(f"{where}: entry {name!r} has a chunk of {clen} bytes")
            total += clen
            chunks.append((cid, clen))
        if nchunks == 0 and size > MAX_CHUNK:
            raise FormatError(f"{where}: entry {name!r} claims {size} bytes in one chunk")
        if nchunks and total != size:
            raise FormatError(f"{where}: entry {name!r} chunk lengths sum to {total}, not {size}")
        if kind == LINK and size > 4096:
            raise FormatError(f"{where}: link {name!r} has a {size}-byte target")
        out.append(FileEntry(name, kind, size, fhash, tuple(chunks)))
    if pos != n:
        raise FormatError(f"{where}: manifest has trailing bytes")
    return out
