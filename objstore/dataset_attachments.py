"""Blobs kept with a dataset version: artifacts, report images and media, typed metadata.

A blob is a file's bytes stored as chunks of the store (the same chunking, compression and
verification as a dataset's files). The dataset record names it by a small JSON reference,
``{"hash": HEX, "size": N, "chunks": [[HEX, LENGTH], ...]}``, so a reader needs only the
record and the chunks (which a store attached to a remote fetches when they are missing).

``gc`` keeps what refs reach, and a record is no ref: every blob written here is also put
into the tree of one ref, ``refs/objstore/attachments`` (``xx/<hash>``, one flat folder per
first byte), so its chunks stay live. A write holds the store lock from storing the chunks
until the ref names them, as ``add_files`` does. The ref only grows; ``prune`` drops what no
record names any more.

A reference read from a record may come from a remote: it is checked (ids, lengths adding
up to the size) before use, and the bytes read are verified chunk by chunk and as a whole.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import DsError, FormatError
from .manifest import FILE, MAX_CHUNK, FileEntry
from .store import Store

REF = "refs/objstore/attachments"
MESSAGE = "blobs of dataset artifacts, reports and metadata, kept for gc (not a version)"
MAX_BLOB = 1 << 40  # a reference claiming more is damaged


def _stat(path: Path):
    from .scan import Stat

    st = path.stat()
    return Stat(st.st_size, st.st_mtime_ns, st.st_ino, FILE, st.st_ctime_ns)


def put_file(store: Store, path: str | os.PathLike[str]) -> dict:
    """Store a file's bytes; returns its reference. Takes the store lock."""
    from .ingest import Ingestor, Job

    src = Path(path)
    with store.locked():
        cfg = store.config
        job = Job("blob", _stat(src), src=str(src))
        entry = Ingestor(store.chunks, cfg.chunking, cfg.zstd_level).run([job])["blob"]
        store.chunks.flush()
        _keep(store, [entry])
    return to_ref(entry)


def put_bytes(store: Store, data: bytes) -> dict:
    """Store ``data``; returns its reference. Takes the store lock."""
    fd, tmp = tempfile.mkstemp(prefix="ds-blob-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return put_file(store, tmp)
    finally:
        os.unlink(tmp)


def to_ref(entry: FileEntry) -> dict:
    return {"hash": entry.hash.hex(), "size": entry.size,
            "chunks": [[chunk_id.hex(), n] for chunk_id, n in entry.chunk_list()]}


def _keep(store: Store, entries: Iterable[FileEntry]) -> None:
    """Name the entries in the attachments ref's tree (caller holds the lock)."""
    from .tree_edit import TreeEditor

    meta = store.meta
    editor = TreeEditor(meta, _tree(store))
    changed = False
    for e in entries:
        name = e.hash.hex()
        path = f"{name[:2]}/{name}"
        if editor.get(path) is None:
            editor.set(path, FileEntry(name, FILE, e.size, e.hash, e.chunks))
            changed = True
    if changed:
        commit = meta.commit(editor.write(), [], MESSAGE, store.author())
        meta.set_ref(REF, commit, force=True)  # makes the new objects durable first


def _tree(store: Store) -> str | None:
    """The attachments ref's tree, or None before the first blob."""
    meta = store.meta
    if not meta.has_ref(REF):
        return None
    commit = meta.ref_target(REF)
    if commit is None:
        raise FormatError(f"ref {REF} points at nothing; run `ds fsck`")
    return meta.tree_of(commit)


def refs_in(value: Any) -> Iterator[dict]:
    """Every blob reference inside a record's JSON value (artifacts, reports, metadata)."""
    if isinstance(value, dict):
        if is_ref(value.get("blob")):
            yield value["blob"]
        for v in value.values():
            yield from refs_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from refs_in(v)


def is_ref(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("hash"), str) and "chunks" in value


def chunk_ids(store: Store, record: dict, strict: bool = False) -> list[bytes]:
    """Every chunk the blobs of a record need (what a push of the version must send too).
    A damaged reference is skipped (reading it says so), or with ``strict`` raised."""
    out: dict[bytes, None] = {}
    for ref in refs_in(record):
        try:
            entry = entry_of(store, ref, "a dataset attachment")
        except FormatError:
            if strict:
                raise
            continue
        out.update(dict.fromkeys(c for c, _ in entry.chunk_list()))
    return list(out)


def prune(store: Store) -> int:
    """Drop from the attachments ref the blobs no dataset record names; returns how many.

    For gc, under the store lock (a blob is named by the ref before its record is saved,
    and the lock is held across both). Every record file is read as JSON, valid or not:
    if one cannot be read, nothing is dropped.
    """
    from .tree_edit import TreeEditor

    meta = store.meta
    tree = _tree(store)
    if tree is None:
        return 0
    live: set[str] = set()
    for path in sorted((store.path / "datasets").glob("*.json")):
        try:
            record = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            return 0  # cannot tell what it names: keep everything
        live.update(r["hash"] for r in refs_in(record))
    editor = TreeEditor(meta, tree)
    gone = [p for p in editor.files_under("") if p.rpartition("/")[2] not in live]
    for p in gone:
        editor.remove(p)
    if gone:
        commit = meta.commit(editor.write(), [], MESSAGE, store.author())
        meta.set_ref(REF, commit, force=True)
    return len(gone)


def entry_of(store: Store, ref: Any, what: str) -> FileEntry:
    """The file entry a reference describes; FormatError if it is malformed."""
    size_hex = 2 * store.algo.size

    def bad(why: str) -> FormatError:
        return FormatError(f"{what}: its stored reference is damaged ({why}); set it again")

    if not is_ref(ref):
        raise bad("not a blob reference")
    h, size, chunks = ref["hash"], ref.get("size"), ref["chunks"]
    if not _is_hex(h, size_hex):
        raise bad("its hash is not an id of this store")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_BLOB:
        raise bad("its size is not a byte count")
    if not isinstance(chunks, list):
        raise bad("its chunks are not a list")
    out = []
    for c in chunks:
        if (not isinstance(c, list) or len(c) != 2 or not _is_hex(c[0], size_hex)
                or not isinstance(c[1], int) or isinstance(c[1], bool) or not 0 < c[1] <= MAX_CHUNK):
            raise bad("a chunk is not an id and a length")
        out.append((bytes.fromhex(c[0]), c[1]))
    if sum(n for _, n in out) != size:
        raise bad("its chunk lengths do not add up to its size")
    return FileEntry(h, FILE, size, bytes.fromhex(h), tuple(out))


def _is_hex(value: Any, length: int) -> bool:
    if not isinstance(value, str) or len(value) != length:
        return False
    try:
        bytes.fromhex(value)
    except ValueError:
        return False
    return True


def missing(store: Store, entry: FileEntry) -> bool:
    """True when a chunk is not in this store (no fetching: for read-only views)."""
    chunks = store.chunks
    if all(chunks.has(c) for c, _ in entry.chunk_list()):
        return False
    chunks.index.reload()  # another process may have added it since
    return not all(chunks.has(c) for c, _ in entry.chunk_list())


def _pieces(store: Store, entry: FileEntry, what: str, fetch: bool) -> Iterator[bytes]:
    if fetch:
        store.ensure_chunks(c for c, _ in entry.chunk_list())
    if missing(store, entry):
        raise DsError(f"{what}: its content is not in this store (the version was made elsewhere and "
                      "its remote does not have it); upload it again from the store that made it")
    hasher = store.algo.new()
    for chunk_id, _n in entry.chunk_list():
        data = store.chunks.get(chunk_id)  # verified against its id
        hasher.update(data)
        yield data
    if hasher.digest() != entry.hash:
        raise FormatError(f"{what}: its content does not match its hash; run `ds fsck`")


def read_bytes(store: Store, ref: Any, what: str, fetch: bool = True) -> bytes:
    """The whole blob, verified."""
    return b"".join(_pieces(store, entry_of(store, ref, what), what, fetch))


def write_to(store: Store, ref: Any, dest: Path, what: str) -> Path:
    """Write the blob to ``dest`` (a temp name beside it first, then renamed: never half a file).

    The reference is checked before anything is made on disk: a damaged one creates nothing."""
    entry = entry_of(store, ref, what)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            for piece in _pieces(store, entry, what, fetch=True):
                f.write(piece)
        os.chmod(tmp, 0o444)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest
