"""Which URLs an external-file entry may make this machine read, and the guard against link loops.

Why: an external entry (made by ``Dataset.add_external_files``) stores only a URL, as its one
chunk, and a copy or a ``ds://`` read fetches the bytes with fsspec. Versions arrive from
remotes that others write, so a URL is data, never an instruction to read this machine: a
version naming ``file:///etc/passwd`` must not copy that file into a working folder, for
``ds commit -a && ds push`` to send on.

The rule (docs/security.md, "Trust rule for external entries"), checked before a copy or
checkout writes anything (``materialize.py``) and before ``ds://`` opens a URL (``dsfs.py``):
a URL is used only if (1) the SHA-256 of its text is in ``.dsstore/trusted-links``, which
only ``add_external_files`` extends (nothing from a remote is written there; SHA-256 rather
than the chunk id, so the list means the same whatever hash the store uses), or (2) it is
one plain ``scheme://...`` (no fsspec ``::`` chain) of ``REMOTE_SCHEMES`` or a configured
remote's scheme and its aliases, never ``file``/``local``/``ds`` or a path (they read this
machine, whoever configured them), or (3) a configured remote with ``allow_local_links =
true`` holds its chunk (its index, as last read into ``.dsstore/remotes/NAME/index``, lists
it): that remote is trusted like the user. Anything else raises ``LinkRefused``. Trust
follows the URL, not the entry. A URL that leads back to one being followed (``ds://``
links in a loop, at any depth), or a chain of more than ``MAX_HOPS`` external links, raises
``LinkLoop``.
"""
from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .config import StoreConfig, load_config
from .errors import DsError, FormatError
from .fsutil import atomic_write

TRUST_FILE = "trusted-links"
OWN_OPTIONS = frozenset({"allow_local_links"})  # remote options for objstore, not for fsspec
MAX_HOPS = 10  # external links followed through one another (ds:// into ds://)
_ALIASES = ({"http", "https"}, {"s3", "s3a"}, {"gs", "gcs"}, {"az", "azure", "abfs", "abfss"})
REMOTE_SCHEMES = frozenset().union(*_ALIASES)
LOCAL_SCHEMES = frozenset({"file", "local", "ds"})
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_HEADER = b"# URLs linked in this store (add_external_files): SHA-256 of each URL's text\n"


class LinkError(DsError):
    """An external entry's URL may not be followed here."""


class LinkRefused(LinkError):
    """A URL from a remote that names something this machine must not read for it."""


class LinkLoop(LinkError):
    """External links that lead back to themselves."""


def storage_options(options: dict | None) -> dict:
    """A remote's options without objstore's own, which no fsspec filesystem accepts."""
    return {k: v for k, v in (options or {}).items() if k not in OWN_OPTIONS}


def url_key(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def decode_url(data: bytes, path: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{path}: the external entry's URL is not UTF-8 text; the version is "
                          "damaged (run `ds fsck`, or ask whoever wrote it)") from None


# -- the trust list --------------------------------------------------------------------------------
def trust_links(store_path: Path, urls: Iterable[str]) -> None:
    """Record URLs the user linked in this store. The caller holds the store lock."""
    path = Path(store_path) / TRUST_FILE
    have = read_trusted(store_path)
    new = {url_key(u) for u in urls} - have
    if new:
        atomic_write(path, _HEADER + "".join(f"{k}\n" for k in sorted(have | new)).encode())


def read_trusted(store_path: Path) -> set[str]:
    """The trust list; a line that is not a SHA-256 is ignored (it trusts nothing)."""
    try:
        text = (Path(store_path) / TRUST_FILE).read_text("ascii", errors="replace")
    except FileNotFoundError:
        return set()
    return {line for line in text.split("\n") if _SHA256.fullmatch(line)}


# -- the rule --------------------------------------------------------------------------------------
def schemes_of(url: str) -> list[str] | None:
    """The protocols of an fsspec URL, one per ``::`` part; None if any part has none (a path)."""
    out = []
    for part in url.split("::"):
        scheme, sep, _rest = part.partition("://")
        if not sep or not _SCHEME.fullmatch(scheme):
            return None
        out.append(scheme)
    return out


def allowed_schemes(config: StoreConfig) -> frozenset[str]:
    """http(s), s3, gs, az and their aliases, plus each configured remote's scheme (never a local one)."""
    out = set(REMOTE_SCHEMES)
    for r in config.remotes.values():
        found = schemes_of(str(r.get("url", "")))
        if found and len(found) == 1 and found[0] not in LOCAL_SCHEMES:
            out.add(found[0])
            out.update(*(group for group in _ALIASES if found[0] in group))
    return frozenset(out)


def _allows_local_links(remote: dict) -> bool:
    value = (remote.get("options") or {}).get("allow_local_links")
    return value is True or value == 1 or (isinstance(value, str) and value.lower() in ("true", "1", "yes"))


def _why(url: str) -> str:
    found = schemes_of(url)
    if found is None or found[0] in LOCAL_SCHEMES:
        return "it names a file on this machine"
    if len(found) > 1:
        return "it chains filesystems with '::'"
    return f"its scheme {found[0]!r} is not one remotes may link"


class LinkPolicy:
    """The rule above for one store; built once per copy or ``ds://`` session, cheap until needed."""

    def __init__(self, store_path: Path, config: StoreConfig):
        self.store_path = Path(store_path)
        self.config = config
        self.schemes = allowed_schemes(config)
        self._lock = threading.RLock()  # one reader of the remote indexes at a time (reload closes maps)
        self._trusted: tuple[tuple, set[str]] | None = None  # (file signature, SHA-256s)
        self._indexes: list | None = None  # ChunkIndex of each remote that allows local links

    @classmethod
    def of_store(cls, store_path: Path) -> LinkPolicy:
        return cls(store_path, load_config(Path(store_path) / "config"))

    def check(self, path: str, url: str, chunk_id: bytes) -> None:
        """Return if ``url`` (entry ``path``, URL chunk ``chunk_id``) may be followed; else raise."""
        why = self.refusal(url, chunk_id)
        if why is not None:
            raise LinkRefused(self.message(path, url, why))

    def refusal(self, url: str, chunk_id: bytes) -> str | None:
        """None if the URL may be followed, else why not."""
        found = schemes_of(url)
        if found is not None and len(found) == 1 and found[0] in self.schemes - LOCAL_SCHEMES:
            return None
        if url_key(url) in self.trusted() or self._held_by_trusted_remote(chunk_id):
            return None
        return _why(url)

    def message(self, path: str, url: str, why: str) -> str:
        return (f"{path}: refusing external file {url!r}: {why}, and a link that came from a remote may "
                f"only name {', '.join(sorted(self.schemes))} URLs. If you trust it, link it yourself in "
                "this store (Dataset.add_external_files), or let the remote it came from link such files: "
                "`ds remote add NAME URL -o allow_local_links=true` "
                "(or `ds clone URL -o allow_local_links=true`)" + self._opted_in_hint())

    def _opted_in_hint(self) -> str:
        names = sorted(n for n, r in self.config.remotes.items() if _allows_local_links(r))
        if not names:
            return ""
        return (f". {', '.join(names)} already allow{'s' if len(names) == 1 else ''} local links but did not "
                f"hold this URL when last read here; if it came from there, `ds fsck --remote {names[0]}` "
                "reads that remote's index again")

    def trusted(self) -> set[str]:
        """The trust list, read again when the file was replaced since (a long ``ds://`` session
        must see links made after it began)."""
        try:
            st = (self.store_path / TRUST_FILE).stat()
            sig: tuple = (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            sig = ()
        with self._lock:
            if self._trusted is None or self._trusted[0] != sig:
                self._trusted = (sig, read_trusted(self.store_path))
            return self._trusted[1]

    def _held_by_trusted_remote(self, chunk_id: bytes) -> bool:
        with self._lock:
            for folder, index, seen in self._remote_indexes():
                try:
                    now = sorted(os.listdir(folder))
                except FileNotFoundError:
                    continue
                if now != seen[0]:  # fragments came or went since it was read (a fetch, a remote gc)
                    index.reload()
                    seen[0] = now
                if index.lookup(chunk_id) is not None:
                    return True
            return False

    def _remote_indexes(self) -> list:
        """(index folder, ChunkIndex, [its file names when read]) of each remote allowing local
        links. The caller holds the lock."""
        if self._indexes is None:
            from .hashing import get_algo
            from .index import ChunkIndex

            algo = get_algo(self.config.hash)
            self._indexes = []
            for name, r in sorted(self.config.remotes.items()):
                if not _allows_local_links(r):
                    continue
                cache = self.store_path / "remotes" / name
                try:  # the cache of another URL this name once had says nothing of this one
                    same = (cache / "url").read_text() == r["url"]
                except (FileNotFoundError, UnicodeDecodeError):
                    same = False
                if same:
                    folder = cache / "index"
                    self._indexes.append((folder, ChunkIndex(folder, algo), [None]))
        return self._indexes


# -- loops -----------------------------------------------------------------------------------------
_followed = threading.local()


@contextmanager
def following(path: str, url: str) -> Iterator[None]:
    """While reading ``url`` (for entry ``path``) on this thread: a nested read of the same URL
    is a loop (``ds://`` into ``ds://``), refused as ``LinkLoop`` instead of a RecursionError."""
    stack: list[tuple[str, str]] = _followed.__dict__.setdefault("stack", [])
    urls = [u for _p, u in stack]
    if url in urls or len(stack) >= MAX_HOPS:
        first_path, first_url = stack[0]
        what = ("loops back on itself" if url in urls
                else f"leads through more than {MAX_HOPS} external links")
        raise LinkLoop(f"{first_path}: external file {first_url!r} {what} ({' -> '.join([*urls, url])}); "
                       "point the link at the file's real location")
    stack.append((path, url))
    try:
        yield
    finally:
        stack.pop()
