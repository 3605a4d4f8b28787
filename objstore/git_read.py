"""The metadata database read without libgit2: objects, refs and HEAD, from their files.

A command that only reads (``log``, ``ls``, ``diff``, ``show``, ``branch``) would otherwise
import pygit2 to do it: about 50 ms, more than the rest of its start-up. This reader
answers only what it can answer for certain from a well-formed database:

- an object whose content matches its id: a loose file, or a record of a pack found
  through the pack's version-2 index, its delta chain resolved;
- a loose ref holding one id, a ``packed-refs`` line, HEAD on a branch or detached.

For anything else (an object it does not find, a file it cannot parse, a form libgit2
accepts and it does not) it raises ``Unsure`` and ``MetaStore`` asks libgit2, whose
answer and errors stay the reference: a damaged store is reported as it always was.

No pygit2 here: the formats only (git's ``gitformat-pack``, ``gitrepository-layout``).
"""

from __future__ import annotations

import hashlib
import mmap
import os
import re
import struct
import threading
import zlib
from pathlib import Path

from .errors import FormatError
from .git_pack import _OFS_DELTA, _REF_DELTA, _TAG, BLOB, COMMIT, TREE, _inflate, _ofs, apply_delta

KIND_NAMES = {COMMIT: b"commit", TREE: b"tree", BLOB: b"blob", _TAG: b"tag"}
LOOSE_TEMP = "tmp_obj_"  # a loose object being written (git's own name for one)
_KIND_OF = {name: kind for kind, name in KIND_NAMES.items()}
_MAX_CHAIN = 512  # deltas on deltas: libgit2 packs at most 50 deep; past this, libgit2 decides
_BASES_BYTES = 32 << 20  # resolved delta bases kept for the next object of the same chain
_HEX40 = re.compile(rb"[0-9a-f]{40}\n")
_ID = re.compile(r"[0-9a-fA-F]{40}")
_CONFIG_LINE = re.compile(  # blank, a comment, [section] or [section "sub"], key or key = value
    r"\s*(?:[#;].*|\[[A-Za-z0-9.-]+(?: \"[^\"\n]*\")?\]|[A-Za-z][A-Za-z0-9-]*\s*(?:=[^\n]*)?)?")
# a ref name this reader takes: plain components, none of git's special spellings
_COMPONENT = r"[A-Za-z0-9_][A-Za-z0-9_+-]*(?:\.[A-Za-z0-9_+-]+)*"
_REF_NAME = re.compile(rf"refs/{_COMPONENT}(?:/{_COMPONENT})*")


class Unsure(Exception):
    """This reader cannot answer for certain; libgit2 must (missing, damaged, unusual)."""


def plain_ref_name(name: str) -> bool:
    """A ref name of the plain form this reader reads (``refs/heads/main``, ``refs/tags/v1.0``):
    every such name is one git accepts; git accepts more, which libgit2 reads."""
    return bool(_REF_NAME.fullmatch(name)) and not any(p.endswith(".lock") for p in name.split("/"))


class _Pack:
    """One pack through its index: where each object's record starts."""

    def __init__(self, idx: Path):
        data = idx.read_bytes()
        if data[:8] != b"\377tOc\0\0\0\2" or len(data) < 8 + 1024 + 40:
            raise Unsure(f"{idx.name}: not a version-2 pack index")
        self.fanout = struct.unpack(">256I", data[8 : 8 + 1024])
        n = self.fanout[255]
        self.ids_at = 8 + 1024
        self.offsets_at = self.ids_at + 24 * n  # past the ids and their CRC-32s
        self.large_at = self.offsets_at + 4 * n
        if len(data) < self.large_at + 40:
            raise Unsure(f"{idx.name}: cut short")
        self.count = n
        self.index = data
        self.path = idx.with_suffix(".pack")
        self._map: mmap.mmap | None = None

    def offset(self, raw: bytes) -> int | None:
        """Where object ``raw`` starts in the pack, or None if this pack lacks it."""
        first = raw[0]
        lo = self.fanout[first - 1] if first else 0
        hi = self.fanout[first]
        index, at = self.index, self.ids_at
        while lo < hi:
            mid = (lo + hi) // 2
            here = index[at + 20 * mid : at + 20 * mid + 20]
            if here == raw:
                (small,) = struct.unpack_from(">I", index, self.offsets_at + 4 * mid)
                if not small & 0x80000000:
                    return small
                where = self.large_at + 8 * (small & 0x7FFFFFFF)
                if where + 8 > len(index) - 40:
                    raise Unsure(f"{self.path.name}: an offset past its index")
                return struct.unpack_from(">Q", index, where)[0]
            if here < raw:
                lo = mid + 1
            else:
                hi = mid
        return None

    @property
    def data(self) -> mmap.mmap:
        mapped = self._map
        if mapped is None:
            with open(self.path, "rb") as f:  # the map outlives the file (and its removal)
                mapped = self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        return mapped

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None


class ObjectReader:
    """Objects of the database at ``git_dir``, each checked against its id."""

    def __init__(self, git_dir: Path, objects: Path | None = None):
        self.git_dir = Path(git_dir)
        self.objects = self.git_dir / "objects" if objects is None else Path(objects)
        self._packs: dict[str, _Pack] | None = None
        self._bases: dict[tuple[str, int], tuple[int, bytes]] = {}
        self._bases_bytes = 0
        self._lock = threading.Lock()  # readers on several threads share the lists and the cache
        self._plain = _plain_database(self.git_dir) if objects is None else True

    # -- objects -----------------------------------------------------------------------
    def read(self, hex_id: str, depth: int = 0) -> tuple[int, bytes]:
        """(kind, content) of object ``hex_id``: COMMIT, TREE, BLOB or the tag kind."""
        if not self._plain:
            raise Unsure("a database this reader does not read (its config, grafts or shallow)")
        if not (isinstance(hex_id, str) and _ID.fullmatch(hex_id)):
            raise Unsure(f"{hex_id!r} is not a whole id")
        hex_id = hex_id.lower()
        raw = bytes.fromhex(hex_id)
        found = self._loose(hex_id)
        if found is None:
            found = self._packed(raw, rescan=True, depth=depth)
        kind, data = found
        if hashlib.sha1(b"%s %d\0" % (KIND_NAMES[kind], len(data)) + data).digest() != raw:
            raise Unsure(f"{hex_id} does not match its content")
        return found

    def has(self, raw: bytes) -> bool:
        """Object ``raw`` is here, loose or in a pack this reader has listed (not read: a
        writer asks, to skip an object the database holds; a wrong False writes it again)."""
        hex_id = raw.hex()
        if os.path.exists(os.path.join(self.objects, hex_id[:2], hex_id[2:])):
            return True
        try:
            if any(p.offset(raw) is not None for p in self._pack_list().values()):
                return True
            return any(p.offset(raw) is not None and p.path.exists() for p in self._refresh())
        except (OSError, Unsure):
            return False

    def _loose(self, hex_id: str) -> tuple[int, bytes] | None:
        try:
            with open(os.path.join(self.objects, hex_id[:2], hex_id[2:]), "rb") as f:
                packed = f.read()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise Unsure(str(e)) from None
        inflate = zlib.decompressobj()
        try:
            whole = inflate.decompress(packed)
        except zlib.error as e:
            raise Unsure(f"{hex_id}: {e}") from None
        if not inflate.eof or inflate.unused_data:  # cut short, or bytes past the stream
            raise Unsure(f"{hex_id}: not one whole zlib stream")
        head, nul, data = whole.partition(b"\0")
        name, _, size = head.partition(b" ")
        kind = _KIND_OF.get(name)
        if not nul or kind is None or not size.isdigit() or int(size) != len(data):
            raise Unsure(f"{hex_id}: not a loose object")
        return kind, data

    def _packed(self, raw: bytes, rescan: bool, depth: int = 0) -> tuple[int, bytes]:
        for pack in self._pack_list().values():
            offset = pack.offset(raw)
            if offset is not None:
                try:
                    return self._at(pack, offset, depth)
                except (OSError, ValueError, IndexError, struct.error, FormatError) as e:
                    raise Unsure(f"{pack.path.name} at {offset}: {e}") from None
        if rescan and self._refresh():  # written since the list was read (here, or by another)
            return self._packed(raw, rescan=False, depth=depth)
        raise Unsure(f"{raw.hex()} is not here")

    def _pack_list(self) -> dict[str, _Pack]:
        packs = self._packs
        if packs is None:
            with self._lock:
                if self._packs is None:
                    self._packs = self._list_packs({})
                packs = self._packs
        return packs

    def _list_packs(self, known: dict[str, _Pack]) -> dict[str, _Pack]:
        """Every pack with its index, those in ``known`` as they were read (a pack's name is
        its checksum: it never changes)."""
        packs: dict[str, _Pack] = {}
        try:
            names = sorted(os.listdir(self.objects / "pack"))
        except FileNotFoundError:
            names = []
        for name in names:
            if name.startswith("pack-") and name.endswith(".idx") and name[:-4] + ".pack" in names:
                try:
                    packs[name] = known.get(name) or _Pack(self.objects / "pack" / name)
                except OSError as e:  # removed since the listing (a merge), or unreadable
                    raise Unsure(f"{name}: {e}") from None
        return packs

    def _refresh(self) -> list[_Pack]:
        """List the packs again; returns those new since the last list."""
        with self._lock:
            old = self._packs or {}
            self._packs = new = self._list_packs(old)
        return [p for name, p in new.items() if name not in old]  # (one gone stays mapped till closed)

    def _forget_packs(self) -> None:
        with self._lock:
            for pack in (self._packs or {}).values():
                pack.close()
            self._packs = None
            self._bases.clear()
            self._bases_bytes = 0

    def _at(self, pack: _Pack, offset: int, depth: int = 0) -> tuple[int, bytes]:
        """The object whose record starts at ``offset``, its deltas applied."""
        chain: list[tuple[int, int]] = []  # (offset, where its delta's zlib starts), newest first
        buf = pack.data
        at = offset
        while True:
            cached = self._bases.get((pack.path.name, at))
            if cached is not None:
                kind, data = cached
                break
            kind, size, pos = _head(buf, at)
            if kind == _OFS_DELTA:
                back, pos = _ofs(buf, pos)
                chain.append((at, pos))
                if back <= 0 or back > at or len(chain) > _MAX_CHAIN:
                    raise Unsure("a delta chain this reader does not follow")
                at -= back
                continue
            if kind == _REF_DELTA:
                base = bytes(buf[pos : pos + 20])
                if depth + len(chain) >= _MAX_CHAIN:
                    raise Unsure("a delta chain this reader does not follow")
                kind, data = self.read(base.hex(), depth + len(chain) + 1)
                data = apply_delta(data, _inflated(buf, pos + 20, None))
                break
            if kind not in KIND_NAMES:
                raise Unsure(f"a record of type {kind}")
            data = _inflated(buf, pos, size)
            break
        for where, pos in reversed(chain):
            data = apply_delta(data, _inflated(buf, pos, None))
            if where != offset:
                self._keep((pack.path.name, where), kind, data)
        return kind, data

    def _keep(self, key: tuple[str, int], kind: int, data: bytes) -> None:
        """A delta base resolved on the way: the next object of its chain starts from it."""
        if len(data) > _BASES_BYTES // 4:
            return
        with self._lock:
            if key in self._bases:
                return
            self._bases[key] = (kind, data)
            self._bases_bytes += len(data)
            while self._bases_bytes > _BASES_BYTES:
                old = self._bases.pop(next(iter(self._bases)))
                self._bases_bytes -= len(old[1])

    def close(self) -> None:
        self._forget_packs()

    # -- refs --------------------------------------------------------------------------
    def head(self) -> tuple[str | None, str | None]:
        """(the branch ref HEAD is on, None) or (None, the id a detached HEAD holds)."""
        text = self._file(self.git_dir / "HEAD")
        if text.startswith(b"ref: ") and text.endswith(b"\n"):
            target = text[5:-1].decode("ascii", errors="replace")
            if plain_ref_name(target):
                return target, None
        elif _HEX40.fullmatch(text):
            return None, text[:40].decode()
        raise Unsure("HEAD is not in a form this reader takes")

    def ref(self, name: str) -> str | None:
        """The id ref ``name`` holds (its loose file, else ``packed-refs``); None if neither
        has it."""
        if not plain_ref_name(name):
            raise Unsure(f"{name!r} is not a plain ref name")
        path = self.git_dir / name
        try:
            text = self._file(path)
        except FileNotFoundError:
            return self.packed_refs().get(name)
        if not _HEX40.fullmatch(text):
            raise Unsure(f"{name} does not hold one id")
        return text[:40].decode()

    def refs(self) -> dict[str, str]:
        """Every ref name -> the id it holds (a loose file wins over its packed line)."""
        out = self.packed_refs()
        root = self.git_dir / "refs"
        for folder, _dirs, names in os.walk(root):
            for file in names:
                if file.endswith(".lock"):
                    continue  # a writer's lock, never a ref (libgit2 lists none either)
                name = Path(folder, file).relative_to(self.git_dir).as_posix()
                hex_id = self.ref(name)
                if hex_id is None:  # gone since the listing: libgit2 would decide
                    raise Unsure(f"{name} changed while the refs were read")
                out[name] = hex_id
        return out

    def packed_refs(self) -> dict[str, str]:
        """name -> id of ``packed-refs``; every line must be one git writes."""
        try:
            text = self._file(self.git_dir / "packed-refs")
        except FileNotFoundError:
            return {}
        out: dict[str, str] = {}
        if not text.endswith(b"\n"):
            raise Unsure("packed-refs does not end its last line")
        after_ref = False
        for n, line in enumerate(text[:-1].split(b"\n")):
            if line.startswith(b"#") and n == 0:
                continue  # git's header line
            if line.startswith(b"^") and after_ref and _HEX40.fullmatch(line[1:] + b"\n"):
                after_ref = False
                continue  # a tag's peeled id, right below it: the tag is read for it
            hex_id, _, name = line.partition(b" ")
            after_ref = True
            text_name = name.decode("ascii", errors="replace")
            if not (_HEX40.fullmatch(hex_id + b"\n") and plain_ref_name(text_name)):
                raise Unsure("packed-refs holds a line this reader does not take")
            out[text_name] = hex_id.decode()
        return out

    def _file(self, path: Path) -> bytes:
        if not self._plain:
            raise Unsure("a database this reader does not read (its config, grafts or shallow)")
        try:
            with open(path, "rb") as f:
                return f.read(4096)
        except FileNotFoundError:
            raise
        except OSError as e:
            raise Unsure(str(e)) from None


def _plain_database(git_dir: Path) -> bool:
    """The database is one this reader reads as libgit2 would: a config libgit2 opens
    (format version 0, no extensions, lines of git's syntax), no grafts, not shallow."""
    if (git_dir / "shallow").exists() or (git_dir / "info" / "grafts").exists():
        return False
    try:
        text = (git_dir / "config").read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    lines = text.split("\n")
    return (all(_CONFIG_LINE.fullmatch(line) for line in lines)
            and not any(line.strip().lower().startswith("[extensions") for line in lines)
            and sum(bool(re.fullmatch(r"\s*repositoryformatversion\s*=\s*0\s*", line, re.I))
                    for line in lines) == 1)


def _head(buf: mmap.mmap | bytes, pos: int) -> tuple[int, int, int]:
    """A pack record's type, its size, and where its header ends."""
    byte = buf[pos]
    kind, size, shift = byte >> 4 & 7, byte & 15, 4
    pos += 1
    while byte & 0x80:
        byte = buf[pos]
        pos += 1
        size |= (byte & 0x7F) << shift
        shift += 7
    return kind, size, pos


def _inflated(buf: mmap.mmap | bytes, pos: int, size: int | None) -> bytes:
    """The zlib stream at ``pos``; of ``size`` bytes when given."""
    data, _end = _inflate(buf, pos)
    if size is not None and len(data) != size:
        raise Unsure(f"a record of {len(data)} bytes where its header says {size}")
    return data


# -- parsed objects ------------------------------------------------------------------------
def tree_entries(data: bytes) -> list[tuple[str, int, str]]:
    """(name, mode, id) of each entry of a tree, as written (``40000`` and ``100644``
    only: another mode, or a name that is not UTF-8, is for libgit2 to judge)."""
    out = []
    pos, end = 0, len(data)
    while pos < end:
        space = data.find(b" ", pos)
        nul = data.find(b"\0", space + 1)
        if space < 0 or nul < 0 or nul + 21 > end:
            raise Unsure("a tree this reader does not parse")
        mode = data[pos:space]
        if mode == b"40000":
            kind = 0o40000
        elif mode == b"100644":
            kind = 0o100644
        else:
            raise Unsure(f"a tree entry of mode {mode!r}")
        try:
            name = data[space + 1 : nul].decode()
        except UnicodeDecodeError:
            raise Unsure("a tree entry's name is not UTF-8") from None
        if not name:
            raise Unsure("a tree entry without a name")
        out.append((name, kind, data[nul + 1 : nul + 21].hex()))
        pos = nul + 21
    return out


_PERSON = re.compile(rb"([^<>\n]+) <([^<>\n]*)> ([0-9]+) ([+-])([0-9]{2})([0-9]{2})")


class Commit:
    """A commit's fields, parsed strictly: the headers objstore and git write, UTF-8."""

    __slots__ = ("author", "author_time", "email", "id", "message", "offset", "parents", "tree")

    def __init__(self, hex_id: str, data: bytes):
        self.id = hex_id
        if b"\0" in data:  # libgit2 reads its fields as C strings, cut there
            raise Unsure("a commit holding a NUL byte")
        head, sep, message = data.partition(b"\n\n")
        lines = head.split(b"\n")
        if not sep or not lines[0].startswith(b"tree "):
            raise Unsure("a commit this reader does not parse")
        self.tree = _hex(lines[0][5:])
        parents = []
        i = 1
        while i < len(lines) and lines[i].startswith(b"parent "):
            parents.append(_hex(lines[i][7:]))
            i += 1
        self.parents = tuple(parents)
        if len(lines) != i + 2 or not (lines[i].startswith(b"author ")
                                       and lines[i + 1].startswith(b"committer ")):
            raise Unsure("a commit with headers this reader does not take")
        m, c = _PERSON.fullmatch(lines[i][7:]), _PERSON.fullmatch(lines[i + 1][10:])
        if m is None or c is None or max(int(m[3]), int(c[3])) >= 1 << 63:
            raise Unsure("a commit's author this reader does not parse")
        try:  # (libgit2's message starts past any blank lines; its names are trimmed)
            self.author, self.email = m[1].decode(), m[2].decode()
            self.message = message.lstrip(b"\n").decode()
        except UnicodeDecodeError:
            raise Unsure("a commit that is not UTF-8") from None
        if self.author != self.author.strip() or self.email != self.email.strip():
            raise Unsure("a commit's author with spaces around it")
        self.author_time = int(m[3])
        hours, minutes = int(m[5]), int(m[6])
        offset = 0 if hours > 14 or minutes > 59 else hours * 60 + minutes  # (libgit2's zone rule)
        self.offset = -offset if m[4] == b"-" else offset


def _hex(text: bytes) -> str:
    if not _HEX40.fullmatch(text + b"\n"):
        raise Unsure("a commit naming an id this reader does not parse")
    return text.decode()
