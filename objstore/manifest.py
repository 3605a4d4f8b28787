"""File entries and the per-folder manifest blob that holds them.

A folder's files are not one git object each: they are rows of one manifest blob
(split into buckets for very large folders). Rows have a fixed width so a manifest
decodes with one ``struct.iter_unpack`` pass. Byte layout (little-endian)::

    header  4s b"DSMF" | u8 version (1) | u8 hash size | 2x | u32 row count
            | u32 names length | u32 chunk-row count                          (20 bytes)
    rows    row count x ( u32 name offset | u16 name length | u8 kind | x | u64 size
                          | hash | u32 first chunk row | u32 chunk count )
    names   the UTF-8 names, back to back, in row order
    chunks  chunk-row count x ( chunk id | u32 chunk length )

``kind``: 0 regular file, 1 executable file, 2 symlink (its content is the link
target), 3 external file (size is the remote file's, if known; its one chunk holds
an fsspec URL, and the bytes stay there). ``hash`` is the whole content's id. A chunk
count of 0 with size > 0 means the file is one chunk whose id is ``hash`` (the usual
case for small files; saves space).
Rows are sorted by name; a duplicate or unsafe name, a name or chunk range outside its
section, or chunk lengths that do not add up to the size make the manifest invalid.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from .errors import FormatError
from .paths import MAX_NAME_BYTES, check_name

# A fast screen: a name matching none of this still gets the byte-length check only.
_UNSAFE = re.compile(r"[/\\\x00]|^\.\.?$|^$|^[A-Za-z]:|^\.dsstore$", re.IGNORECASE)

MAGIC = b"DSMF"
HEAD = struct.Struct("<4sBB2xIII")
MAX_CHUNK = 16 * 1024 * 1024


def _row(hash_size: int) -> struct.Struct:
    return struct.Struct(f"<IHBxQ{hash_size}sII")


def _chunk_row(hash_size: int) -> struct.Struct:
    return struct.Struct(f"<{hash_size}sI")


FILE, EXEC, LINK, EXTERNAL = 0, 1, 2, 3
KIND_NAMES = {FILE: "file", EXEC: "exec", LINK: "link", EXTERNAL: "external"}


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

    def delta_base(self) -> bytes | None:
        """The chunk a new version of this file may be stored as a delta against: its one
        chunk, for a regular file stored whole (else None)."""
        if not self.size or self.chunks or self.kind not in (FILE, EXEC):
            return None
        return self.hash

    def same_content(self, other: FileEntry) -> bool:
        return self.hash == other.hash and self.kind == other.kind and self.size == other.size


def encode_manifest(entries: list[FileEntry], hash_size: int) -> bytes:
    row, crow = _row(hash_size), _chunk_row(hash_size)
    entries = sorted(entries, key=lambda e: e.name.encode("utf-8"))
    rows, names, chunk_rows = [], [], []
    name_off = 0
    for e in entries:
        name = e.name.encode("utf-8")
        chunks = e.chunks
        if len(chunks) == 1 and chunks[0] == (e.hash, e.size) and e.kind != EXTERNAL:
            chunks = ()
        rows.append(row.pack(name_off, len(name), e.kind, e.size, e.hash, len(chunk_rows), len(chunks)))
        names.append(name)
        name_off += len(name)
        chunk_rows.extend(crow.pack(cid, clen) for cid, clen in chunks)
    head = HEAD.pack(MAGIC, 1, hash_size, len(entries), name_off, len(chunk_rows))
    return b"".join([head, *rows, *names, *chunk_rows])


def decode_manifest(data: bytes, hash_size: int, where: str) -> list[FileEntry]:
    if len(data) < HEAD.size:
        raise FormatError(f"{where}: manifest is truncated")
    magic, version, hs, count, names_len, nchunk = HEAD.unpack_from(data, 0)
    if magic != MAGIC or version != 1:
        raise FormatError(f"{where}: not a version-1 manifest")
    if hs != hash_size:
        raise FormatError(f"{where}: manifest ids are {hs} bytes, the store uses {hash_size}")
    row, crow = _row(hash_size), _chunk_row(hash_size)
    rows_end = HEAD.size + count * row.size
    names_end = rows_end + names_len
    if names_end + nchunk * crow.size != len(data):
        raise FormatError(f"{where}: manifest sections do not add up to its length (truncated?)")
    names = data[rows_end:names_end]
    chunk_table = list(crow.iter_unpack(data[names_end:])) if nchunk else []
    out: list[FileEntry] = []
    prev = b""
    used_chunks = 0
    for off, nlen, kind, size, fhash, cstart, ccount in row.iter_unpack(data[HEAD.size:rows_end]):
        raw_name = names[off : off + nlen]
        if len(raw_name) != nlen or off + nlen > names_len:
            raise FormatError(f"{where}: a name lies outside the manifest")
        if raw_name <= prev and out:
            raise FormatError(f"{where}: manifest names are duplicated or out of order")
        prev = raw_name
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(f"{where}: a manifest name is not UTF-8") from None
        if _UNSAFE.search(name) or nlen > MAX_NAME_BYTES or not name.isascii():
            check_name(name, where)  # raises with the precise reason
        if kind > EXTERNAL:
            raise FormatError(f"{where}: entry {name!r} has unknown kind {kind}")
        chunks: tuple[tuple[bytes, int], ...] = ()
        if kind == EXTERNAL:
            if ccount != 1 or cstart >= nchunk or not 0 < chunk_table[cstart][1] <= 8192:
                raise FormatError(f"{where}: external entry {name!r} must name one URL chunk")
            chunks = (chunk_table[cstart],)
            used_chunks += 1
        elif ccount:
            if cstart + ccount > nchunk:
                raise FormatError(f"{where}: entry {name!r} names chunks outside the manifest")
            chunks = tuple(chunk_table[cstart : cstart + ccount])
            used_chunks += ccount
            if any(not 0 < clen <= MAX_CHUNK for _, clen in chunks):
                raise FormatError(f"{where}: entry {name!r} has a chunk of impossible length")
            total = sum(clen for _, clen in chunks)
            if total != size:
                raise FormatError(f"{where}: entry {name!r} chunk lengths sum to {total}, not {size}")
        elif size > MAX_CHUNK:
            raise FormatError(f"{where}: entry {name!r} claims {size} bytes in one chunk")
        if kind == LINK and size > 4096:
            raise FormatError(f"{where}: {KIND_NAMES[kind]} {name!r} has a {size}-byte target")
        out.append(FileEntry(name, kind, size, fhash, chunks))
    if used_chunks != nchunk:
        raise FormatError(f"{where}: manifest chunk table has unused or shared rows")
    return out
